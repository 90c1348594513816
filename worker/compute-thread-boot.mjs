/**
 * Starts the compute thread (compute-thread.ts) for ComputeHost. Plain
 * JavaScript because a worker thread cannot load TypeScript by itself: on
 * Node 20, tsx's loader (`--import tsx/dist/loader.mjs`, which the thread
 * inherits through execArgv) registers its hooks in the main thread only, so
 * `new Worker('compute-thread.ts')` fails with ERR_UNKNOWN_FILE_EXTENSION. The
 * thread registers tsx here instead, which also serves callers with no tsx
 * loader of their own (vitest). (tsx 4.23 also hooks worker threads itself on
 * Node >= 22.22.3; there this adds a second, redundant tsx hook: untested.)
 */
import { register } from 'tsx/esm/api';

register();
await import('./compute-thread.ts');

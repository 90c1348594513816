/**
 * Ctrl-C and SIGTERM for the long-running commands: the first signal aborts
 * `signal` (the command then shuts down in order and returns `exitCode()`,
 * 130 or 143); if shutdown takes longer than `graceMs`, or a second signal
 * comes, `onForce` runs (kill what is left) and the process exits at once.
 * A process started by `bertfleet cluster` also watches its parent
 * (`watchParent`): when the parent is gone, even by SIGKILL, it stops as on
 * SIGTERM, within a short grace, so nothing outlives the cluster.
 * Only entry points install process handlers; this is their shared helper.
 */
import { BertfleetError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';

/** The run was stopped by a signal. */
export class InterruptedError extends BertfleetError {
  override readonly name = 'InterruptedError';
  constructor(readonly signalName: NodeJS.Signals) {
    super(`interrupted by ${signalName}`);
  }
}

const CODES: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143 };

export interface SignalHandling {
  readonly signal: AbortSignal;
  exitCode(): number;
  dispose(): void;
}

/** Set by `bertfleet cluster` in its children's environment: the pid whose death they must not outlive. */
export const PARENT_PID_ENV = 'BERTFLEET_PARENT_PID';
/** How often a child looks for its parent. */
const PARENT_POLL_MS = 500;
/** Shutdown time left to a child whose parent is gone (its nats-server is going too). */
const PARENT_GONE_GRACE_MS = 5_000;

/** The parent pid named in `env` (an entry point's process.env), if any; a malformed one is an error. */
export function parentPidFrom(env: NodeJS.ProcessEnv): number | undefined {
  const raw = env[PARENT_PID_ENV];
  if (raw === undefined || raw === '') return undefined;
  const pid = Number(raw);
  if (!(Number.isInteger(pid) && pid > 0)) throw new BertfleetError(`${PARENT_PID_ENV} must be a process id, got "${raw}"`);
  return pid;
}

/**
 * Calls `onGone` once when this process's parent is no longer `parentPid`
 * (it died and we were adopted by init or a subreaper), polling every 500 ms.
 * Returns the function that stops watching. The timer never keeps the process alive.
 */
export function watchParent(parentPid: number, log: Logger, onGone: () => void): () => void {
  const check = (): void => {
    if (process.ppid === parentPid) return;
    clearInterval(timer);
    log.warn({ parentPid, ppid: process.ppid }, 'parent process gone; stopping');
    onGone();
  };
  const timer = setInterval(check, PARENT_POLL_MS);
  timer.unref();
  // Spawned by a parent already gone: stop at once rather than after the first poll.
  setImmediate(check);
  return () => clearInterval(timer);
}

export function installSignalHandlers(log: Logger, opts: { graceMs: number; onForce?: () => void; parentPid?: number }): SignalHandling {
  const ac = new AbortController();
  let received: NodeJS.Signals | null = null;
  const force = (): void => {
    opts.onForce?.();
    process.exit(CODES[received ?? 'SIGTERM'] ?? 1);
  };
  const stop = (sig: NodeJS.Signals, graceMs: number): void => {
    received = sig;
    setTimeout(() => {
      log.warn({ graceMs }, 'shutdown took too long; forcing it');
      force();
    }, graceMs).unref();
    ac.abort(new InterruptedError(sig));
  };
  const handler = (sig: NodeJS.Signals): void => {
    if (received !== null) {
      log.warn({ signal: sig }, 'second signal; stopping now');
      force();
      return;
    }
    log.info({ signal: sig, graceMs: opts.graceMs }, 'signal received; shutting down');
    stop(sig, opts.graceMs);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  // A lost parent stops us as its SIGTERM would have, on a shorter fuse.
  const unwatch = opts.parentPid === undefined ? () => undefined : watchParent(opts.parentPid, log, () => {
    if (received === null) stop('SIGTERM', Math.min(opts.graceMs, PARENT_GONE_GRACE_MS));
  });
  return {
    signal: ac.signal,
    exitCode: () => CODES[received ?? 'SIGTERM'] ?? 1,
    dispose: () => {
      unwatch();
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}

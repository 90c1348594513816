/**
 * Ending a child process: `exitOf` is a promise of how it ended (settled at
 * once for one already gone, or one that never started), and `killWithGrace`
 * sends a signal (SIGTERM by default), waits `graceMs`, then SIGKILLs, and
 * resolves only once the process has exited. The one copy of this used for
 * nats-server, the coordinator and the workers.
 *
 * Knows nothing of what the child is, nor of logging.
 */
import type { ChildProcess } from 'node:child_process';
import { constants } from 'node:os';

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const exits = new WeakMap<ChildProcess, Promise<ChildExit>>();

/** How `child` ended; resolves at once if it already has (or never started). Call it right after spawn. */
export function exitOf(child: ChildProcess): Promise<ChildExit> {
  let p = exits.get(child);
  if (p !== undefined) return p;
  p = new Promise<ChildExit>((resolve) => {
    if (hasExited(child)) {
      resolve({ code: child.exitCode, signal: child.signalCode });
      return;
    }
    child.once('exit', (code, signal) => resolve({ code, signal }));
    // 'error' with no pid is a spawn that failed: there will be no 'exit'.
    child.once('error', () => {
      if (child.pid === undefined) resolve({ code: null, signal: null });
    });
  });
  exits.set(child, p);
  return p;
}

export function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Signals `child`, SIGKILLs it after `graceMs` if still there, and resolves once it has exited. */
export async function killWithGrace(child: ChildProcess, opts: { graceMs: number; signal?: NodeJS.Signals }): Promise<ChildExit & { forced: boolean }> {
  const exited = exitOf(child);
  if (child.pid === undefined || hasExited(child)) return { ...(await exited), forced: false };
  child.kill(opts.signal ?? 'SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), opts.graceMs);
  });
  const first = await Promise.race([exited, late]);
  clearTimeout(timer);
  if (first !== 'late') return { ...first, forced: false };
  child.kill('SIGKILL');
  return { ...(await exited), forced: true };
}

/** SIGKILLs `child` now if it is still running: the synchronous last resort of an exiting parent. */
export function killNow(child: ChildProcess): void {
  if (child.pid !== undefined && !hasExited(child)) child.kill('SIGKILL');
}

/** The shell's exit status for an exit: the code, or 128 + the signal's number. */
export function exitStatus(exit: ChildExit): number {
  if (exit.code !== null) return exit.code;
  const n = exit.signal !== null ? constants.signals[exit.signal] : undefined;
  return n !== undefined ? 128 + n : 1;
}

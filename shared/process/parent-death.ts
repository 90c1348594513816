/**
 * A child that dies with its parent: on Linux, util-linux's `setpriv
 * --pdeathsig SIG` sets the kernel's parent-death signal and then execs the
 * program (same pid), so the kernel signals it when the process that spawned
 * it is gone, even by SIGKILL. Where setpriv is absent the command runs as
 * is (callers with a watchdog of their own still notice; others are killed
 * by the parent's exit handler only).
 *
 * Knows nothing of what runs under it; the caller passes the PATH to search.
 */
import { accessSync, constants as fsConstants } from 'node:fs';
import { delimiter, join } from 'node:path';

const SETPRIV_CANDIDATES = ['/usr/bin/setpriv', '/bin/setpriv'];

/** The setpriv binary, or null when there is none. */
export function findSetpriv(searchPath?: string): string | null {
  const dirs = (searchPath ?? '').split(delimiter).filter((d) => d !== '');
  for (const c of [...dirs.map((d) => join(d, 'setpriv')), ...SETPRIV_CANDIDATES]) {
    try {
      accessSync(c, fsConstants.X_OK);
      return c;
    } catch {
      // Not there or not executable: try the next; none at all means no parent-death signal.
    }
  }
  return null;
}

/** `command args` wrapped so the kernel sends `signal` to it when its parent dies, if setpriv is found. */
export function withParentDeathSignal(
  command: string,
  args: readonly string[],
  opts: { signal?: NodeJS.Signals; searchPath?: string } = {},
): { command: string; args: string[]; parentDeathSignal: boolean } {
  const setpriv = findSetpriv(opts.searchPath);
  if (setpriv === null) return { command, args: [...args], parentDeathSignal: false };
  const sig = (opts.signal ?? 'SIGTERM').replace(/^SIG/, '');
  return { command: setpriv, args: ['--pdeathsig', sig, '--', command, ...args], parentDeathSignal: true };
}

/**
 * Process checks for tests that must prove a child is gone.
 */

/** True while `pid` names a live process (signal 0 probes without signalling). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err; // EPERM: alive but not ours; should not happen for our own children
  }
}

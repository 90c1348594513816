/**
 * Who holds a run lease or an output folder lock: an owner id unique to one
 * coordinator instance, with the hostname and pid that name it to a user and
 * let a process on the same host tell whether the holder is still alive.
 * A holder on another host can only be judged by its lease's renewals (or
 * left to a user), never by its pid.
 *
 * Knows nothing of NATS, files or what is owned.
 */

export interface OwnerIdentity {
  /** Unique per coordinator instance (hostname, pid and a random part). */
  owner_id: string;
  hostname: string;
  pid: number;
}

/** True while `pid` names a live process on this host (EPERM: alive, someone else's). */
export function isPidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * True when `holder` certainly no longer runs: it was on this host and its pid
 * is gone; or it had this very pid but another owner id, so it was an earlier
 * life of this process's slot (a container restarted as pid 1 keeps its
 * hostname and pid). False for any holder on another host.
 */
export function holderIsGone(holder: OwnerIdentity, self: OwnerIdentity, alive: (pid: number) => boolean = isPidAlive): boolean {
  if (holder.hostname !== self.hostname || holder.owner_id === self.owner_id) return false;
  if (holder.pid === self.pid) return true;
  return !alive(holder.pid);
}

/** `coordinator <id> (pid 42 on host-a)`, for messages. */
export function describeOwner(o: OwnerIdentity): string {
  return `coordinator ${o.owner_id} (pid ${o.pid} on ${o.hostname})`;
}

/**
 * Who is in the run: workers join by registering, prove they are alive by any
 * call (heartbeats included), and leave by draining or by falling silent for
 * `heartbeatTimeoutMs`. Every join and leave bumps `version`, so a task can
 * say which membership it was cut for. Tasks are partitioned over `active()`,
 * sorted by id; listeners hear of each change (the executor hands a departed
 * worker's outstanding work to the others). Silence is measured on the
 * coordinator's own clock net of its own stalls: if its event loop was busy
 * (a long update), the time it could not listen is not held against anyone.
 *
 * Knows nothing of gRPC, NATS or training; the caller passes the clock.
 */
import { NotRegisteredError } from '../shared/errors.js';

export type MemberStatus = 'joining' | 'training' | 'left';
export type LeaveReason = 'drained' | 'heartbeat_timeout' | 'error';

export interface Member {
  id: string;
  hostname: string;
  pid: number;
  status: MemberStatus;
  joinedAtMs: number;
  lastSeenMs: number;
  leftReason: LeaveReason | null;
}

export type MembershipChange = { kind: 'joined'; member: Member; rejoined: boolean } | { kind: 'left'; member: Member; detail: string };

export class Membership {
  private readonly members = new Map<string, Member>();
  private readonly listeners = new Set<(c: MembershipChange) => void>();
  private versionNumber = 0;
  private lastSweepMs: number | null = null;

  get version(): number {
    return this.versionNumber;
  }

  onChange(listener: (c: MembershipChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Adds a worker, or replaces a previous incarnation with the same id (a
   * restart): the old one is marked left first, so what it owed is handed over.
   */
  register(id: string, hostname: string, pid: number, nowMs: number): Member {
    const previous = this.members.get(id);
    if (previous !== undefined && previous.status !== 'left') this.markLeft(id, 'error', `registered again (pid ${pid} on ${hostname}); the previous incarnation (pid ${previous.pid}) is gone`);
    const member: Member = { id, hostname, pid, status: 'joining', joinedAtMs: nowMs, lastSeenMs: nowMs, leftReason: null };
    this.members.set(id, member);
    this.versionNumber++;
    this.emit({ kind: 'joined', member, rejoined: previous !== undefined });
    return member;
  }

  /** The live member `id`, its last-seen time updated; ProtocolError if unknown or gone. */
  touch(id: string, nowMs: number): Member {
    const m = this.members.get(id);
    if (m === undefined) throw new NotRegisteredError(`worker ${JSON.stringify(id)} is not registered: expected Register first`);
    if (m.status === 'left') throw new NotRegisteredError(`worker ${id} is not registered: it left the run (${m.leftReason}); register again`);
    m.lastSeenMs = nowMs;
    return m;
  }

  get(id: string): Member | undefined {
    return this.members.get(id);
  }

  markTraining(id: string): void {
    const m = this.members.get(id);
    if (m !== undefined && m.status === 'joining') m.status = 'training';
  }

  markLeft(id: string, reason: LeaveReason, detail: string): Member | null {
    const m = this.members.get(id);
    if (m === undefined || m.status === 'left') return null;
    m.status = 'left';
    m.leftReason = reason;
    this.versionNumber++;
    this.emit({ kind: 'left', member: m, detail });
    return m;
  }

  /** Live members, sorted by id: the order tasks are partitioned in. */
  active(): Member[] {
    return [...this.members.values()].filter((m) => m.status !== 'left').sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /**
   * Marks left every live member silent for longer than `timeoutMs`; returns
   * them. Called every `intervalMs`: a sweep that comes late means the
   * coordinator's loop was blocked, and that stall is credited to everyone
   * (their calls were queued, not missing).
   */
  sweep(nowMs: number, timeoutMs: number, intervalMs = 0): Member[] {
    const stallMs = this.lastSweepMs === null ? 0 : Math.max(0, nowMs - this.lastSweepMs - intervalMs);
    this.lastSweepMs = nowMs;
    if (stallMs > 0) for (const m of this.active()) m.lastSeenMs += stallMs;
    const gone = this.active().filter((m) => nowMs - m.lastSeenMs > timeoutMs);
    for (const m of gone) this.markLeft(m.id, 'heartbeat_timeout', `no call for ${nowMs - m.lastSeenMs} ms (heartbeatTimeoutMs ${timeoutMs})`);
    return gone;
  }

  private emit(change: MembershipChange): void {
    for (const l of this.listeners) l(change);
  }
}

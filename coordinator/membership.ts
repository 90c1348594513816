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
 * Bounded: at most `maxWorkers` members are live (joining or training) at
 * once, a registration beyond is refused (LimitExceededError); of the members
 * that left, only the newest `maxWorkers` are remembered (for the "it left"
 * message and the `rejoined` flag); a worker id must be a PEER_ID, a
 * hostname at most 255 characters, and a leave's detail is cut to 1024.
 *
 * Knows nothing of gRPC, NATS or training; the caller passes the clock.
 */
import { LimitExceededError, NotRegisteredError, ProtocolError } from '../shared/errors.js';
import { PEER_ID } from '../shared/security/identity.js';

/** Hostnames are at most 253 characters (DNS); 255 leaves room for a trailing dot and such. */
export const MAX_HOSTNAME_CHARS = 255;

/** A leave's detail (free text a worker may send) is cut to this many characters. */
export const MAX_DETAIL_CHARS = 1024;

/** A peer-chosen string in a message or log line: at most `n` characters, quoted. */
export function quoteClipped(s: string, n = 130): string {
  return s.length <= n ? JSON.stringify(s) : `${JSON.stringify(s.slice(0, n))}... (${s.length} characters)`;
}

export interface MembershipLimits {
  /** Live (joining + training) members at once; cluster.maxWorkers. */
  maxWorkers: number;
}

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
  private readonly maxWorkers: number;

  constructor(limits: MembershipLimits = { maxWorkers: 256 }) {
    if (!(Number.isInteger(limits.maxWorkers) && limits.maxWorkers > 0)) throw new RangeError(`maxWorkers must be a positive integer, got ${limits.maxWorkers}`);
    this.maxWorkers = limits.maxWorkers;
  }

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
    checkRegistration(id, hostname, pid);
    const previous = this.members.get(id);
    const live = this.liveCount();
    if ((previous === undefined || previous.status === 'left') && live >= this.maxWorkers) {
      throw new LimitExceededError(`registration of worker ${id} refused: the run already has ${live} live workers, its maximum (cluster.maxWorkers ${this.maxWorkers}); expected one to leave first`);
    }
    if (previous !== undefined && previous.status !== 'left') this.markLeft(id, 'error', `registered again (pid ${pid} on ${hostname}); the previous incarnation (pid ${previous.pid}) is gone`);
    const member: Member = { id, hostname, pid, status: 'joining', joinedAtMs: nowMs, lastSeenMs: nowMs, leftReason: null };
    // Re-inserted at the end: the map's order is the order of the latest registrations.
    this.members.delete(id);
    this.members.set(id, member);
    this.versionNumber++;
    this.emit({ kind: 'joined', member, rejoined: previous !== undefined });
    return member;
  }

  /** The live member `id`, its last-seen time updated; ProtocolError if unknown or gone. */
  touch(id: string, nowMs: number): Member {
    const m = this.members.get(id);
    if (m === undefined) throw new NotRegisteredError(`worker ${quoteClipped(id)} is not registered: expected Register first`);
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
    // A Leave's detail comes from the worker and goes to the log and NATS: bounded.
    this.emit({ kind: 'left', member: m, detail: detail.length <= MAX_DETAIL_CHARS ? detail : `${detail.slice(0, MAX_DETAIL_CHARS)}... (${detail.length} characters)` });
    this.forgetOldLeft();
    return m;
  }

  /** Members known, live or left (bounded: at most maxWorkers of each). */
  get size(): number {
    return this.members.size;
  }

  private liveCount(): number {
    let n = 0;
    for (const m of this.members.values()) if (m.status !== 'left') n++;
    return n;
  }

  /** Keeps the newest `maxWorkers` members that left; older ones are forgotten. */
  private forgetOldLeft(): void {
    let left = this.members.size - this.liveCount();
    for (const [id, m] of this.members) {
      if (left <= this.maxWorkers) return;
      if (m.status !== 'left') continue;
      this.members.delete(id);
      left--;
    }
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

/** What a registration names, bounded: ProtocolError, expected vs got. */
function checkRegistration(id: string, hostname: string, pid: number): void {
  if (!PEER_ID.test(id)) throw new ProtocolError(`registration refused: worker_id expected 1-128 characters of [A-Za-z0-9_.-], got ${quoteClipped(id)}`);
  if (hostname.length > MAX_HOSTNAME_CHARS) {
    throw new ProtocolError(`registration of worker ${id} refused: hostname expected at most ${MAX_HOSTNAME_CHARS} characters, got ${hostname.length}`);
  }
  if (!(Number.isSafeInteger(pid) && pid >= 0)) throw new ProtocolError(`registration of worker ${id} refused: pid expected a non-negative integer, got ${pid}`);
}

/**
 * One owner per run: a lease in JetStream KV bucket `bertfleet_leases`, key
 * `<runId>`, value `{owner_id, hostname, pid, run_id, acquired_at_ms,
 * renewed_at_ms}`. nats-server 2.9 has no per-key TTL, so the bucket's
 * `max_age` is the lease TTL: a holder rewrites its key every TTL/3
 * (revision-checked), and a key nobody rewrites ages out.
 *
 * Acquiring: create the key. If it exists, the holder is watched: it is
 * refused as soon as it is seen renewing (RunOwnedError naming it); a lease
 * not renewed for one TTL (a crashed holder) is taken over; a holder on this
 * host whose pid is gone is taken over at once.
 *
 * Holding: a renewal refused by revision means another owner took the lease
 * (or it aged out): the lease is lost. A renewal that fails otherwise
 * (nats-server restarting) is retried every second or so and at once on
 * reconnect; if none succeeds within one TTL of the last good one being
 * sent, the lease is lost too, since by then the server may have expired it
 * and another coordinator may hold it. So an outage of nats-server shorter
 * than about 2/3 of the TTL (10 s of the default 15 s) never costs the lease.
 * Losing it calls the `onLost` listeners once; the holder must stop.
 *
 * Knows nothing of what a run is or how the holder stops.
 */
import type { KV, KvEntry } from 'nats';
import { setTimeout as sleep } from 'node:timers/promises';
import { BertfleetError } from '../errors.js';
import type { Logger } from '../log.js';
import { describeOwner, holderIsGone, isPidAlive } from '../owner-identity.js';
import type { ControlConnection } from './connect.js';
import { isWrongLastSequence } from './kv-errors.js';
import { decodeLease, encodeLease, type LeaseValue } from './lease-value.js';
import { checkRunId } from './run-state-schema.js';

export const LEASE_BUCKET = 'bertfleet_leases';
export const DEFAULT_LEASE_TTL_MS = 15_000;
export type { LeaseValue } from './lease-value.js';

/** The run is held by another live owner; `holder` names it. */
export class RunOwnedError extends BertfleetError {
  override readonly name = 'RunOwnedError';
  constructor(readonly runId: string, readonly holder: LeaseValue, ttlMs: number) {
    super(
      `run ${runId} is already owned by ${describeOwner(holder)}, which holds its lease since ${new Date(holder.acquired_at_ms).toISOString()} ` +
        `and is renewing it: stop that coordinator first (or let it finish); a crashed owner's lease expires ${ttlMs} ms after its last renewal`,
    );
  }
}

/** The lease was taken over, deleted, or could not be renewed in time; the holder must stop. */
export class LeaseLostError extends BertfleetError {
  override readonly name = 'LeaseLostError';
  constructor(readonly runId: string, readonly holder: LeaseValue | null, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export interface RunLeaseOptions {
  runId: string;
  ownerId: string;
  hostname: string;
  pid: number;
  /** Used when the bucket is created; an existing bucket's own TTL wins (all holders must share it). */
  ttlMs?: number;
  log: Logger;
  bucket?: string;
  /** Liveness of a pid on this host (tests may fake it). */
  isAlive?: (pid: number) => boolean;
}

export class RunLease {
  private revision: number;
  private lostErr: LeaseLostError | null = null;
  private readonly listeners = new Set<(err: LeaseLostError) => void>();
  private renewTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private renewing: Promise<void> | null = null;
  private released = false;
  private readonly offStatus: () => void;

  private constructor(
    conn: ControlConnection,
    private readonly kv: KV,
    private readonly value: LeaseValue,
    revision: number,
    readonly ttlMs: number,
    private readonly log: Logger,
  ) {
    this.revision = revision;
    this.offStatus = conn.onStatus((s) => {
      if (s.type === 'reconnect') this.renewSoon();
    });
    this.armExpiry(performance.now());
    this.schedule(this.renewEveryMs);
  }

  /** Takes the lease of `runId`, waiting up to about one TTL for a stale one; RunOwnedError if it is held. */
  static async acquire(conn: ControlConnection, o: RunLeaseOptions): Promise<RunLease> {
    const runId = checkRunId(o.runId);
    const log = o.log.child({ component: 'run-lease', runId });
    const wantTtlMs = o.ttlMs ?? DEFAULT_LEASE_TTL_MS;
    if (!(Number.isInteger(wantTtlMs) && wantTtlMs >= 300)) throw new RangeError(`lease ttlMs must be an integer >= 300, got ${wantTtlMs}`);
    // Requests fail fast enough that a renewal can be retried several times within one TTL.
    const js = conn.nc.jetstream({ timeout: Math.min(5_000, Math.max(200, Math.floor(wantTtlMs / 4))) });
    const bucket = o.bucket ?? LEASE_BUCKET;
    const kv = await js.views.kv(bucket, { history: 1, ttl: wantTtlMs });
    const ttlMs = await bucketTtlMs(kv, wantTtlMs, log);
    const now = Date.now();
    const value: LeaseValue = { owner_id: o.ownerId, hostname: o.hostname, pid: o.pid, run_id: runId, acquired_at_ms: now, renewed_at_ms: now };
    const revision = await takeKey(kv, value, ttlMs, o.isAlive ?? isPidAlive, log);
    log.info({ ownerId: o.ownerId, revision, ttlMs }, 'run lease acquired');
    return new RunLease(conn, kv, value, revision, ttlMs, log);
  }

  /** Null while held; the error once lost. */
  get lost(): LeaseLostError | null {
    return this.lostErr;
  }

  /** Calls `listener` once when the lease is lost (at once if it already is); returns an unsubscribe. */
  onLost(listener: (err: LeaseLostError) => void): () => void {
    if (this.lostErr !== null) {
      const err = this.lostErr;
      queueMicrotask(() => listener(err));
      return () => undefined;
    }
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Stops renewing and deletes the key (revision-checked, so never a successor's). Idempotent; never throws. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.stopTimers();
    await this.renewing;
    if (this.lostErr !== null) return;
    // Bounded: with nats-server gone, shutdown must not wait for it; the lease then expires after its ttl.
    const limitMs = 1_000;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), limitMs)));
    try {
      const outcome = await Promise.race([this.kv.delete(this.value.run_id, { previousSeq: this.revision }).then(() => 'done' as const), late]);
      if (outcome === 'done') this.log.info({ revision: this.revision }, 'run lease released');
      else this.log.warn({ limitMs, ttlMs: this.ttlMs }, 'run lease not released in time; it expires after its ttl');
    } catch (err) {
      this.log.warn({ err, ttlMs: this.ttlMs }, 'run lease not released; it expires after its ttl');
    } finally {
      clearTimeout(timer);
    }
  }

  private get renewEveryMs(): number {
    return Math.floor(this.ttlMs / 3);
  }

  private get retryEveryMs(): number {
    return Math.min(1_000, Math.floor(this.ttlMs / 6));
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.renewTimer);
    if (this.released || this.lostErr !== null) return;
    this.renewTimer = setTimeout(() => this.renewSoon(), delayMs);
    // The lease never keeps a process alive on its own; its holder releases it on every exit path.
    this.renewTimer.unref();
  }

  private renewSoon(): void {
    if (this.renewing !== null || this.released || this.lostErr !== null) return;
    clearTimeout(this.renewTimer);
    this.renewing = this.renew().finally(() => {
      this.renewing = null;
    });
  }

  private async renew(): Promise<void> {
    const sentAt = performance.now();
    const next: LeaseValue = { ...this.value, renewed_at_ms: Date.now() };
    try {
      this.revision = await this.kv.update(this.value.run_id, encodeLease(next), this.revision);
      this.armExpiry(sentAt);
      this.log.debug({ revision: this.revision }, 'run lease renewed');
      this.schedule(this.renewEveryMs);
    } catch (err) {
      if (isWrongLastSequence(err)) {
        await this.onConflict(err);
        return;
      }
      this.log.warn({ err, retryMs: this.retryEveryMs }, 'run lease not renewed; retrying');
      this.schedule(this.retryEveryMs);
    }
  }

  /** The key moved on: ours still if an earlier renewal landed after all (its reply was lost), else lost. */
  private async onConflict(cause: unknown): Promise<void> {
    let current: KvEntry | null;
    try {
      current = await this.kv.get(this.value.run_id);
    } catch (err) {
      this.log.warn({ err }, 'run lease conflict not checked yet; retrying');
      this.schedule(this.retryEveryMs);
      return;
    }
    const holder = current?.operation === 'PUT' ? decodeLease(current) : null;
    if (holder?.owner_id === this.value.owner_id) {
      this.revision = current!.revision;
      this.schedule(0);
      return;
    }
    const why = holder !== null ? `taken over by ${describeOwner(holder)}` : 'deleted or expired on the server';
    this.lose(new LeaseLostError(this.value.run_id, holder, `lease of run ${this.value.run_id} lost: ${why}; this coordinator stops`, { cause }));
  }

  /** The lease counts as lost one TTL after the last good renewal was sent (the server's expiry is no earlier). */
  private armExpiry(sentAt: number): void {
    clearTimeout(this.expiryTimer);
    if (this.released || this.lostErr !== null) return;
    const leftMs = Math.max(0, this.ttlMs - (performance.now() - sentAt));
    this.expiryTimer = setTimeout(() => {
      this.lose(
        new LeaseLostError(
          this.value.run_id,
          null,
          `lease of run ${this.value.run_id} lost: not renewed for its ttl of ${this.ttlMs} ms (nats-server unreachable); ` +
            'another coordinator may own the run now, so this one stops',
        ),
      );
    }, leftMs);
    this.expiryTimer.unref();
  }

  private lose(err: LeaseLostError): void {
    if (this.lostErr !== null || this.released) return;
    this.lostErr = err;
    this.stopTimers();
    this.log.error({ err }, 'run lease lost');
    for (const l of this.listeners) {
      try {
        l(err);
      } catch (listenerErr) {
        this.log.error({ err: listenerErr }, 'lease-lost listener failed');
      }
    }
    this.listeners.clear();
  }

  private stopTimers(): void {
    clearTimeout(this.renewTimer);
    clearTimeout(this.expiryTimer);
    this.offStatus();
  }
}

/** The current holder of `runId`'s lease and the revision it wrote; null when the run is free. For status tools and tests. */
export async function readRunLease(
  conn: ControlConnection,
  runId: string,
  opts: { bucket?: string; ttlMs?: number } = {},
): Promise<(LeaseValue & { revision: number }) | null> {
  const kv = await conn.nc.jetstream().views.kv(opts.bucket ?? LEASE_BUCKET, { history: 1, ttl: opts.ttlMs ?? DEFAULT_LEASE_TTL_MS });
  const e = await kv.get(checkRunId(runId));
  return e === null || e.operation !== 'PUT' ? null : { ...decodeLease(e), revision: e.revision };
}

/**
 * Creates the key, or takes it from a holder that is gone or has not renewed
 * for one TTL; throws RunOwnedError once the holder is seen renewing.
 */
async function takeKey(kv: KV, value: LeaseValue, ttlMs: number, alive: (pid: number) => boolean, log: Logger): Promise<number> {
  const pollMs = Math.min(500, Math.floor(ttlMs / 10));
  let seen: { revision: number; at: number } | null = null;
  for (;;) {
    try {
      return await kv.create(value.run_id, encodeLease(value));
    } catch (err) {
      if (!isWrongLastSequence(err)) throw err;
    }
    const entry = await kv.get(value.run_id);
    if (entry === null || entry.operation !== 'PUT') {
      // Released or expired between the two calls: create again after a breath.
      await sleep(Math.min(50, pollMs));
      continue;
    }
    const holder = decodeLease(entry);
    const held = { holderId: holder.owner_id, hostname: holder.hostname, pid: holder.pid, revision: entry.revision };
    let takeOver: string | null = null;
    if (holderIsGone(holder, value, alive)) takeOver = 'holder process is gone';
    else if (seen !== null && seen.revision !== entry.revision) throw new RunOwnedError(value.run_id, holder, ttlMs);
    else if (seen !== null && performance.now() - seen.at >= ttlMs) takeOver = `not renewed for ${ttlMs} ms`;
    if (takeOver !== null) {
      try {
        const revision = await kv.update(value.run_id, encodeLease(value), entry.revision);
        log.warn({ ...held, reason: takeOver }, 'stale run lease taken over');
        return revision;
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
        continue;
      }
    }
    if (seen === null) {
      seen = { revision: entry.revision, at: performance.now() };
      log.warn({ ...held, ttlMs }, 'run lease held by another coordinator; waiting to see it renewed or expire');
    }
    await sleep(pollMs);
  }
}

async function bucketTtlMs(kv: KV, wantTtlMs: number, log: Logger): Promise<number> {
  const have = (await kv.status()).ttl;
  if (have === wantTtlMs) return have;
  if (have > 0) {
    log.warn({ bucketTtlMs: have, requestedTtlMs: wantTtlMs }, 'lease bucket exists with another ttl; using the bucket\'s');
    return have;
  }
  log.warn({ requestedTtlMs: wantTtlMs }, 'lease bucket has no ttl; stale leases are judged by renewals only');
  return wantTtlMs;
}

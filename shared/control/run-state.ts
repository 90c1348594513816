/**
 * The run state in a JetStream KV bucket: one key per run in bucket
 * `bertfleet_runs`, a JSON value checked by a zod schema. Only the coordinator
 * writes (RunStateWriter), and every write names the revision it replaces, so
 * a second or stale coordinator is refused with RunStateConflictError instead
 * of silently overwriting. Workers and tools read (RunStateReader): the current
 * value, or a watch that yields each change in order and re-reads after a
 * reconnect (run-state-watch.ts).
 *
 * Knows nothing of what a phase means or which transitions are legal: the
 * coordinator decides; this file stores and validates the shape.
 */
import type { KV } from 'nats';
import { BertfleetError, ProtocolError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ControlConnection } from './connect.js';
import { isWrongLastSequence } from './kv-errors.js';
import {
  checkRunId,
  decodeRunState,
  encodeRunState,
  type RunState,
  type RunStateInput,
  type VersionedRunState,
} from './run-state-schema.js';
import { RunStateWatch } from './run-state-watch.js';

export type { RunPhase, RunState, RunStateInput, VersionedRunState } from './run-state-schema.js';
export { RUN_PHASES, RunIdSchema, RunStateSchema, checkRunId } from './run-state-schema.js';

export const RUN_STATE_BUCKET = 'bertfleet_runs';
/** Revisions kept per key: lets a watcher that fell behind still see every change. */
export const RUN_STATE_HISTORY = 64;

/** An update named a revision that is no longer current. */
export class RunStateConflictError extends BertfleetError {
  override readonly name = 'RunStateConflictError';
  constructor(
    readonly runId: string,
    readonly expectedRevision: number,
    readonly currentRevision: number | null,
    options?: { cause?: unknown },
  ) {
    super(`run state of ${runId} was changed by another writer: expected revision ${expectedRevision}, current ${currentRevision ?? 'unknown'}`, options);
  }
}

export interface RunStateBucketOptions {
  runId: string;
  log: Logger;
  bucket?: string;
  /** How long one KV request may wait for its answer (nats.js default 5 s); a request made while disconnected waits this long. */
  requestTimeoutMs?: number;
}

async function openBucket(conn: ControlConnection, bucket: string, requestTimeoutMs: number | undefined): Promise<KV> {
  // Readers create it too (same config, idempotent), so a worker may start before the coordinator.
  return conn.nc.jetstream(requestTimeoutMs === undefined ? {} : { timeout: requestTimeoutMs }).views.kv(bucket, { history: RUN_STATE_HISTORY });
}

/** Reads the run state; `read()` always asks the server, `watch()` follows changes. */
export class RunStateReader {
  private constructor(
    private readonly conn: ControlConnection,
    private readonly kv: KV,
    readonly runId: string,
    private readonly log: Logger,
  ) {}

  static async open(conn: ControlConnection, opts: RunStateBucketOptions): Promise<RunStateReader> {
    const runId = checkRunId(opts.runId);
    const kv = await openBucket(conn, opts.bucket ?? RUN_STATE_BUCKET, opts.requestTimeoutMs);
    return new RunStateReader(conn, kv, runId, opts.log.child({ component: 'run-state-reader', runId }));
  }

  /** The current state, or null before the coordinator created it. */
  async read(): Promise<VersionedRunState | null> {
    const e = await this.kv.get(this.runId);
    return e === null ? null : decodeRunState(e);
  }

  /**
   * Yields the current state (if any), then every later revision in order.
   * After a reconnect it resumes from the last revision it yielded, so a
   * change made while disconnected is still seen. Call `stop()` when done.
   */
  async watch(): Promise<RunStateWatch> {
    return RunStateWatch.start(this.conn, this.kv, this.runId, this.log);
  }
}

/** The coordinator's writer: create once, then compare-and-set by revision. */
export class RunStateWriter {
  private constructor(
    private readonly kv: KV,
    readonly runId: string,
    private readonly coordinatorId: string,
    private readonly nowMs: () => number,
    private readonly log: Logger,
  ) {}

  static async open(
    conn: ControlConnection,
    opts: RunStateBucketOptions & { coordinatorId: string; nowMs?: () => number },
  ): Promise<RunStateWriter> {
    const runId = checkRunId(opts.runId);
    const kv = await openBucket(conn, opts.bucket ?? RUN_STATE_BUCKET, opts.requestTimeoutMs);
    const log = opts.log.child({ component: 'run-state-writer', runId });
    return new RunStateWriter(kv, runId, opts.coordinatorId, opts.nowMs ?? Date.now, log);
  }

  /**
   * Creates the state unless it exists; returns the stored one either way
   * (`created` says which), so a restarted coordinator resumes the run.
   * `atMs` (default now) stamps the state: pass the same one when retrying.
   */
  async createIfAbsent(initial: RunStateInput, atMs?: number): Promise<VersionedRunState & { created: boolean }> {
    const state = this.complete(initial, atMs);
    try {
      const revision = await this.kv.create(this.runId, encodeRunState(state));
      this.log.info({ revision, phase: state.phase, step: state.step }, 'run state created');
      return { state, revision, created: true };
    } catch (err) {
      if (!isWrongLastSequence(err)) throw err;
    }
    const e = await this.kv.get(this.runId);
    const current = e === null ? null : decodeRunState(e);
    if (current === null) throw new ProtocolError(`run state ${this.runId} exists but could not be read back`);
    // An earlier attempt of this very call landed though its reply was lost.
    return { ...current, created: sameState(current.state, state) };
  }

  /**
   * Replaces revision `expectedRevision`; RunStateConflictError if it is not
   * current. Safe to retry with the same `atMs` after a lost reply: if the
   * current revision holds exactly this state, that earlier attempt landed
   * and is returned.
   */
  async update(next: RunStateInput, expectedRevision: number, atMs?: number): Promise<VersionedRunState> {
    const state = this.complete(next, atMs);
    try {
      const revision = await this.kv.update(this.runId, encodeRunState(state), expectedRevision);
      this.log.info({ revision, phase: state.phase, step: state.step }, 'run state updated');
      return { state, revision };
    } catch (err) {
      if (!isWrongLastSequence(err)) throw err;
      const e = await this.kv.get(this.runId);
      const current = e === null ? null : decodeRunState(e);
      if (current !== null && current.revision > expectedRevision && sameState(current.state, state)) return current;
      throw new RunStateConflictError(this.runId, expectedRevision, e?.revision ?? null, { cause: err });
    }
  }

  private complete(input: RunStateInput, atMs: number | undefined): RunState {
    return { ...input, run_id: this.runId, coordinator_id: this.coordinatorId, updated_at_ms: atMs ?? this.nowMs() };
  }
}

/** Field-by-field equality of two states (the schema's fields are all scalars). */
function sameState(a: RunState, b: RunState): boolean {
  return (Object.keys(b) as (keyof RunState)[]).every((k) => a[k] === b[k]) && Object.keys(a).length === Object.keys(b).length;
}

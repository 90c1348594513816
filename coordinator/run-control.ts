/**
 * The coordinator's side of the NATS control plane: it alone writes the run
 * state (phase, step, last checkpoint) into the KV bucket, each write naming
 * the revision it replaces, and publishes the events of subjects.ts (worker
 * joined/left, checkpoint written, phase changed, step metrics).
 *
 * Writes are queued one after another, so hooks called back to back never
 * race each other's revision. A write that fails transiently (nats-server
 * restarting) is retried with jittered, bounded backoff; one still failing
 * `writeTimeoutMs` after its first failure (cluster.runStateWriteTimeoutMs;
 * plus at most two request timeouts, `writeTimeoutMs/6` capped to 0.5-5 s)
 * is fatal: `onFatal` gets a RunStateWriteError and the run stops, rather
 * than go on with a state silently stale. A write refused by revision means
 * another coordinator wrote: fatal at once (RunStateConflictError). Events
 * stay best-effort notices. After `seal` (the lease was lost) nothing more is
 * written or published: the run belongs to someone else.
 *
 * Knows nothing of gRPC or of how the run is computed.
 */
import { retryTransient } from '../shared/async/retry.js';
import type { ControlConnection } from '../shared/control/connect.js';
import { RunStateConflictError, RunStateWriter, type RunPhase, type RunStateInput } from '../shared/control/run-state.js';
import { publishEvent, type EventKind, type EventPayload } from '../shared/control/subjects.js';
import { BertfleetError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { MembershipEvents } from './distributed-executor.js';
import type { Member } from './membership.js';

export const DEFAULT_RUN_STATE_WRITE_TIMEOUT_MS = 60_000;
/** The last write of a failing run (phase `failed`) waits at most this long: the run is ending anyway. */
const FINAL_WRITE_TIMEOUT_MS = 5_000;

/** A run-state write kept failing past its deadline. */
export class RunStateWriteError extends BertfleetError {
  override readonly name = 'RunStateWriteError';
  constructor(readonly runId: string, readonly elapsedMs: number, readonly timeoutMs: number, attempts: number, options?: { cause?: unknown }) {
    super(
      `run state of ${runId} could not be written for ${elapsedMs} ms (${attempts} attempts, deadline ${timeoutMs} ms: cluster.runStateWriteTimeoutMs); ` +
        'is nats-server reachable? The run stops rather than leave its state stale; continue it later with --resume',
      options,
    );
  }
}

/** A write still retrying when the run ended (a `failed` phase or `seal`); not the run's failure. */
class WriteCutShortError extends BertfleetError {
  override readonly name = 'WriteCutShortError';
}

export interface RunControlOptions {
  runId: string;
  coordinatorId: string;
  log: Logger;
  /** How long one write may keep failing before the run stops. */
  writeTimeoutMs?: number;
  /** Called once, with the first fatal write error (RunStateWriteError or RunStateConflictError). */
  onFatal?: (err: Error) => void;
}

export class RunControl implements MembershipEvents {
  private revision: number | null = null;
  private state: RunStateInput | null = null;
  private queue: Promise<void> = Promise.resolve();
  private lastErr: unknown = null;
  private fatalErr: Error | null = null;
  private sealedBy: Error | null = null;
  private retries = new AbortController();

  private constructor(
    private readonly conn: ControlConnection,
    private readonly writer: RunStateWriter,
    readonly runId: string,
    private readonly writeTimeoutMs: number,
    private readonly onFatal: (err: Error) => void,
    private readonly log: Logger,
  ) {}

  static async open(conn: ControlConnection, opts: RunControlOptions): Promise<RunControl> {
    const timeoutMs = opts.writeTimeoutMs ?? DEFAULT_RUN_STATE_WRITE_TIMEOUT_MS;
    if (!(Number.isInteger(timeoutMs) && timeoutMs > 0)) throw new RangeError(`writeTimeoutMs must be a positive integer, got ${timeoutMs}`);
    // Several attempts fit in the deadline: a request sent while disconnected waits its whole timeout.
    const requestTimeoutMs = Math.min(5_000, Math.max(500, Math.floor(timeoutMs / 6)));
    const writer = await RunStateWriter.open(conn, { ...opts, requestTimeoutMs });
    const log = opts.log.child({ component: 'run-control', runId: opts.runId });
    return new RunControl(conn, writer, opts.runId, timeoutMs, opts.onFatal ?? (() => undefined), log);
  }

  get lastError(): unknown {
    return this.lastErr;
  }

  /**
   * A phase starts (or the run ends): written, then announced. Resolves once
   * written or given up (the error is `lastError`, and fatal ones go to onFatal).
   * Phase `failed` first cuts short a write still retrying, then waits at most 5 s.
   */
  phase(phase: RunPhase, step: number, failure: string | null = null): Promise<void> {
    const final = phase === 'failed';
    if (final) this.cutRetries();
    return this.enqueue(async () => {
      const from = this.state?.phase ?? null;
      await this.write({ phase, step, last_checkpoint: this.state?.last_checkpoint ?? null, failure }, final);
      if (from !== phase) this.publish('phase.changed', { from, to: phase, step, at_ms: Date.now() });
    });
  }

  checkpoint(phase: RunPhase, step: number, path: string): Promise<void> {
    return this.enqueue(async () => {
      await this.write({ phase, step, last_checkpoint: path, failure: null }, false);
      this.publish('checkpoint.written', { phase, step, path, at_ms: Date.now() });
    });
  }

  stepMetrics(payload: Omit<EventPayload<'step.metrics'>, 'at_ms'>): void {
    this.publish('step.metrics', { ...payload, at_ms: Date.now() });
  }

  joined(member: Member): void {
    this.publish('worker.joined', { worker_id: member.id, hostname: member.hostname, pid: member.pid, step: this.state?.step ?? 0, at_ms: Date.now() });
  }

  left(member: Member, detail: string): void {
    this.publish('worker.left', { worker_id: member.id, reason: member.leftReason ?? 'error', detail, at_ms: Date.now() });
  }

  /** No more writes or events from now on (this coordinator lost the run); a write retrying stops. */
  seal(reason: Error): void {
    if (this.sealedBy !== null) return;
    this.sealedBy = reason;
    this.cutRetries();
    this.log.warn({ reason: reason.message }, 'run state sealed; no more writes');
  }

  /** Waits for queued writes. */
  async flush(): Promise<void> {
    await this.queue;
  }

  private cutRetries(): void {
    this.retries.abort();
    this.retries = new AbortController();
  }

  private enqueue(fn: () => Promise<void>): Promise<void> {
    this.queue = this.queue.then(fn).catch((err: unknown) => {
      this.lastErr = err;
      if (err instanceof WriteCutShortError) {
        this.log.warn({ err }, 'run state write cut short');
        return;
      }
      this.log.error({ err }, 'run state write failed');
      const fatal = err instanceof RunStateWriteError || err instanceof RunStateConflictError;
      if (fatal && this.fatalErr === null && this.sealedBy === null) {
        this.fatalErr = err;
        this.onFatal(err);
      }
    });
    return this.queue;
  }

  /** One logical write, retried as a whole with the same timestamp (so a retry after a lost reply is recognised). */
  private async write(next: RunStateInput, final: boolean): Promise<void> {
    if (this.sealedBy !== null) {
      this.log.warn({ phase: next.phase, step: next.step }, 'run state write skipped: sealed');
      return;
    }
    const atMs = Date.now();
    // After a fatal error the run is ending: one attempt each, no waiting on a server that is gone.
    const timeoutMs = this.fatalErr !== null ? 0 : final ? Math.min(FINAL_WRITE_TIMEOUT_MS, this.writeTimeoutMs) : this.writeTimeoutMs;
    const { signal } = this.retries;
    try {
      this.revision = await retryTransient(() => this.writeOnce(next, atMs), {
        deadlineMs: timeoutMs,
        initialDelayMs: 200,
        maxDelayMs: 2_000,
        signal,
        retryable: (err) => !(err instanceof BertfleetError),
        onRetry: ({ attempt, delayMs, elapsedMs, err }) =>
          this.log.warn({ attempt, delayMs, elapsedMs, timeoutMs, err }, 'run state not written yet; retrying'),
        onGiveUp: ({ attempts, elapsedMs, err }) => new RunStateWriteError(this.runId, elapsedMs, timeoutMs, attempts, { cause: err }),
      });
    } catch (err) {
      if (signal.aborted) throw new WriteCutShortError(`run state write of phase ${next.phase} step ${next.step} cut short: the run is ending`, { cause: err });
      throw err;
    }
    this.state = next;
  }

  private async writeOnce(next: RunStateInput, atMs: number): Promise<number> {
    if (this.revision !== null) return (await this.writer.update(next, this.revision, atMs)).revision;
    const created = await this.writer.createIfAbsent(next, atMs);
    if (created.created) return created.revision;
    this.revision = created.revision;
    return (await this.writer.update(next, created.revision, atMs)).revision;
  }

  private publish<K extends EventKind>(kind: K, payload: EventPayload<K>): void {
    if (this.sealedBy !== null) return;
    try {
      publishEvent(this.conn, this.runId, kind, payload);
    } catch (err) {
      // Events are notices; a closed connection at shutdown must not fail the run.
      this.log.warn({ err, kind }, 'event not published');
    }
  }
}

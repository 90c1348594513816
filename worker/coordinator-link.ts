/**
 * The worker's calls to the coordinator, made to survive a transient outage
 * (a restart, a network blip): every call is idempotent, so each is retried
 * with jittered, bounded backoff while the coordinator is unreachable, up to
 * `reconnectTimeoutMs` from the first failure; then UnreachableError. An
 * upload or result the coordinator already holds (a retry whose first attempt
 * landed) counts as delivered. Refusals (ProtocolError, NotRegisteredError…)
 * are not retried: the caller decides (register again, resynchronise, stop).
 *
 * Knows nothing of training; wraps the typed client.
 */
import { retryTransient } from '../shared/async/retry.js';
import { AlreadyReceivedError, UnreachableError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { CoordinatorClient, GradientUploadHeader } from '../shared/wire/client.js';
import type {
  Assignment,
  AssignmentRequest,
  AuditReply,
  AuditReport,
  ChecksumReply,
  ChecksumRequest,
  EvalResults,
  HeartbeatReply,
  HeartbeatRequest,
  LeaveReply,
  LeaveRequest,
  MetricsRequest,
  PullRequest,
  RegisterReply,
  RegisterRequest,
  RunConfigReply,
  RunConfigRequest,
  StateHeader,
  StateRequest,
} from '../shared/wire/messages.js';
import type { NamedTensor } from '../shared/wire/state-payload.js';

export class CoordinatorLink {
  private readonly log: Logger;
  private outage = false;

  constructor(
    readonly client: CoordinatorClient,
    private readonly o: { reconnectTimeoutMs: number; log: Logger; signal?: AbortSignal },
  ) {
    this.log = o.log.child({ component: 'link', address: client.address });
  }

  get address(): string {
    return this.client.address;
  }

  /** Runs `call`, retrying while the coordinator is unreachable (until `signal`, if given, aborts). */
  async retry<T>(what: string, call: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const stop = signal === undefined ? this.o.signal : this.o.signal === undefined ? signal : AbortSignal.any([this.o.signal, signal]);
    const out = await retryTransient(call, {
      deadlineMs: this.o.reconnectTimeoutMs,
      initialDelayMs: 100,
      maxDelayMs: 2_000,
      retryable: (err) => err instanceof UnreachableError,
      ...(stop && { signal: stop }),
      onRetry: ({ attempt, delayMs, elapsedMs, err }) => {
        if (!this.outage) this.log.warn({ call: what, err }, 'coordinator unreachable; retrying');
        this.outage = true;
        this.log.debug({ call: what, attempt, delayMs, elapsedMs }, 'retrying');
      },
      onGiveUp: ({ attempts, elapsedMs, err }) =>
        new UnreachableError(`coordinator at ${this.address} unreachable for ${elapsedMs} ms (${attempts} attempts of ${what}; cluster.reconnectTimeoutMs ${this.o.reconnectTimeoutMs})`, { cause: err }),
    });
    if (this.outage) {
      this.outage = false;
      this.log.info({ call: what }, 'coordinator reachable again');
    }
    return out;
  }

  getRunConfig(req: RunConfigRequest): Promise<RunConfigReply> {
    return this.retry('GetRunConfig', () => this.client.getRunConfig(req));
  }

  register(req: RegisterRequest): Promise<RegisterReply> {
    return this.retry('Register', () => this.client.register(req));
  }

  /** The long poll; `signal` cancels it (a restarted feed, a stopping worker). */
  nextAssignment(req: AssignmentRequest, signal?: AbortSignal): Promise<Assignment> {
    return this.retry('NextAssignment', () => this.client.nextAssignment(req, signal === undefined ? {} : { signal }), signal);
  }

  heartbeat(req: HeartbeatRequest, timeoutMs: number): Promise<HeartbeatReply> {
    return this.client.heartbeat(req, { timeoutMs });
  }

  /** Uploads one partial sum; true when this call delivered it, false when the coordinator already had it. */
  async pushGradient(header: GradientUploadHeader, payload: Float32Array, chunkBytes: number, signal?: AbortSignal): Promise<boolean> {
    try {
      await this.retry('PushGradient', () => this.client.pushGradient(header, payload, { chunkBytes }), signal);
      return true;
    } catch (err) {
      if (err instanceof AlreadyReceivedError) return false;
      throw err;
    }
  }

  /** The reduced gradient, into the buffer `into` gives; `onPiece` hears each chunk land (for timings). */
  pullReduced(req: PullRequest, into: (header: unknown) => Float32Array, signal?: AbortSignal, onPiece?: (index: number) => void): Promise<Float32Array> {
    return this.retry('PullReduced', () => this.client.pullReduced(req, { into, ...(onPiece !== undefined && { onPiece }) }), signal);
  }

  async pushEvalResults(req: EvalResults): Promise<void> {
    try {
      await this.retry('PushEvalResults', () => this.client.pushEvalResults(req));
    } catch (err) {
      if (!(err instanceof AlreadyReceivedError)) throw err;
    }
  }

  fetchState(req: StateRequest): Promise<{ header: StateHeader; tensors: Map<string, NamedTensor> }> {
    return this.retry('FetchState', () => this.client.fetchState(req));
  }

  reportChecksum(req: ChecksumRequest, signal?: AbortSignal): Promise<ChecksumReply> {
    return this.retry('ReportChecksum', () => this.client.reportChecksum(req), signal);
  }

  reportAudit(req: AuditReport, signal?: AbortSignal): Promise<AuditReply> {
    return this.retry('ReportAudit', () => this.client.reportAudit(req), signal);
  }

  /** Timings are a notice: one attempt, never held up by an outage (the caller logs a failure). */
  reportMetrics(req: MetricsRequest): Promise<void> {
    return this.client.reportMetrics(req, { timeoutMs: 2_000 });
  }

  leave(req: LeaveRequest, timeoutMs: number): Promise<LeaveReply> {
    return this.client.leave(req, { timeoutMs });
  }
}

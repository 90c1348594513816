/**
 * The Coordinator gRPC service: the workers' door into the distributed
 * executor's state. Each handler checks who is calling (registered, not left;
 * any call counts as a sign of life), validates what it sends, and turns it
 * into a call on the executor; refusals are bertfleet errors, which the gRPC
 * adapter maps to status codes (shared/wire/status-codes.ts). Refused uploads
 * and registrations are logged at warn with the worker and the reason.
 *
 * With mTLS, every call that names a worker must come from that worker's
 * certificate (shared/wire/peer-binding.ts), checked before anything is
 * counted; GetRunConfig takes any worker or reducer certificate. A refused
 * registration tells an unauthenticated peer (plaintext, `--insecure`) which
 * field differs but not the run's value; the log has both.
 *
 * Knows the wire messages, not grpc-js; knows nothing of NATS.
 */
import { checkInputFingerprints, type RunFingerprints } from '../shared/cluster/fingerprints.js';
import { decodeStats } from '../shared/cluster/stats-json.js';
import { ProtocolError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { isTrainPhase, type TrainPhase } from '../shared/training/phase-settings.js';
import {
  PROTOCOL_VERSION,
  type Assignment,
  type AssignmentRequest,
  type AuditReply,
  type AuditReport,
  type ChecksumReply,
  type ChecksumRequest,
  type Empty,
  type EvalAck,
  type EvalResults,
  type GradientChunk,
  type HeartbeatReply,
  type HeartbeatRequest,
  type LeaveReply,
  type LeaveRequest,
  type MetricsRequest,
  type PullRequest,
  type PushAck,
  type RegisterReply,
  type RegisterRequest,
  type RunConfigReply,
  type RunConfigRequest,
  type StateChunk,
  type StateRequest,
} from '../shared/wire/messages.js';
import { boundUpload, requireWorker } from '../shared/wire/peer-binding.js';
import type { CallContext, CoordinatorHandlers } from '../shared/wire/service.js';
import { stateChunks } from '../shared/wire/state-payload.js';
import { assignmentFor } from './assignment-message.js';
import type { DistributedExecutor } from './distributed-executor.js';
import { receivePartial, serveReduced, type ExchangeSide } from './exchange-handlers.js';
import { parseWorkerTimings } from './worker-timings.js';

const WORKER_ID = /^[A-Za-z0-9_.-]{1,128}$/;

/**
 * The refusal an unauthenticated peer gets for `err` (checkInputFingerprints'
 * or ComputeFingerprint.check's `<who>: <field> differs: expected X, got Y`):
 * the field and its own value, not the run's.
 */
function withoutExpected(err: ProtocolError, who: string, got: RunFingerprints): ProtocolError {
  const rest = err.message.startsWith(`${who}: `) ? err.message.slice(who.length + 2) : '';
  const field = /^(\w+) differs:/.exec(rest)?.[1];
  const value = field !== undefined && field in got ? ` (got ${String(got[field as keyof RunFingerprints])})` : '';
  return new ProtocolError(`${who}: ${field ?? 'a fingerprint'} differs from the run's${value}; the expected value is in the coordinator's log`);
}

function trainPhase(phase: string, what: string): TrainPhase {
  if (!isTrainPhase(phase)) throw new ProtocolError(`${what}: expected phase pretrain or finetune, got ${JSON.stringify(phase)}`);
  return phase;
}

/** Told of the exchange and the workers' timings reports (the coordinator's metrics, coordinator/metrics.ts). */
export interface ServiceObserver {
  received(workerId: string, microBatches: number, bytes: number): void;
  served(workerId: string, bytes: number): void;
  refusedUpload(err: unknown): void;
  timings(workerId: string, fields: Readonly<Record<string, number | boolean | string>>): void;
}

export interface ServiceOptions {
  log: Logger;
  observer?: ServiceObserver;
  /** How long NextAssignment waits before answering 'idle'. */
  pollMs?: number;
  nowMs?: () => number;
}

export class CoordinatorService implements CoordinatorHandlers {
  private readonly log: Logger;
  private readonly pollMs: number;
  private readonly now: () => number;
  private readonly exchange: ExchangeSide;
  private readonly observer: ServiceObserver | undefined;

  constructor(
    private readonly ex: DistributedExecutor,
    opts: ServiceOptions,
  ) {
    this.log = opts.log.child({ component: 'service' });
    this.pollMs = opts.pollMs ?? 20_000;
    this.now = opts.nowMs ?? Date.now;
    this.exchange = {
      log: this.log,
      reduced: ex.reduced,
      roundFor: (w, phase, step) => ex.roundFor(w, phase, step),
      touch: (w) => this.touch(w),
      received: (h) => {
        ex.speeds.record(h.worker_id, h.range!.hi - h.range!.lo, h.compute_ms ?? 0);
        opts.observer?.received(h.worker_id, h.range!.hi - h.range!.lo, h.total_bytes);
      },
      refused: (err) => opts.observer?.refusedUpload(err),
      served: (w, bytes) => opts.observer?.served(w, bytes),
    };
    this.observer = opts.observer;
  }

  private get runId(): string {
    return this.ex.opts.runId;
  }

  private touch(workerId: string): void {
    this.ex.membership.touch(workerId, this.now());
  }

  async getRunConfig(req: RunConfigRequest, ctx: CallContext): Promise<RunConfigReply> {
    requireWorker(ctx, req.worker_id, 'GetRunConfig', ['reducer']);
    if (req.protocol_version !== PROTOCOL_VERSION) {
      const err = new ProtocolError(`worker ${req.worker_id}: protocol_version differs: expected ${PROTOCOL_VERSION}, got ${req.protocol_version}`);
      this.log.warn({ workerId: req.worker_id, err }, 'worker refused');
      throw err;
    }
    return { run_id: this.runId, protocol_version: PROTOCOL_VERSION, run_config_json: this.ex.runConfigJson };
  }

  async register(req: RegisterRequest, ctx: CallContext): Promise<RegisterReply> {
    requireWorker(ctx, req.worker_id, 'Register');
    const who = `registration of worker ${req.worker_id} refused`;
    const refused = (err: unknown): unknown => {
      this.log.warn({ workerId: req.worker_id.slice(0, 130), hostname: req.hostname.slice(0, 255), pid: req.pid, peer: ctx.peer, err }, 'worker refused');
      return err;
    };
    if (!WORKER_ID.test(req.worker_id)) throw refused(new ProtocolError(`worker_id must be 1-128 characters of [A-Za-z0-9_.-], got ${JSON.stringify(req.worker_id)}`));
    try {
      checkInputFingerprints(this.ex.opts.fingerprints, req, who);
      this.ex.compute.check(req.backend_fingerprint, who);
    } catch (err) {
      refused(err);
      // An authenticated peer (mTLS) may see the run's values; anyone else only the field that differs.
      throw ctx.identity === null && err instanceof ProtocolError ? withoutExpected(err, who, req) : err;
    }
    try {
      this.ex.membership.register(req.worker_id, req.hostname, req.pid, this.now()); // bounded: cluster.maxWorkers, id, hostname
    } catch (err) {
      throw refused(err);
    }
    // Synchronous from check to here: two first registrations cannot both pin.
    this.ex.compute.admitted(req.worker_id, req.backend_fingerprint);
    const { phase, step } = this.ex.currentPhase();
    return {
      run_id: this.runId,
      protocol_version: PROTOCOL_VERSION,
      current_step: step,
      phase,
      needs_state: true,
      heartbeat_interval_ms: this.ex.opts.config.cluster.heartbeatIntervalMs,
      membership_version: this.ex.membership.version,
      reducer_addresses: (this.ex.opts.reducers ?? []).map((r) => r.address),
    };
  }

  async nextAssignment(req: AssignmentRequest, ctx: CallContext): Promise<Assignment> {
    requireWorker(ctx, req.worker_id, 'NextAssignment');
    this.touch(req.worker_id);
    const task = await this.ex.tasks.waitAfter(req.after_seq, this.pollMs, ctx.signal);
    this.touch(req.worker_id);
    if (task !== null) this.ex.notePolled(req.worker_id, task.seq);
    return assignmentFor(task, req.worker_id, this.runId, this.ex.membership.version);
  }

  /** Sums each chunk into the step's reduction as it arrives (StepRound); acknowledges once the whole partial is in. */
  pushGradient(chunks: AsyncIterable<GradientChunk>, ctx: CallContext): Promise<PushAck> {
    return receivePartial(boundUpload(chunks, ctx, 'PushGradient'), this.exchange);
  }

  /** Streams the step's reduced gradient (slice 0 with reducers) chunk by chunk, each as soon as it is final. */
  pullReduced(req: PullRequest, ctx: CallContext): AsyncIterable<GradientChunk> {
    requireWorker(ctx, req.worker_id, 'PullReduced');
    return serveReduced(req, trainPhase(req.phase, `PullReduced from ${req.worker_id}`), ctx, this.exchange);
  }

  async openStep(): Promise<Empty> {
    throw new ProtocolError('OpenStep is for reducer processes; this is the coordinator');
  }

  async reassign(): Promise<Empty> {
    throw new ProtocolError('Reassign is for reducer processes; this is the coordinator');
  }

  async heartbeat(req: HeartbeatRequest, ctx: CallContext): Promise<HeartbeatReply> {
    requireWorker(ctx, req.worker_id, 'Heartbeat');
    this.touch(req.worker_id);
    const { phase, step } = this.ex.currentPhase();
    return { coordinator_step: step, phase, drain: false };
  }

  async pushEvalResults(req: EvalResults, ctx: CallContext): Promise<EvalAck> {
    requireWorker(ctx, req.worker_id, 'PushEvalResults');
    this.touch(req.worker_id);
    const run = this.ex.evalFor(req.worker_id, req.seq);
    const what = (i: number): string => `eval chunk ${i} of task ${req.seq} from ${req.worker_id}`;
    const results = req.results.map((r) => ({ index: r.index, stats: decodeStats(r.stats_json, what(r.index)), predictions: Int32Array.from(r.predictions) }));
    return { seq: req.seq, accepted: run.accept(req.worker_id, req.seq, results) };
  }

  async *fetchState(req: StateRequest, ctx: CallContext): AsyncIterable<StateChunk> {
    requireWorker(ctx, req.worker_id, 'FetchState');
    this.touch(req.worker_id);
    const packed = await this.ex.stateFor(req.phase, ctx.signal);
    this.log.info({ workerId: req.worker_id, phase: packed.header.phase, step: packed.header.step, seq: packed.header.seq, bytes: packed.payload.byteLength }, 'serving state');
    yield* stateChunks(packed.header, packed.payload);
    this.ex.membership.markTraining(req.worker_id);
  }

  async reportChecksum(req: ChecksumRequest, ctx: CallContext): Promise<ChecksumReply> {
    requireWorker(ctx, req.worker_id, 'ReportChecksum');
    this.touch(req.worker_id);
    const phase = trainPhase(req.phase, `ReportChecksum from ${req.worker_id}`);
    const r = this.ex.checksums.report(req.worker_id, phase, req.step, req.checksum);
    this.log.debug({ workerId: req.worker_id, phase, step: req.step, match: r.match, compared: r.reference !== '' }, 'checksum reported');
    return { match: r.match, reference_checksum: r.reference };
  }

  /** A digest of an audited micro-batch; compared with the other worker's when both are in (audit-book.ts). */
  async reportAudit(req: AuditReport, ctx: CallContext): Promise<AuditReply> {
    requireWorker(ctx, req.worker_id, 'ReportAudit');
    this.touch(req.worker_id);
    const phase = trainPhase(req.phase, `ReportAudit from ${req.worker_id}`);
    const digest = { sha256: req.sha256, tensors: req.tensors.map((t) => ({ name: t.name, crc32: t.crc32 })), statsJson: req.stats_json, fingerprint: req.fingerprint };
    const outcome = this.ex.audits.report(req.worker_id, phase, req.step, req.micro_batch, digest);
    this.log.debug({ workerId: req.worker_id, phase, step: req.step, microBatch: req.micro_batch, outcome }, 'audit digest reported');
    return { outcome };
  }

  async leave(req: LeaveRequest, ctx: CallContext): Promise<LeaveReply> {
    requireWorker(ctx, req.worker_id, 'Leave');
    if (req.reason !== 'drained' && req.reason !== 'error') {
      throw new ProtocolError(`Leave from ${req.worker_id}: expected reason drained or error, got ${JSON.stringify(req.reason)}`);
    }
    const reassigned = this.ex.leave(req.worker_id, req.reason, req.detail === '' ? (req.reason === 'drained' ? 'asked to leave (SIGTERM)' : 'failing') : req.detail);
    return { reassigned };
  }

  async reportMetrics(req: MetricsRequest, ctx: CallContext): Promise<Empty> {
    requireWorker(ctx, req.worker_id, 'ReportMetrics');
    this.touch(req.worker_id);
    const fields = parseWorkerTimings(req.worker_id, req.json);
    this.log.info({ workerId: req.worker_id, step: req.step, ...fields }, 'worker timings');
    this.observer?.timings(req.worker_id, fields);
    return {};
  }
}

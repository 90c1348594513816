/**
 * The Coordinator service as the gRPC server serves it: the live run's
 * handlers until `finish()`, then a refusal of every call with
 * RunFinishedError (FAILED_PRECONDITION, "run finished"). A coordinator kept
 * up after its run by `--when-done stay` keeps its port this way, so a worker
 * that (re)starts later learns at its first call that there is nothing left
 * to do, instead of retrying an unreachable address until
 * cluster.reconnectTimeoutMs. The server binds its handlers once, hence the
 * switch rather than a second server.
 *
 * Knows the wire messages, not grpc-js; knows nothing of the run itself.
 */
import { RunFinishedError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type {
  Assignment,
  AssignmentRequest,
  AuditReply,
  AuditReport,
  ChecksumReply,
  ChecksumRequest,
  Empty,
  EvalAck,
  EvalResults,
  GradientChunk,
  HeartbeatReply,
  HeartbeatRequest,
  LeaveReply,
  LeaveRequest,
  MetricsRequest,
  PullRequest,
  PushAck,
  RegisterReply,
  RegisterRequest,
  RunConfigReply,
  RunConfigRequest,
  StateChunk,
  StateRequest,
  StepPlan,
} from '../shared/wire/messages.js';
import type { CallContext, CoordinatorHandlers } from '../shared/wire/service.js';

export class FinishableService implements CoordinatorHandlers {
  private finished: { runId: string } | null = null;
  private readonly log: Logger;

  constructor(
    private readonly live: CoordinatorHandlers,
    log: Logger,
  ) {
    this.log = log.child({ component: 'service' });
  }

  /** From now on every call is refused with RunFinishedError naming `runId`. */
  finish(runId: string): void {
    this.finished = { runId };
  }

  /** The live handlers, or RunFinishedError once the run is finished. */
  private use(call: string, workerId: string): CoordinatorHandlers {
    if (this.finished === null) return this.live;
    // Peer-chosen id: bounded in the log line; the refusal itself names only the run.
    this.log.info({ call, workerId: workerId.slice(0, 130) }, 'call refused: run finished');
    throw new RunFinishedError(
      `run finished: ${this.finished.runId} is done and this coordinator only serves its results (--when-done stay); there is nothing to compute`,
    );
  }

  async getRunConfig(req: RunConfigRequest, ctx: CallContext): Promise<RunConfigReply> {
    return this.use('GetRunConfig', req.worker_id).getRunConfig(req, ctx);
  }

  async register(req: RegisterRequest, ctx: CallContext): Promise<RegisterReply> {
    return this.use('Register', req.worker_id).register(req, ctx);
  }

  async nextAssignment(req: AssignmentRequest, ctx: CallContext): Promise<Assignment> {
    return this.use('NextAssignment', req.worker_id).nextAssignment(req, ctx);
  }

  async pushGradient(chunks: AsyncIterable<GradientChunk>, ctx: CallContext): Promise<PushAck> {
    return this.use('PushGradient', '').pushGradient(chunks, ctx);
  }

  async *pullReduced(req: PullRequest, ctx: CallContext): AsyncIterable<GradientChunk> {
    yield* this.use('PullReduced', req.worker_id).pullReduced(req, ctx);
  }

  async heartbeat(req: HeartbeatRequest, ctx: CallContext): Promise<HeartbeatReply> {
    return this.use('Heartbeat', req.worker_id).heartbeat(req, ctx);
  }

  async pushEvalResults(req: EvalResults, ctx: CallContext): Promise<EvalAck> {
    return this.use('PushEvalResults', req.worker_id).pushEvalResults(req, ctx);
  }

  async *fetchState(req: StateRequest, ctx: CallContext): AsyncIterable<StateChunk> {
    yield* this.use('FetchState', req.worker_id).fetchState(req, ctx);
  }

  async reportChecksum(req: ChecksumRequest, ctx: CallContext): Promise<ChecksumReply> {
    return this.use('ReportChecksum', req.worker_id).reportChecksum(req, ctx);
  }

  async reportAudit(req: AuditReport, ctx: CallContext): Promise<AuditReply> {
    return this.use('ReportAudit', req.worker_id).reportAudit(req, ctx);
  }

  async reportMetrics(req: MetricsRequest, ctx: CallContext): Promise<Empty> {
    return this.use('ReportMetrics', req.worker_id).reportMetrics(req, ctx);
  }

  async leave(req: LeaveRequest, ctx: CallContext): Promise<LeaveReply> {
    return this.use('Leave', req.worker_id).leave(req, ctx);
  }

  async openStep(req: StepPlan, ctx: CallContext): Promise<Empty> {
    return this.use('OpenStep', '').openStep(req, ctx);
  }

  async reassign(req: StepPlan, ctx: CallContext): Promise<Empty> {
    return this.use('Reassign', '').reassign(req, ctx);
  }
}

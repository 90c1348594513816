/**
 * The gRPC door of a reducer process (`bertfleet reducer`): the Coordinator
 * service, of which it serves PushGradient and PullReduced for its slice
 * (exchange-handlers.ts, as the coordinator does for slice 0), OpenStep and
 * Reassign from the coordinator, and Heartbeat; every other call is refused,
 * naming the coordinator as the place to ask.
 *
 * With mTLS (shared/wire/peer-binding.ts): OpenStep and Reassign only from
 * the coordinator's certificate; PushGradient and PullReduced only from the
 * certificate of the worker the request names (PullReduced also from the
 * coordinator, which pulls every slice); Heartbeat from a worker or the
 * coordinator.
 *
 * Knows the wire messages, not grpc-js.
 */
import { ProtocolError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { isTrainPhase } from '../shared/training/phase-settings.js';
import type { Empty, GradientChunk, HeartbeatReply, PullRequest, PushAck, StepPlan } from '../shared/wire/messages.js';
import { boundUpload, requireRole, requireWorker } from '../shared/wire/peer-binding.js';
import type { CallContext, CoordinatorHandlers } from '../shared/wire/service.js';
import { receivePartial, serveReduced, type ExchangeSide } from './exchange-handlers.js';
import type { Reducer } from './reducer.js';

export class ReducerService implements CoordinatorHandlers {
  private readonly exchange: ExchangeSide;

  constructor(
    private readonly reducer: Reducer,
    opts: { log: Logger },
  ) {
    this.exchange = {
      log: opts.log.child({ component: 'reducer-service' }),
      reduced: reducer.reduced,
      roundFor: (w, phase, step) => reducer.roundFor(w, phase, step),
    };
  }

  pushGradient(chunks: AsyncIterable<GradientChunk>, ctx: CallContext): Promise<PushAck> {
    return receivePartial(boundUpload(chunks, ctx, 'PushGradient'), this.exchange);
  }

  pullReduced(req: PullRequest, ctx: CallContext): AsyncIterable<GradientChunk> {
    requireWorker(ctx, req.worker_id, 'PullReduced', ['coordinator']);
    if (!isTrainPhase(req.phase)) throw new ProtocolError(`PullReduced from ${req.worker_id}: expected phase pretrain or finetune, got ${JSON.stringify(req.phase)}`);
    return serveReduced(req, req.phase, ctx, this.exchange);
  }

  async openStep(plan: StepPlan, ctx: CallContext): Promise<Empty> {
    requireRole(ctx, ['coordinator'], 'OpenStep');
    this.reducer.open(plan);
    return {};
  }

  async reassign(plan: StepPlan, ctx: CallContext): Promise<Empty> {
    requireRole(ctx, ['coordinator'], 'Reassign');
    this.reducer.reassign(plan);
    return {};
  }

  async heartbeat(_req: unknown, ctx: CallContext): Promise<HeartbeatReply> {
    requireRole(ctx, ['worker', 'coordinator'], 'Heartbeat');
    const { phase, step } = this.reducer.current();
    return { coordinator_step: step, phase, drain: false };
  }

  getRunConfig = refuse('GetRunConfig');
  register = refuse('Register');
  nextAssignment = refuse('NextAssignment');
  pushEvalResults = refuse('PushEvalResults');
  fetchState = refuse('FetchState') as unknown as CoordinatorHandlers['fetchState'];
  reportChecksum = refuse('ReportChecksum');
  reportAudit = refuse('ReportAudit');
  reportMetrics = refuse('ReportMetrics');
  leave = refuse('Leave');
}

function refuse(method: string): () => Promise<never> {
  return async () => {
    throw new ProtocolError(`${method}: this is a bertfleet reducer, which serves only PushGradient, PullReduced and Heartbeat; ask the coordinator`);
  };
}

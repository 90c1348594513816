/**
 * The worker's typed, promise-based view of the Coordinator service: one
 * method per RPC, each with a deadline, tensors in and out as Float32Array.
 * Built on an RpcTransport (grpc.ts makes one with `createCoordinatorClient`),
 * so it knows nothing of grpc-js; errors arrive already mapped to bertfleet
 * classes. Knows nothing of training: it moves what it is given.
 */
import { ProtocolError } from '../errors.js';
import { WIRE_CHUNK_BYTES } from './chunks.js';
import { collectGradient, gradientStream, type GradientSendHeader } from './gradient-stream.js';
import type {
  Assignment,
  AssignmentRequest,
  AuditReply,
  AuditReport,
  ChecksumReply,
  ChecksumRequest,
  EvalAck,
  EvalResults,
  GradientHeader,
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
  StateHeader,
  StateRequest,
  StepPlan,
} from './messages.js';
import type { RpcTransport } from './service.js';
import { collectState, type NamedTensor, type StateExpectation } from './state-payload.js';

export interface CallTimeouts {
  /** GetRunConfig, Register, Heartbeat, ReportChecksum, ReportAudit, ReportMetrics, PushEvalResults. */
  callTimeoutMs: number;
  /** NextAssignment and PullReduced, which wait for the coordinator. */
  longPollTimeoutMs: number;
  /** PushGradient and FetchState: the whole transfer. */
  transferTimeoutMs: number;
}

export const DEFAULT_CALL_TIMEOUTS: Readonly<CallTimeouts> = Object.freeze({
  callTimeoutMs: 10_000,
  longPollTimeoutMs: 120_000,
  transferTimeoutMs: 300_000,
});

/** Per-call override of the deadline, and a signal that cancels the call. */
export interface CallOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

export type GradientUploadHeader = GradientSendHeader;

export class CoordinatorClient {
  readonly address: string;
  private readonly timeouts: CallTimeouts;
  private readonly chunkBytes: number;

  private readonly uploads: RpcTransport;

  /** `uploads` carries PushGradient (its own connection, see grpc.ts); everything else goes over `rpc`. */
  constructor(
    private readonly rpc: RpcTransport,
    opts: { timeouts?: Partial<CallTimeouts>; chunkBytes?: number; uploads?: RpcTransport } = {},
  ) {
    this.uploads = opts.uploads ?? rpc;
    this.address = rpc.address;
    this.timeouts = { ...DEFAULT_CALL_TIMEOUTS, ...opts.timeouts };
    this.chunkBytes = opts.chunkBytes ?? WIRE_CHUNK_BYTES;
  }

  getRunConfig(req: RunConfigRequest, o: CallOptions = {}): Promise<RunConfigReply> {
    return this.rpc.unary('GetRunConfig', req, o.timeoutMs ?? this.timeouts.callTimeoutMs);
  }

  register(req: RegisterRequest, o: CallOptions = {}): Promise<RegisterReply> {
    return this.rpc.unary('Register', req, o.timeoutMs ?? this.timeouts.callTimeoutMs);
  }

  nextAssignment(req: AssignmentRequest, o: CallOptions = {}): Promise<Assignment> {
    return this.rpc.unary('NextAssignment', req, o.timeoutMs ?? this.timeouts.longPollTimeoutMs, o.signal);
  }

  heartbeat(req: HeartbeatRequest, o: CallOptions = {}): Promise<HeartbeatReply> {
    return this.rpc.unary('Heartbeat', req, o.timeoutMs ?? this.timeouts.callTimeoutMs);
  }

  reportChecksum(req: ChecksumRequest, o: CallOptions = {}): Promise<ChecksumReply> {
    return this.rpc.unary('ReportChecksum', req, o.timeoutMs ?? this.timeouts.callTimeoutMs);
  }

  reportAudit(req: AuditReport, o: CallOptions = {}): Promise<AuditReply> {
    return this.rpc.unary('ReportAudit', req, o.timeoutMs ?? this.timeouts.callTimeoutMs);
  }

  pushEvalResults(req: EvalResults, o: CallOptions = {}): Promise<EvalAck> {
    return this.rpc.unary('PushEvalResults', req, o.timeoutMs ?? this.timeouts.callTimeoutMs);
  }

  leave(req: LeaveRequest, o: CallOptions = {}): Promise<LeaveReply> {
    return this.rpc.unary('Leave', req, o.timeoutMs ?? this.timeouts.callTimeoutMs);
  }

  async reportMetrics(req: MetricsRequest, o: CallOptions = {}): Promise<void> {
    await this.rpc.unary('ReportMetrics', req, o.timeoutMs ?? this.timeouts.callTimeoutMs);
  }

  /** Reducers only: prepare to reduce a step (called by the coordinator before it publishes the task). */
  async openStep(plan: StepPlan, o: CallOptions = {}): Promise<void> {
    await this.rpc.unary('OpenStep', plan, o.timeoutMs ?? this.timeouts.callTimeoutMs, o.signal);
  }

  /** Reducers only: hand a departed worker's owed subtrees to `plan.blocks`. */
  async reassign(plan: StepPlan, o: CallOptions = {}): Promise<void> {
    await this.rpc.unary('Reassign', plan, o.timeoutMs ?? this.timeouts.callTimeoutMs, o.signal);
  }

  /**
   * Uploads one partial sum. `payload` is sent from views of its memory:
   * do not modify it until the promise settles.
   */
  pushGradient(header: GradientUploadHeader, payload: Float32Array, o: CallOptions & { chunkBytes?: number } = {}): Promise<PushAck> {
    return this.uploads.clientStream(
      'PushGradient',
      gradientStream(header, payload, o.chunkBytes ?? this.chunkBytes),
      o.timeoutMs ?? this.timeouts.transferTimeoutMs,
    );
  }

  /**
   * Waits for the step's reduced gradient and returns it, after checking
   * length, every chunk's checksum and that it is for `step`: in `into` when
   * given (reuse one buffer across steps; a function is called when the header
   * arrives, i.e. once the coordinator has started the step's reduction, and
   * returns the buffer), else in a fresh array. A buffer's length is the
   * expected size. Chunks arrive as the coordinator finishes summing them.
   */
  async pullReduced(
    req: PullRequest,
    o: CallOptions & { expectedBytes?: number; into?: Float32Array | ((header: GradientHeader) => Float32Array); onPiece?: (index: number) => void } = {},
  ): Promise<Float32Array> {
    const stream = this.rpc.serverStream('PullReduced', req, o.timeoutMs ?? this.timeouts.longPollTimeoutMs);
    const { header, gradient } = await collectGradient(stream, {
      ...(o.expectedBytes !== undefined && { expectedBytes: o.expectedBytes }),
      ...(o.into !== undefined && { into: o.into }),
      ...(o.onPiece !== undefined && { onPiece: o.onPiece }),
    });
    if (header.step !== req.step) {
      throw new ProtocolError(`PullReduced: expected the reduced gradient for step ${req.step}, got step ${header.step}`);
    }
    return gradient;
  }

  /** Parameters and optimizer state, as float32 views by tensor name; `expectedBytes` (the layout's size) is checked before allocating. */
  fetchState(req: StateRequest, o: CallOptions & StateExpectation = {}): Promise<{ header: StateHeader; tensors: Map<string, NamedTensor> }> {
    const stream = this.rpc.serverStream('FetchState', req, o.timeoutMs ?? this.timeouts.transferTimeoutMs);
    return collectState(stream, { ...(o.expectedBytes !== undefined && { expectedBytes: o.expectedBytes }), ...(o.maxPayloadBytes !== undefined && { maxPayloadBytes: o.maxPayloadBytes }) });
  }

  close(): void {
    this.rpc.close();
    if (this.uploads !== this.rpc) this.uploads.close();
  }
}

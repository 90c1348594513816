/**
 * The Coordinator service as plain TypeScript, with no gRPC types: what the
 * coordinator implements (`CoordinatorHandlers`, promises and async
 * iterables) and what the typed client is built on (`RpcTransport`). grpc.ts
 * adapts both to @grpc/grpc-js, so neither the coordinator nor the worker ever
 * sees a grpc-js object and a grpc-js upgrade touches grpc.ts alone.
 */
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
  StepPlan,
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
} from './messages.js';
import type { PeerIdentity } from '../security/identity.js';

/** Per-call facts a handler may need. */
export interface CallContext {
  /** Aborted when the client cancels, its deadline passes or the server is forced down. */
  signal: AbortSignal;
  /** The peer address as the transport reports it, for logs. */
  peer: string;
  /** The server speaks mTLS: every caller presented a certificate signed by the CA. */
  secure: boolean;
  /** Who the caller's certificate names (peer-binding.ts checks it); null on a plaintext server. */
  identity: PeerIdentity | null;
}

/**
 * What the coordinator implements. Throw bertfleet errors (shared/errors.ts)
 * to refuse: status-codes.ts maps them to gRPC status codes at the edge.
 * Streams returned by pullReduced/fetchState are written with backpressure.
 */
export interface CoordinatorHandlers {
  getRunConfig(req: RunConfigRequest, ctx: CallContext): Promise<RunConfigReply>;
  register(req: RegisterRequest, ctx: CallContext): Promise<RegisterReply>;
  nextAssignment(req: AssignmentRequest, ctx: CallContext): Promise<Assignment>;
  pushGradient(chunks: AsyncIterable<GradientChunk>, ctx: CallContext): Promise<PushAck>;
  pullReduced(req: PullRequest, ctx: CallContext): AsyncIterable<GradientChunk>;
  heartbeat(req: HeartbeatRequest, ctx: CallContext): Promise<HeartbeatReply>;
  pushEvalResults(req: EvalResults, ctx: CallContext): Promise<EvalAck>;
  fetchState(req: StateRequest, ctx: CallContext): AsyncIterable<StateChunk>;
  reportChecksum(req: ChecksumRequest, ctx: CallContext): Promise<ChecksumReply>;
  reportAudit(req: AuditReport, ctx: CallContext): Promise<AuditReply>;
  reportMetrics(req: MetricsRequest, ctx: CallContext): Promise<Empty>;
  leave(req: LeaveRequest, ctx: CallContext): Promise<LeaveReply>;
  openStep(req: StepPlan, ctx: CallContext): Promise<Empty>;
  reassign(req: StepPlan, ctx: CallContext): Promise<Empty>;
}

/** RPC name in the .proto -> [request, response], by call shape. */
export interface UnaryMethods {
  GetRunConfig: [RunConfigRequest, RunConfigReply];
  Register: [RegisterRequest, RegisterReply];
  NextAssignment: [AssignmentRequest, Assignment];
  Heartbeat: [HeartbeatRequest, HeartbeatReply];
  PushEvalResults: [EvalResults, EvalAck];
  ReportChecksum: [ChecksumRequest, ChecksumReply];
  ReportAudit: [AuditReport, AuditReply];
  ReportMetrics: [MetricsRequest, Empty];
  OpenStep: [StepPlan, Empty];
  Reassign: [StepPlan, Empty];
  Leave: [LeaveRequest, LeaveReply];
}
export interface ClientStreamMethods {
  PushGradient: [GradientChunk, PushAck];
}
export interface ServerStreamMethods {
  PullReduced: [PullRequest, GradientChunk];
  FetchState: [StateRequest, StateChunk];
}

/**
 * One open channel to the coordinator. Failures reject with bertfleet errors
 * (the server's class restored; UnreachableError when the coordinator is gone).
 */
export interface RpcTransport {
  /** `host:port`, for messages. */
  readonly address: string;
  /** `signal` cancels the call (it then rejects with the signal's reason). */
  unary<M extends keyof UnaryMethods>(method: M, req: UnaryMethods[M][0], timeoutMs: number, signal?: AbortSignal): Promise<UnaryMethods[M][1]>;
  clientStream<M extends keyof ClientStreamMethods>(
    method: M,
    source: Iterable<ClientStreamMethods[M][0]>,
    timeoutMs: number,
  ): Promise<ClientStreamMethods[M][1]>;
  serverStream<M extends keyof ServerStreamMethods>(
    method: M,
    req: ServerStreamMethods[M][0],
    timeoutMs: number,
  ): AsyncIterable<ServerStreamMethods[M][1]>;
  close(): void;
}

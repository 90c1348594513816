/**
 * TypeScript mirrors of the messages in proto/bertfleet.proto, maintained by
 * hand. No code is generated or committed, so there is nothing to keep fresh:
 * when the .proto changes, change this file in the same commit.
 *
 * The shapes are those @grpc/proto-loader produces with the options chosen in
 * grpc.ts: field names as in the .proto (keepCase), uint64 as JS `number`
 * (longs: Number; steps and byte counts stay far below 2^53), every scalar
 * present with its default (defaults: true), unset message fields `null`, and
 * a `kind` discriminator on oneofs. `bytes` arrive as Buffer and may be sent as
 * any Uint8Array. This file knows nothing of gRPC, tensors or training.
 */

/** Bumped on any incompatible change to proto/bertfleet.proto. */
export const PROTOCOL_VERSION = 6;

export type Empty = Record<string, never>;

/** A half-open range [lo, hi) of micro-batch indices: one reduction subtree. */
export interface Range {
  lo: number;
  hi: number;
}

export interface RunConfigRequest {
  worker_id: string;
  protocol_version: number;
}

export interface RunConfigReply {
  run_id: string;
  protocol_version: number;
  run_config_json: string;
}

export interface RegisterRequest {
  worker_id: string;
  protocol_version: number;
  model_config_fingerprint: string;
  vocab_fingerprint: string;
  backend_fingerprint: string;
  pid: number;
  hostname: string;
  data_fingerprint: string;
}

export interface RegisterReply {
  run_id: string;
  protocol_version: number;
  current_step: number;
  phase: string;
  needs_state: boolean;
  heartbeat_interval_ms: number;
  membership_version: number;
  /** With K > 1 reducers: the addresses of reducers 1 .. K-1 (the coordinator is reducer 0). */
  reducer_addresses: string[];
}

export interface AssignmentRequest {
  worker_id: string;
  after_seq: number;
}

export interface MicroBatch {
  index: number;
  examples: number[];
  dropout_seed: number;
}

export interface GlobalCounts {
  sequences: number;
  masked_tokens: number;
  has_masked_tokens: boolean;
}

export interface EvalChunk {
  index: number;
  examples: number[];
}

export type AssignmentKind = 'train' | 'eval' | 'stop' | 'idle';

export interface Assignment {
  run_id: string;
  /** 'pretrain' | 'finetune'; '' for stop and idle. */
  phase: string;
  step: number;
  micro_batch_size: number;
  num_micro_batches: number;
  subtrees: Range[];
  /** An AssignmentKind; a string on the wire, checked by the reader. */
  kind: string;
  seq: number;
  dataset: string;
  micro_batches: MicroBatch[];
  counts: GlobalCounts | null;
  eval_chunks: EvalChunk[];
  membership_version: number;
  /** 'done' | 'failed' | 'stopping', then ': detail' when there is one. */
  stop_reason: string;
  /** Train: hands over micro-batches of a step already sent (another worker left). */
  recovery: boolean;
  /** Train: a micro-batch to compute again alone and report with ReportAudit; null when none. */
  audit: MicroBatch | null;
}

export interface GradientHeader {
  worker_id: string;
  step: number;
  phase: string;
  range: Range | null;
  total_bytes: number;
  /** Every data chunk but the last has exactly this many bytes. */
  chunk_bytes: number;
  /** Uploads: [{index, stats}] as JSON; '' on the reduced gradient. */
  stats_json: string;
  /** Uploads: compute time of the range's micro-batches (ms); 0 (or absent when sending) on the reduced gradient. */
  compute_ms?: number;
}

/** Exactly one of `header` or `data` is set; `kind` names which. A data chunk carries its CRC-32. */
export type GradientChunk =
  | { kind?: 'header'; header: GradientHeader; data?: undefined; data_crc32?: number }
  | { kind?: 'data'; data: Uint8Array; header?: undefined; data_crc32: number };

export interface PushAck {
  step: number;
  range: Range | null;
  received_bytes: number;
}

export interface PullRequest {
  worker_id: string;
  step: number;
  phase: string;
}

export interface HeartbeatRequest {
  worker_id: string;
  step: number;
  status: string;
}

export interface HeartbeatReply {
  coordinator_step: number;
  phase: string;
  drain: boolean;
}

export interface StateRequest {
  worker_id: string;
  /** Wait until this phase has started; '' for the current one. */
  phase: string;
}

export interface TensorMeta {
  name: string;
  shape: number[];
  dtype: string;
  offset: number;
  byte_length: number;
}

export interface StateHeader {
  run_id: string;
  step: number;
  phase: string;
  tensors: TensorMeta[];
  total_bytes: number;
  crc32: number;
  optimizer_json: string;
  seq: number;
}

/** Exactly one of `header` or `data` is set; `kind` names which. */
export type StateChunk =
  | { kind?: 'header'; header: StateHeader; data?: undefined }
  | { kind?: 'data'; data: Uint8Array; header?: undefined };

export interface ChecksumRequest {
  worker_id: string;
  step: number;
  checksum: string;
  phase: string;
}

export interface ChecksumReply {
  match: boolean;
  reference_checksum: string;
}

export interface EvalChunkResult {
  index: number;
  stats_json: string;
  predictions: number[];
}

export interface EvalResults {
  worker_id: string;
  seq: number;
  results: EvalChunkResult[];
}

export interface EvalAck {
  seq: number;
  accepted: number;
}

export interface LeaveRequest {
  worker_id: string;
  /** 'drained' | 'error' */
  reason: string;
  detail: string;
}

export interface LeaveReply {
  reassigned: number;
}

export interface MetricsRequest {
  worker_id: string;
  step: number;
  json: string;
}

export interface PlanBlock {
  worker_id: string;
  subtrees: Range[];
}

/** What a reducer needs to reduce its slice of one step (OpenStep, Reassign). */
export interface StepPlan {
  phase: string;
  step: number;
  num_micro_batches: number;
  blocks: PlanBlock[];
  slice_lo: number;
  slice_hi: number;
  chunk_bytes: number;
  /** Reassign: the departed worker whose owed subtrees `blocks` take over. */
  reassigned_from: string;
  pullers: string[];
}

export interface TensorCrc {
  name: string;
  crc32: number;
}

export interface AuditReport {
  worker_id: string;
  phase: string;
  step: number;
  micro_batch: number;
  sha256: string;
  tensors: TensorCrc[];
  stats_json: string;
  fingerprint: string;
}

export type AuditOutcome = 'waiting' | 'match' | 'mismatch' | 'dropped';

export interface AuditReply {
  /** An AuditOutcome; a string on the wire. */
  outcome: string;
}

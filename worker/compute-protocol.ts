/**
 * The messages between a worker's main thread (ComputeHost) and its compute
 * thread: one request per call, answered in order by a reply with the same id.
 * Float32Array payloads cross in transfer lists; `transferList` picks the
 * buffers that can move without a copy. Errors cross as the gRPC edge's
 * encoding (shared/wire/status-codes.ts, the one table of error classes), so a
 * ShapeError thrown in the thread is a ShapeError with the same fields here.
 *
 * Knows nothing of tfjs, replicas or loggers: plain data only.
 */
import type { BackendInfo, BackendName } from '../shared/backend/select.js';
import type { RunFingerprints } from '../shared/cluster/fingerprints.js';
import type { RunConfig } from '../shared/config/run-config.js';
import { BertfleetError } from '../shared/errors.js';
import type { BertConfig } from '../shared/model/config.js';
import { fromWireError, toWireError } from '../shared/wire/status-codes.js';
import type { ApplyResult, AuditDigest, ChunkEval, GradientsResult, ReplicaCompute, ReplicaState } from './compute-port.js';
import type { ReadyPartial } from './compute.js';

/** What the thread is started with (its workerData). */
export interface ThreadOptions {
  config: RunConfig;
  backend: { name: BackendName; blasThreads: number };
  logLevel: string;
  logBindings: Record<string, unknown>;
  delayMsPerMicroBatch: number;
  /** Test hook: 'audit-flip' flips one bit of every audit gradient before its digest (a worker that computes wrong). */
  faultInject: FaultInjection;
}

/** The test hooks of `BERTFLEET_TEST_FAULT_INJECT` (read by cli/worker.ts only). */
export type FaultInjection = 'none' | 'audit-flip';

export interface Started {
  fingerprints: RunFingerprints;
  bert: BertConfig;
  numLabels: number;
  backend: BackendInfo;
}

/** Arguments and results are the port's (compute-port.ts), so ComputeHost is a ReplicaCompute. */
export type LoadArgs = ReplicaState;
export type GradientsArgs = Parameters<ReplicaCompute['gradients']>[0];
export type EvalArgs = Parameters<ReplicaCompute['evaluate']>[0];
export type EvalResult = ChunkEval[];
export type AuditArgs = Parameters<NonNullable<ReplicaCompute['audit']>>[0];
export type { ApplyResult, GradientsResult };

export interface ApplyArgs {
  grad: Float32Array;
  step: number;
  checksum: boolean;
}

/** Each call: its arguments and its result. */
export interface Calls {
  start: { args: Record<string, never>; result: Started };
  load: { args: LoadArgs; result: null };
  gradients: { args: GradientsArgs; result: GradientsResult };
  apply: { args: ApplyArgs; result: ApplyResult };
  checksum: { args: Record<string, never>; result: string };
  evaluate: { args: EvalArgs; result: EvalResult };
  drop: { args: Record<string, never>; result: null };
  recycle: { args: { grad: Float32Array }; result: null };
  audit: { args: AuditArgs; result: AuditDigest };
}

export type CallKind = keyof Calls;

export type Request = { [K in CallKind]: { id: number; kind: K; args: Calls[K]['args'] } }[CallKind];

/** An error as it crosses: the gRPC edge's encoding plus the thread's stack. */
export interface EncodedError {
  code: number;
  details: string;
  trailer: Uint8Array | null;
  stack: string;
}

export type Reply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: EncodedError };

/** Sent during a `gradients` call, before its reply: one subtree's sum, complete. */
export interface Progress {
  id: number;
  partial: ReadyPartial;
}

export function encodeError(err: unknown): EncodedError {
  const wire = toWireError(err);
  const stack = err instanceof Error ? (err.stack ?? `${err.name}: ${err.message}`) : String(err);
  return { ...wire, stack };
}

/**
 * The error the thread threw, as the same bertfleet class with the same
 * message and fields; any other error becomes a BertfleetError naming it.
 * The thread's stack rides along as `cause`.
 */
export function decodeError(e: EncodedError, call: CallKind): Error {
  const cause = new Error(`in the compute thread`);
  cause.stack = `compute thread stack:\n${e.stack}`;
  if (e.trailer === null) return new BertfleetError(`compute thread: ${call} failed: ${e.details}`, { cause });
  return fromWireError({ code: e.code, details: e.details, trailer: e.trailer, call: `compute thread ${call}`, timeoutMs: 0 }, cause);
}

/**
 * The buffers to transfer for `arrays`: each array whose view covers its whole
 * (non-shared) buffer, once. Others are copied by postMessage; use `owned` to
 * make them transferable first.
 */
export function transferList(arrays: readonly ArrayBufferView[]): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const a of arrays) {
    if (a.buffer instanceof ArrayBuffer && a.byteOffset === 0 && a.byteLength === a.buffer.byteLength) out.add(a.buffer);
  }
  return [...out];
}

/** `a` itself when it owns its whole buffer, else a copy that does (so it can be transferred). */
export function owned<T extends Float32Array | Int32Array>(a: T): T {
  return a.buffer instanceof ArrayBuffer && a.byteOffset === 0 && a.byteLength === a.buffer.byteLength ? a : (a.slice() as T);
}

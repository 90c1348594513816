/**
 * An Assignment message as the worker acts on it: checked once on arrival
 * (kind, phase, dataset, counts), converted to the shapes WorkerCompute takes.
 * A malformed assignment is a ProtocolError naming the field and its value.
 *
 * Knows the wire message shapes, nothing of gRPC.
 */
import { ProtocolError } from '../shared/errors.js';
import type { GlobalCounts } from '../shared/model/losses.js';
import type { DatasetName } from '../shared/training/batches.js';
import { isTrainPhase, type TrainPhase } from '../shared/training/phase-settings.js';
import type { Range } from '../shared/training/tree-sum.js';
import type { Assignment } from '../shared/wire/messages.js';
import type { MicroInput } from './compute.js';

const DATASETS: readonly DatasetName[] = ['pretrain', 'pretrain-heldout', 'classify-train', 'classify-validation', 'classify-test'];

export type WorkerTask =
  | { kind: 'idle' }
  | { kind: 'stop'; seq: number; reason: string }
  | {
    kind: 'train'; seq: number; phase: TrainPhase; step: number; dataset: DatasetName; micro: MicroInput[]; subtrees: Range[]; counts: GlobalCounts; recovery: boolean;
    /** A micro-batch to compute again alone and report (the gradient audit); null when none. */
    audit: MicroInput | null;
  }
  | { kind: 'eval'; seq: number; phase: TrainPhase; step: number; dataset: DatasetName; chunks: { index: number; examples: number[] }[]; recovery: boolean };

export function decodeAssignment(a: Assignment): WorkerTask {
  const bad = (field: string, expected: string, got: unknown): ProtocolError =>
    new ProtocolError(`assignment ${a.seq}: ${field}: expected ${expected}, got ${JSON.stringify(got)}`);
  if (a.kind === 'idle') return { kind: 'idle' };
  if (a.kind === 'stop') return { kind: 'stop', seq: a.seq, reason: a.stop_reason };
  if (a.kind !== 'train' && a.kind !== 'eval') throw bad('kind', 'train, eval, stop or idle', a.kind);
  if (!isTrainPhase(a.phase)) throw bad('phase', 'pretrain or finetune', a.phase);
  if (!(DATASETS as readonly string[]).includes(a.dataset)) throw bad('dataset', DATASETS.join(', '), a.dataset);
  const base = { seq: a.seq, phase: a.phase, step: a.step, dataset: a.dataset as DatasetName, recovery: a.recovery };
  if (a.kind === 'eval') return { kind: 'eval', ...base, chunks: a.eval_chunks.map((c) => ({ index: c.index, examples: c.examples })) };
  if (a.counts === null || a.counts.sequences < 1) throw bad('counts.sequences', 'a positive count', a.counts?.sequences);
  const counts: GlobalCounts = { sequences: a.counts.sequences, ...(a.counts.has_masked_tokens && { maskedTokens: a.counts.masked_tokens }) };
  const micro = a.micro_batches.map((m) => ({ index: m.index, examples: m.examples, dropoutSeed: m.dropout_seed }));
  const covered = a.subtrees.reduce((n, r) => n + (r.hi - r.lo), 0);
  if (covered !== micro.length) throw bad('subtrees', `ranges covering the ${micro.length} micro-batches given`, a.subtrees);
  const audit = a.audit === null ? null : { index: a.audit.index, examples: a.audit.examples, dropoutSeed: a.audit.dropout_seed };
  if (audit !== null && audit.index >= a.num_micro_batches) throw bad('audit.index', `an index below num_micro_batches (${a.num_micro_batches})`, audit.index);
  return { kind: 'train', ...base, micro, subtrees: a.subtrees.map((r) => ({ lo: r.lo, hi: r.hi })), counts, audit };
}

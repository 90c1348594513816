/**
 * A task as one worker sees it: the Assignment message with only that
 * worker's share (its micro-batches and the subtrees it uploads, or its eval
 * chunks), and, for the two workers of the step's gradient audit, the
 * audited micro-batch. Workers outside the task's partition get the task with no work: for
 * a training step they still pull and apply the reduced gradient; a recovery
 * task without work for them is theirs to skip.
 *
 * Knows the wire message shapes, nothing of gRPC.
 */
import type { Assignment } from '../shared/wire/messages.js';
import type { Task } from './task-log.js';

const EMPTY: Omit<Assignment, 'run_id' | 'kind' | 'seq' | 'membership_version'> = {
  phase: '',
  step: 0,
  micro_batch_size: 0,
  num_micro_batches: 0,
  subtrees: [],
  dataset: '',
  micro_batches: [],
  counts: null,
  eval_chunks: [],
  stop_reason: '',
  recovery: false,
  audit: null,
};

/** Indices covered by `ranges`, in order. */
function indicesOf(ranges: readonly { lo: number; hi: number }[]): number[] {
  return ranges.flatMap((r) => Array.from({ length: r.hi - r.lo }, (_, k) => r.lo + k));
}

/** `task` for `workerId`; null (no task yet) is an 'idle' reply: poll again. */
export function assignmentFor(task: Task | null, workerId: string, runId: string, membershipVersion: number): Assignment {
  if (task === null) return { ...EMPTY, run_id: runId, kind: 'idle', seq: 0, membership_version: membershipVersion };
  const base = { ...EMPTY, run_id: runId, seq: task.seq, membership_version: task.membershipVersion };
  if (task.kind === 'stop') return { ...base, kind: 'stop', stop_reason: task.detail === '' ? task.reason : `${task.reason}: ${task.detail}` };
  const block = task.blocks.find((b) => b.workerId === workerId);
  const mine = indicesOf(block?.ranges ?? []);
  if (task.kind === 'eval') {
    const eval_chunks = mine.map((index) => ({ index, examples: [...task.chunks[index]!] }));
    return { ...base, kind: 'eval', phase: task.phase, step: task.step, dataset: task.dataset, eval_chunks, recovery: task.recovery };
  }
  const wire = (i: number): Assignment['micro_batches'][number] => {
    const m = task.microBatches[i]!;
    return { index: m.index, examples: [...m.examples], dropout_seed: m.dropoutSeed };
  };
  const micro_batches = mine.map(wire);
  const a = task.audit;
  const audit = a !== undefined && !task.recovery && (a.owner === workerId || a.auditor === workerId) ? wire(a.index) : null;
  return {
    ...base,
    kind: 'train',
    phase: task.phase,
    step: task.step,
    dataset: task.dataset,
    micro_batch_size: task.microBatchSize,
    num_micro_batches: task.microBatches.length,
    micro_batches,
    subtrees: block?.subtrees.map((r) => ({ ...r })) ?? [],
    counts: {
      sequences: task.counts.sequences,
      masked_tokens: task.counts.maskedTokens ?? 0,
      has_masked_tokens: task.counts.maskedTokens !== undefined,
    },
    recovery: task.recovery,
    audit,
  };
}

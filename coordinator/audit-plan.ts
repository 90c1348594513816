/**
 * Which micro-batch of a step is audited and by whom: on every step whose
 * completion brings the phase's completed steps to a multiple of
 * `cluster.auditEverySteps`, micro-batch `step mod M` is computed by its
 * owner (the worker whose block holds it) and, again, by the auditor: the
 * first live worker after the owner in id order (wrapping round), who does
 * not own it. A pure function of (step, M, blocks, live ids), so the choice
 * goes round the micro-batches and the workers as steps pass.
 *
 * Knows nothing of gRPC, of tasks or of how gradients are compared.
 */
import type { Block } from './partition.js';

export interface AuditPlan {
  /** The audited micro-batch's index in [0, M). */
  index: number;
  /** The worker whose block holds the micro-batch. */
  owner: string;
  /** Another live worker, which computes the micro-batch too. */
  auditor: string;
}

/** `step` (0-based, within its phase) is audited when its completion makes the phase's step count a multiple of `everySteps`; 0 = never. */
export function auditDue(everySteps: number, step: number): boolean {
  return everySteps > 0 && (step + 1) % everySteps === 0;
}

/** The audit of `step`, or null when no second live worker exists (or no block holds the micro-batch). */
export function planAudit(step: number, microBatches: number, blocks: readonly Block[], liveIds: readonly string[]): AuditPlan | null {
  const index = step % microBatches;
  const owner = blocks.find((b) => b.ranges.some((r) => r.lo <= index && index < r.hi))?.workerId;
  if (owner === undefined) return null;
  const others = [...new Set(liveIds)].filter((id) => id !== owner).sort();
  if (others.length === 0) return null;
  return { index, owner, auditor: others.find((id) => id > owner) ?? others[0]! };
}

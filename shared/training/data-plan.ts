/**
 * The data plan: which examples make up micro-batch j of step s in a phase.
 * A pure function of (seed, phase, dataset size, batch sizes, step), so it is
 * resumable at any step and independent of how many workers there are. Epochs
 * are seeded permutations laid end to end (as DistributedSampler's seed+epoch,
 * but owned by the coordinator and never strided by rank).
 */
import { rngFor } from '../data/rng.js';
import { ConfigError } from '../errors.js';

export interface PlanSpec {
  /** Distinguishes the phases' streams (e.g. 'pretrain', 'finetune'). */
  stream: string;
  seed: number;
  numExamples: number;
  globalBatch: number;
  microBatch: number;
}

export function checkBatchSizes(what: string, globalBatch: number, microBatch: number): void {
  const problems: string[] = [];
  if (!Number.isInteger(globalBatch) || globalBatch < 1) problems.push(`${what} global batch must be a positive integer, got ${globalBatch}`);
  if (!Number.isInteger(microBatch) || microBatch < 1) problems.push(`${what} micro-batch must be a positive integer, got ${microBatch}`);
  else if (globalBatch % microBatch !== 0) {
    problems.push(`${what} micro-batch (${microBatch}) does not divide the global batch (${globalBatch}); choose a divisor such as ${divisors(globalBatch).join(', ')}`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
}

function divisors(n: number): number[] {
  const out: number[] = [];
  for (let d = 1; d <= n && out.length < 8; d++) if (n % d === 0) out.push(d);
  return out;
}

/** 32-bit FNV-1a of a string, for deriving stream seeds. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export class DataPlan {
  readonly microPerStep: number;
  private cachedEpoch = -1;
  private cachedPerm: Uint32Array = new Uint32Array(0);

  constructor(readonly spec: PlanSpec) {
    checkBatchSizes(spec.stream, spec.globalBatch, spec.microBatch);
    if (spec.numExamples < 1) throw new ConfigError([`${spec.stream}: the dataset is empty`]);
    this.microPerStep = spec.globalBatch / spec.microBatch;
  }

  private permutation(epoch: number): Uint32Array {
    if (epoch !== this.cachedEpoch) {
      const perm = new Uint32Array(this.spec.numExamples);
      for (let i = 0; i < perm.length; i++) perm[i] = i;
      rngFor(this.spec.seed, hash32(`${this.spec.stream}:${epoch}`), 21).shuffle(perm);
      this.cachedEpoch = epoch;
      this.cachedPerm = perm;
    }
    return this.cachedPerm;
  }

  /** Example indices of micro-batch `micro` of `step`, in order. */
  examples(step: number, micro: number): number[] {
    if (micro < 0 || micro >= this.microPerStep) throw new RangeError(`micro-batch ${micro} out of range [0, ${this.microPerStep})`);
    const { numExamples: n, globalBatch: g, microBatch: m } = this.spec;
    const out: number[] = [];
    const start = step * g + micro * m;
    for (let k = start; k < start + m; k++) out.push(this.permutation(Math.floor(k / n))[k % n]!);
    return out;
  }

  /** The epoch (possibly fractional) reached after `steps` steps. */
  epochsAfter(steps: number): number {
    return (steps * this.spec.globalBatch) / this.spec.numExamples;
  }
}

/** The dropout seed of micro-batch j of step s in a phase: a uint32 from (run seed, phase, step, j). */
export function dropoutSeed(runSeed: number, stream: string, step: number, micro: number): number {
  let h = hash32(`${stream}:${runSeed}:${step}:${micro}`);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  return h >>> 0;
}

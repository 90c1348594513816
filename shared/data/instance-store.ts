/**
 * Compact in-memory storage for pretraining instances while they are made,
 * before the final shuffle and the write to the cache: one growable Int32Array
 * holding, per instance, [length, lengthA, numMasked, isRandomNext,
 * tokens[length], positions[numMasked], labels[numMasked]]. Millions of small
 * JS arrays would cost far more memory and GC time. Knows nothing of masking
 * rules, files or the on-disk record layout.
 */

export interface Instance {
  /** [CLS] A [SEP] B [SEP], masked. */
  tokens: Int32Array;
  /** Number of A tokens (without [CLS]/[SEP]). */
  lengthA: number;
  positions: readonly number[];
  labels: readonly number[];
  isRandomNext: boolean;
}

const HEADER = 4;

export class InstanceStore {
  private data = new Int32Array(1 << 16);
  private used = 0;
  private offsets: number[] = [];

  get size(): number {
    return this.offsets.length;
  }

  add(inst: Instance): void {
    const n = inst.positions.length;
    const need = HEADER + inst.tokens.length + 2 * n;
    if (this.used + need > this.data.length) {
      const grown = new Int32Array(Math.max(this.data.length * 2, this.used + need));
      grown.set(this.data.subarray(0, this.used));
      this.data = grown;
    }
    const d = this.data;
    let o = this.used;
    this.offsets.push(o);
    d[o++] = inst.tokens.length;
    d[o++] = inst.lengthA;
    d[o++] = n;
    d[o++] = inst.isRandomNext ? 1 : 0;
    d.set(inst.tokens, o);
    o += inst.tokens.length;
    for (let k = 0; k < n; k++) d[o + k] = inst.positions[k]!;
    for (let k = 0; k < n; k++) d[o + n + k] = inst.labels[k]!;
    this.used = o + 2 * n;
  }

  /** Instance `i` as views into the store (valid until the next add). */
  get(i: number): Instance {
    const d = this.data;
    const o = this.offsets[i]!;
    const length = d[o]!;
    const n = d[o + 2]!;
    const tokensAt = o + HEADER;
    const positionsAt = tokensAt + length;
    return {
      tokens: d.subarray(tokensAt, positionsAt),
      lengthA: d[o + 1]!,
      positions: Array.from(d.subarray(positionsAt, positionsAt + n)),
      labels: Array.from(d.subarray(positionsAt + n, positionsAt + 2 * n)),
      isRandomNext: d[o + 3] === 1,
    };
  }
}

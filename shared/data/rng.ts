/**
 * A small seeded PRNG for data preparation: xoshiro128** (Blackman & Vigna),
 * 128 bits of state in four uint32 words, 32-bit integer ops only (Math.imul),
 * so it is fast enough for millions of draws and identical on every platform.
 * The methods mirror the Python `random.Random` calls that google-research/bert's
 * create_pretraining_data.py makes (random(), randint(a, b) inclusive, shuffle
 * from the back), so the algorithm reads the same; the bit streams differ from
 * Python's Mersenne Twister, so outputs are not byte-equal to the Python script.
 * The state is serialisable (`getState`/`Rng.fromState`) for resumable runs.
 * This file knows nothing of tokens, files or logging.
 */
import { ConfigError } from '../errors.js';

/** Serialised generator state: four uint32 words as 8-digit hex, joined by '-'. */
export type RngState = string;

const TWO_POW_32 = 0x1_0000_0000;

/**
 * A generator for (run seed, 32-bit label hash) that uses every bit of both:
 * the seed's low `lowBits` bits times 2^32 plus the hash make the 52/53-bit
 * seed, and the seed's remaining high bits pick the stream, so two runs whose
 * seeds differ never share a generator, whatever the difference. (Seeds
 * below 2^lowBits get the generators they always had: stream 0.)
 */
export function rngFor(runSeed: number, labelHash: number, lowBits: 20 | 21): Rng {
  if (!Number.isInteger(runSeed) || runSeed < 0 || runSeed >= 2 ** 31) {
    throw new ConfigError([`seed must be an integer in [0, 2^31 - 1], got ${runSeed}`]);
  }
  const low = runSeed % 2 ** lowBits;
  return new Rng(low * 2 ** 32 + (labelHash >>> 0), (runSeed - low) / 2 ** lowBits);
}

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /**
   * Seeds the 128-bit state from `seed` (a safe non-negative integer) with
   * SplitMix64. `stream` (0–2047) gives independent generators for one seed,
   * for separate uses of the same user seed (it fills bits 53–63 of the start).
   */
  constructor(seed: number, stream = 0) {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new ConfigError([`seed must be a non-negative safe integer, got ${seed}`]);
    }
    if (!Number.isInteger(stream) || stream < 0 || stream > 2047) {
      throw new ConfigError([`rng stream must be an integer in [0, 2047], got ${stream}`]);
    }
    // SplitMix64 expands the seed (BigInt only here, four times per generator).
    let x = BigInt(seed) | (BigInt(stream) << 53n);
    const words: number[] = [];
    const mask = (1n << 64n) - 1n;
    for (let i = 0; i < 2; i++) {
      x = (x + 0x9e3779b97f4a7c15n) & mask;
      let z = x;
      z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & mask;
      z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & mask;
      z = z ^ (z >> 31n);
      words.push(Number(z & 0xffffffffn), Number(z >> 32n));
    }
    [this.s0, this.s1, this.s2, this.s3] = words as [number, number, number, number];
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1; // all-zero state is a fixed point
  }

  static fromState(state: RngState): Rng {
    const parts = state.split('-');
    if (parts.length !== 4 || !parts.every((p) => /^[0-9a-f]{8}$/.test(p))) {
      throw new ConfigError([`rng state must be four 8-digit hex words joined by '-', got "${state}"`]);
    }
    const rng = new Rng(0);
    [rng.s0, rng.s1, rng.s2, rng.s3] = parts.map((p) => parseInt(p, 16)) as [number, number, number, number];
    return rng;
  }

  getState(): RngState {
    return [this.s0, this.s1, this.s2, this.s3].map((w) => (w >>> 0).toString(16).padStart(8, '0')).join('-');
  }

  /** A uniform uint32. */
  nextUint32(): number {
    const s1 = this.s1;
    const t = s1 << 9;
    let r = Math.imul(s1, 5);
    r = Math.imul((r << 7) | (r >>> 25), 9);
    this.s2 ^= this.s0;
    this.s3 ^= s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = (this.s3 << 11) | (this.s3 >>> 21);
    return r >>> 0;
  }

  /** A uniform float in [0, 1) with 53 random bits, built as Python's random() builds it. */
  random(): number {
    const a = this.nextUint32() >>> 5;
    const b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** A uniform integer in [0, n), unbiased (rejection sampling); 1 <= n <= 2^32. */
  below(n: number): number {
    if (!(n >= 1 && n <= TWO_POW_32) || !Number.isInteger(n)) {
      throw new RangeError(`Rng.below: n must be an integer in [1, 2^32], got ${n}`);
    }
    const limit = TWO_POW_32 - (TWO_POW_32 % n);
    let x = this.nextUint32();
    while (x >= limit) x = this.nextUint32();
    return x % n;
  }

  /** A uniform integer in [lo, hi], both inclusive, as Python's randint. */
  randint(lo: number, hi: number): number {
    if (hi < lo) throw new RangeError(`Rng.randint: empty range [${lo}, ${hi}]`);
    return lo + this.below(hi - lo + 1);
  }

  /** Fisher–Yates in place, from the back, as Python's random.shuffle. */
  shuffle<T>(items: T[] | Int32Array | Uint32Array): void {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.below(i + 1);
      const tmp = items[i]!;
      items[i] = items[j]!;
      items[j] = tmp;
    }
  }
}

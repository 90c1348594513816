/**
 * Micro-benchmark: the step's flat-vector arithmetic in the JavaScript loops
 * (shared/training/vector-js.ts) vs the addon's C loops (native/src/vector.c),
 * on tiny's gradient size (4.43 M floats) and BERT-base's (110 M): a += b (the
 * tree sum), one AdamW update, the sum of squares of global-norm clipping and
 * its scaling. Each case also checks that both give the same bytes.
 * JS and native runs alternate, so on a loaded machine both see the same load;
 * the speed-up is the median of the per-pair ratios.
 * Run: npx tsx bench/vector.ts [--sizes=4430000,110000000] [--repeats=7] [--isa=auto|baseline]
 * (--isa=baseline: the addon's SSE2 loops even where the CPU has AVX2.)
 * Prints a table (median ms, after one warm-up each) and one JSON line per case.
 */
import { loadNativeVector } from '../shared/backend/native-addon.js';
import { jsVectorOps, type VectorOps } from '../shared/training/vector-js.js';

function flag(name: string, fallback: string): string {
  const hit = process.argv.find((a) => a.startsWith(`--${name}=`));
  return hit === undefined ? fallback : hit.slice(name.length + 3);
}

const sizes = flag('sizes', '4430000,110000000').split(',').map(Number);
const repeats = Number(flag('repeats', '7'));
const isa = flag('isa', 'auto');
if (isa !== 'auto' && isa !== 'baseline') throw new Error(`--isa: expected auto or baseline, got ${isa}`);

/** Gradient-like values: random sign, magnitudes over 6 decades. */
function gradientLike(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 10 ** ((s & 0xff) / 42 - 6);
  }
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function sameBytes(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

interface Row {
  size: number;
  op: string;
  jsMs: number;
  nativeMs: number;
  /** Median of jsMs / nativeMs over the alternating pairs. */
  speedup: number;
  sameBytes: boolean;
}

interface Case {
  op: string;
  /** Puts the inputs back (untimed). */
  reset: () => void;
  run: (ops: VectorOps) => void;
  /** What the run produced, to compare JS with native. */
  result: () => Float32Array;
}

function msOf(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

function measure(size: number, c: Case, nat: VectorOps): Row {
  const out: Float32Array[] = [];
  for (const ops of [jsVectorOps, nat]) {
    c.reset();
    c.run(ops); // warm-up, and the result to compare
    out.push(c.result());
  }
  const js: number[] = [];
  const native: number[] = [];
  for (let r = 0; r < repeats; r++) {
    c.reset();
    js.push(msOf(() => c.run(jsVectorOps)));
    c.reset();
    native.push(msOf(() => c.run(nat)));
  }
  const speedup = median(js.map((t, i) => t / native[i]!));
  return { size, op: c.op, jsMs: median(js), nativeMs: median(native), speedup, sameBytes: sameBytes(out[0]!, out[1]!) };
}

function cases(n: number): Case[] {
  const base = gradientLike(n, 1);
  const b = gradientLike(n, 2);
  const work = new Float32Array(n);
  const m = new Float32Array(n);
  const v = new Float32Array(n);
  const decay = Uint8Array.from({ length: n }, (_, i) => (i % 7 === 0 ? 0 : 1));
  const sum = new Float64Array(1);
  const prefix = (x: Float32Array) => x.slice(0, Math.min(n, 1 << 22)); // enough to compare
  return [
    { op: 'add a += b', reset: () => work.set(base), run: (ops) => ops.addInto(work, b), result: () => prefix(work) },
    { op: 'scale x *= c', reset: () => work.set(base), run: (ops) => ops.scaleInPlace(work, 0.37), result: () => prefix(work) },
    {
      op: 'sum of squares',
      reset: () => {},
      run: (ops) => (sum[0] = ops.sumOfSquares(base)),
      result: () => new Float32Array(sum.buffer.slice(0)),
    },
    {
      op: 'AdamW step',
      reset: () => {
        work.set(base);
        m.set(b);
        for (let i = 0; i < n; i++) v[i] = b[i]! * b[i]!;
      },
      run: (ops) => ops.adamWStep(work, b, m, v, decay, 1e-4, 0.9, 0.999, 1e-6, 0.01),
      result: () => Float32Array.from([...prefix(work).subarray(0, 1 << 20), ...m.subarray(0, 1 << 20), ...v.subarray(0, 1 << 20)]),
    },
  ];
}

const nat = loadNativeVector();
nat.setVectorIsa(isa);
const rows: Row[] = [];
for (const n of sizes) for (const c of cases(n)) rows.push(measure(n, c, nat));

console.log(`median of ${repeats} alternating JS/native runs after a warm-up; native loops ${nat.getVectorIsa()}; node ${process.version}`);
console.log('| floats | op | JS ms | native ms | speed-up | same bytes |');
console.log('|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${(r.size / 1e6).toFixed(2)} M | ${r.op} | ${r.jsMs.toFixed(1)} | ${r.nativeMs.toFixed(1)} | ${r.speedup.toFixed(1)}× | ${r.sameBytes ? 'yes' : 'NO'} |`);
}
for (const r of rows) console.log(JSON.stringify({ bench: 'vector', isa: nat.getVectorIsa(), ...r }));
if (rows.some((r) => !r.sameBytes)) {
  console.error('bench/vector: native and JS results differ');
  process.exitCode = 1;
}

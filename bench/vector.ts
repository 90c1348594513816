/**
 * Micro-benchmark: the step's flat-vector arithmetic in the JavaScript loops
 * (shared/training/vector-js.ts) vs the addon's C loops (native/src/vector.c),
 * on tiny's gradient size (4.43 M floats) and BERT-base's (110 M): a += b (the
 * tree sum), one AdamW update, the sum of squares of global-norm clipping and
 * its scaling. Each case also checks that both give the same bytes.
 * Run: npx tsx bench/vector.ts [--sizes=4430000,110000000] [--repeats=5] [--isa=auto|baseline]
 * (--isa=baseline: the addon's SSE2 loops even where the CPU has AVX2.)
 * Prints a table (median ms of the repeats, after one warm-up) and one JSON line per case.
 */
import { loadNativeVector } from '../shared/backend/native-addon.js';
import { jsVectorOps, type VectorOps } from '../shared/training/vector-js.js';

function flag(name: string, fallback: string): string {
  const hit = process.argv.find((a) => a.startsWith(`--${name}=`));
  return hit === undefined ? fallback : hit.slice(name.length + 3);
}

const sizes = flag('sizes', '4430000,110000000').split(',').map(Number);
const repeats = Number(flag('repeats', '5'));
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

/** Median ms of `repeats` runs after one warm-up; `setup` runs untimed before each. */
function time(run: () => void, setup: () => void = () => {}): number {
  setup();
  run();
  const ms: number[] = [];
  for (let r = 0; r < repeats; r++) {
    setup();
    const t0 = process.hrtime.bigint();
    run();
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(ms);
}

function sameBytes(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

interface Row {
  size: number;
  op: string;
  jsMs: number;
  nativeMs: number;
  sameBytes: boolean;
}

function measure(n: number, nat: VectorOps): Row[] {
  const rows: Row[] = [];
  const b = gradientLike(n, 2);
  const base = gradientLike(n, 1);
  const work = new Float32Array(n);
  const out = { js: new Float32Array(0), native: new Float32Array(0) };
  const each = (op: string, run: (ops: VectorOps, x: Float32Array) => void, check = true): void => {
    const ms = { js: 0, native: 0 };
    for (const [name, ops] of [['js', jsVectorOps], ['native', nat]] as const) {
      ms[name] = time(() => run(ops, work), () => work.set(base));
      work.set(base);
      run(ops, work);
      out[name] = work.slice(0, Math.min(n, 1 << 22)); // a prefix is enough to compare
    }
    rows.push({ size: n, op, jsMs: ms.js, nativeMs: ms.native, sameBytes: !check || sameBytes(out.js, out.native) });
  };
  each('add a += b', (ops, a) => ops.addInto(a, b));
  each('scale x *= c', (ops, x) => ops.scaleInPlace(x, 0.37));
  const sums = { js: 0, native: 0 };
  rows.push({
    size: n,
    op: 'sum of squares',
    jsMs: time(() => (sums.js = jsVectorOps.sumOfSquares(base))),
    nativeMs: time(() => (sums.native = nat.sumOfSquares(base))),
    sameBytes: Object.is(sums.js, sums.native),
  });
  // AdamW: params in `work`, fresh moments each run (allocated outside the timing).
  const m = new Float32Array(n);
  const v = new Float32Array(n);
  const decay = Uint8Array.from({ length: n }, (_, i) => (i % 7 === 0 ? 0 : 1));
  const resetMoments = () => {
    m.set(b);
    for (let i = 0; i < n; i++) v[i] = b[i]! * b[i]!;
  };
  const adamW = (ops: VectorOps, p: Float32Array) => ops.adamWStep(p, b, m, v, decay, 1e-4, 0.9, 0.999, 1e-6, 0.01);
  const ms = { js: 0, native: 0 };
  for (const [name, ops] of [['js', jsVectorOps], ['native', nat]] as const) {
    ms[name] = time(() => adamW(ops, work), () => (work.set(base), resetMoments()));
    work.set(base);
    resetMoments();
    adamW(ops, work);
    out[name] = Float32Array.from([...work.subarray(0, 1 << 20), ...m.subarray(0, 1 << 20), ...v.subarray(0, 1 << 20)]);
  }
  rows.push({ size: n, op: 'AdamW step', jsMs: ms.js, nativeMs: ms.native, sameBytes: sameBytes(out.js, out.native) });
  return rows;
}

const nat = loadNativeVector();
nat.setVectorIsa(isa);
const all: Row[] = [];
for (const n of sizes) all.push(...measure(n, nat));
console.log(`median of ${repeats} runs after a warm-up; native loops ${nat.getVectorIsa()}; node ${process.version}`);
console.log('| floats | op | JS ms | native ms | speed-up | same bytes |');
console.log('|---|---|---|---|---|---|');
for (const r of all) {
  console.log(`| ${(r.size / 1e6).toFixed(2)} M | ${r.op} | ${r.jsMs.toFixed(1)} | ${r.nativeMs.toFixed(1)} | ${(r.jsMs / r.nativeMs).toFixed(1)}× | ${r.sameBytes ? 'yes' : 'NO'} |`);
}
for (const r of all) console.log(JSON.stringify({ bench: 'vector', isa: nat.getVectorIsa(), ...r }));
if (all.some((r) => !r.sameBytes)) {
  console.error('bench/vector: native and JS results differ');
  process.exitCode = 1;
}

/**
 * The compute suite: training-step throughput (MLM + NSP, AdamW, batch 32,
 * sequence 128, 20 masked positions, 1 thread unless --blas-threads) for the tiny and mini presets (or base) on
 * every backend that loads, each in a fresh process, and — where Debian's
 * python3-torch is installed — the repo's PyTorch reference
 * (bench/torch_reference.py) on the same shapes in the same run, with the ratio
 * bertfleet ÷ PyTorch, each side's peak RSS and the load average when it started.
 * --rss-steps N adds one line: RSS over N steps of the first preset on the first backend.
 *   bertfleet bench [--suite compute] [--presets tiny,mini,base] [--backends wasm-blas,wasm,cpu,tfjs-node] [--steps N]
 *                   [--blas-threads N] [--micro M] [--rss-steps N]
 */
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseFlags, UsageError } from '../cli/args.js';
import { failed, runJson } from './child-json.js';
import { findTorch, ROOT, runTorch } from './torch.js';

const HELP = `usage: bertfleet bench [--suite compute] [--presets tiny,mini] [--backends LIST] [--steps N]
                       [--blas-threads N] [--micro M] [--rss-steps N [--rss-every K]]
                       [--torch-reference PATH] [--python PATH]

Prints one JSON line per (backend, preset), then a table with seq/s and the
ratio to PyTorch measured in the same run (when python3-torch is installed),
each side's peak RSS and the 1-minute load average when it started.
Presets: tiny, mini, small, base. --blas-threads N: OpenBLAS threads for
wasm-blas and torch.set_num_threads(N) + OpenBLAS threads for PyTorch
(default 1). --micro M: each step's batch of 32 in micro-batches of M
sequences, gradients summed (both sides; default: the whole batch; base
needs M <= 8 to fit the 4 GiB wasm heap). --rss-steps N: also N steps
(no warm-up) of the first preset on the first backend, RSS sampled every
--rss-every K steps (default 50): start, end, max and the slope over
the second half of the steps.
Slow backends (plain wasm, cpu) run fewer steps. The PyTorch side is
bench/torch_reference.py unless --torch-reference or BERTFLEET_TORCH_REFERENCE
names another script; --python is the interpreter (default /usr/bin/python3).
bertfleet bench --suite cluster measures the cluster instead (see its --help).`;

const DEFAULT_BACKENDS = ['tfjs-node', 'wasm-blas', 'wasm', 'cpu'];

export async function run(argv: string[]): Promise<number> {
  const values = parseFlags(argv, {
    presets: { type: 'string' }, backends: { type: 'string' }, steps: { type: 'string' },
    'torch-reference': { type: 'string' }, python: { type: 'string' },
    'blas-threads': { type: 'string' }, micro: { type: 'string' }, 'rss-steps': { type: 'string' }, 'rss-every': { type: 'string' },
  }, HELP);
  if (!values) return 0;
  const presets = ((values['presets'] as string | undefined) ?? 'tiny,mini').split(',');
  const backends = ((values['backends'] as string | undefined) ?? DEFAULT_BACKENDS.join(',')).split(',');
  const steps = (values['steps'] as string | undefined) ?? '5';
  const threads = positive(values['blas-threads'], '--blas-threads') ?? 1;
  const micro = positive(values['micro'], '--micro');
  if (micro !== undefined && 32 % micro !== 0) throw new UsageError(`--micro: expected a divisor of the batch (32), got ${micro}`);
  const rssSteps = positive(values['rss-steps'], '--rss-steps');
  const rssEvery = positive(values['rss-every'], '--rss-every') ?? 50;
  const microArgs = micro === undefined ? [] : ['--micro', String(micro)];
  const torch = findTorch({
    script: values['torch-reference'] as string | undefined,
    envScript: process.env['BERTFLEET_TORCH_REFERENCE'],
    python: values['python'] as string | undefined,
  });
  const rows: string[] = [];
  for (const preset of presets) {
    let ref: number | null = null;
    if ('script' in torch) {
      const started = load();
      const r = runTorch(torch, ['train', '--config', preset, '--batch', '32', '--threads', String(threads), '--steps', steps, '--warmup', '2', ...microArgs], timeoutMs(preset, 1_200_000));
      console.log(JSON.stringify({ load: started, ...r }));
      if (!failed(r)) ref = r['seq_per_s'] as number;
      rows.push(`| ${preset} | pytorch | ${failed(r) ? '-' : String(r['openblas_core'] ?? '-')} | ${threads} | ${micro ?? 32} | ${failed(r) ? `failed: ${r.error.slice(0, 80)}` : ref} | 1.00 | ${failed(r) ? '-' : String(r['rss_max_mb'])} | - | ${started} |`);
    } else {
      rows.push(`| ${preset} | pytorch (not installed) | - | ${threads} | ${micro ?? 32} | - | - | - | - | - |`);
    }
    for (const backend of backends) {
      const slow = backend === 'wasm' || backend === 'cpu';
      const args = ['--import', 'tsx', 'bench/train-step.ts', '--backend', backend, '--preset', preset,
        '--steps', slow ? '2' : steps, '--warmup', slow ? '1' : '2', '--threads', String(threads), ...microArgs];
      const started = load();
      // The plain cpu backend needs minutes and >15 GB for one step of these shapes: cap it.
      const r = runJson(process.execPath, args, { cwd: ROOT, timeoutMs: timeoutMs(preset, slow ? 600_000 : 1_800_000) });
      console.log(JSON.stringify({ backend, preset, load: started, ...r }));
      if (failed(r)) {
        rows.push(`| ${preset} | ${backend} | - | ${threads} | ${micro ?? 32} | failed: ${r.error.slice(0, 80)} | - | - | - | ${started} |`);
      } else {
        const seqPerS = r['seq_per_s'] as number;
        rows.push(`| ${preset} | ${backend} | ${String(r['openblas_core'] ?? '-')} | ${threads} | ${micro ?? 32} | ${seqPerS} | ${ref ? (seqPerS / ref).toFixed(2) : '-'} | ${String(r['rss_max_mb'])} | ${String(r['wasm_heap_mb'] ?? '-')} | ${started} |`);
      }
    }
  }
  console.log(`\n| preset | implementation | OpenBLAS core | threads | micro-batch | seq/s | ÷ PyTorch | peak RSS MB | wasm heap MB | load |\n|---|---|---|---|---|---|---|---|---|---|\n${rows.join('\n')}`);
  if (rssSteps !== undefined) console.log(`\n${rssLine(presets[0]!, backends[0]!, rssSteps, rssEvery, [...microArgs, '--threads', String(threads)])}`);
  return 0;
}

/** base takes ~10× tiny's time per sequence: its children get longer before they count as hung. */
function timeoutMs(preset: string, ms: number): number {
  return preset === 'base' ? ms * 6 : ms;
}

function positive(v: unknown, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag}: expected a positive integer, got "${String(v)}"`);
  return n;
}

/** N steps, no warm-up, RSS sampled every K: one line saying whether RSS stays flat. */
function rssLine(preset: string, backend: string, steps: number, every: number, extra: string[]): string {
  const args = ['--import', 'tsx', 'bench/train-step.ts', '--backend', backend, '--preset', preset,
    '--steps', String(steps), '--warmup', '0', '--rss-every', String(every), ...extra];
  const started = load();
  const r = runJson(process.execPath, args, { cwd: ROOT, timeoutMs: timeoutMs(preset, steps * 20_000) });
  console.log(JSON.stringify({ ...r, bench: 'rss', backend, preset, load: started }));
  if (failed(r)) return `RSS over ${steps} steps (${preset}, ${backend}): failed: ${r.error.slice(0, 120)}`;
  return `RSS over ${steps} steps (${preset}, ${backend}, sampled every ${every}): start ${String(r['rss_start_mb'])} MB, ` +
    `end ${String(r['rss_end_mb'])} MB, max ${String(r['rss_series_max_mb'])} MB, slope ${String(r['rss_slope_mb_per_100_steps'])} MB per 100 steps ` +
    `(${String(r['seq_per_s'])} seq/s, load ${started} at start)`;
}

function load(): string {
  return loadavg()[0]!.toFixed(1);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  run(process.argv.slice(2)).then((c) => (process.exitCode = c));
}

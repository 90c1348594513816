/**
 * The compute benchmark: training-step throughput (MLM + NSP, AdamW, batch 32,
 * sequence 128, 20 masked positions, 1 thread) for the tiny and mini presets on
 * every backend that loads, each in a fresh process, and — where Debian's
 * python3-torch and the PyTorch reference script are present — the reference
 * on the same shapes in the same run, with the ratio bertfleet ÷ PyTorch.
 *   bertfleet bench [--presets tiny,mini] [--backends wasm-blas,wasm,cpu,tfjs-node] [--steps N]
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseFlags } from '../cli/args.js';

const HELP = `usage: bertfleet bench [--presets tiny,mini] [--backends LIST] [--steps N] [--torch-reference PATH]

Prints one JSON line per (backend, preset), then a table with seq/s and the
ratio to PyTorch measured in the same run (when python3-torch is installed).
Slow backends (plain wasm, cpu) run fewer steps.`;

const root = fileURLToPath(new URL('..', import.meta.url));
const DEFAULT_BACKENDS = ['tfjs-node', 'wasm-blas', 'wasm', 'cpu'];

interface Line { backend?: string; impl: string; config: string; seq_per_s: number; step_ms_median: number; error?: string }

function runJson(cmd: string, args: string[], timeoutMs: number): Line | { error: string } {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 16 << 20 });
  const line = (r.stdout ?? '').split('\n').reverse().find((l) => l.startsWith('{'));
  if (r.status !== 0 || !line) {
    const lines = (r.stderr ?? '').trim().split('\n');
    const timedOut = r.signal === 'SIGTERM' && r.error !== undefined;
    const why = timedOut
      ? `no result within ${Math.round(timeoutMs / 60000)} min`
      : (lines.find((l) => /Error:/.test(l)) ?? lines.slice(-1)[0] ?? (r.error ? String(r.error) : `exit ${r.status}`));
    return { error: why.slice(0, 300) };
  }
  return JSON.parse(line) as Line;
}

function torchReference(explicit: string | undefined): string | null {
  const candidates = [explicit, process.env['BERTFLEET_TORCH_REFERENCE'], `${root}../shared/bench/torch_reference.py`].filter(Boolean) as string[];
  const script = candidates.find((p) => existsSync(p));
  if (!script) return null;
  const probe = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' });
  return probe.status === 0 ? script : null;
}

export async function run(argv: string[]): Promise<number> {
  const values = parseFlags(argv, {
    presets: { type: 'string' }, backends: { type: 'string' }, steps: { type: 'string' }, 'torch-reference': { type: 'string' },
  }, HELP);
  if (!values) return 0;
  const presets = ((values['presets'] as string | undefined) ?? 'tiny,mini').split(',');
  const backends = ((values['backends'] as string | undefined) ?? DEFAULT_BACKENDS.join(',')).split(',');
  const steps = (values['steps'] as string | undefined) ?? '5';
  const torch = torchReference(values['torch-reference'] as string | undefined);
  const rows: string[] = [];
  for (const preset of presets) {
    let ref: number | null = null;
    if (torch) {
      const r = runJson('/usr/bin/python3', [torch, 'train', '--config', preset, '--batch', '32', '--threads', '1', '--steps', steps, '--warmup', '2'], 1_200_000);
      console.log(JSON.stringify(r));
      if (!('error' in r)) ref = r.seq_per_s;
    }
    rows.push(`| ${preset} | pytorch ${torch ? '' : '(not installed)'} | ${ref ?? '-'} | 1.00 |`);
    for (const backend of backends) {
      const slow = backend === 'wasm' || backend === 'cpu';
      const args = ['--import', 'tsx', 'bench/train-step.ts', '--backend', backend, '--preset', preset,
        '--steps', slow ? '2' : steps, '--warmup', slow ? '1' : '2'];
      // The plain cpu backend needs minutes and >15 GB for one step of these shapes: cap it.
      const r = runJson(process.execPath, args, slow ? 600_000 : 1_800_000);
      console.log(JSON.stringify({ backend, preset, ...r }));
      if ('error' in r && r.error) {
        rows.push(`| ${preset} | ${backend} | did not load: ${r.error.slice(0, 80)} | - |`);
      } else {
        const l = r as Line;
        rows.push(`| ${preset} | ${backend} | ${l.seq_per_s} | ${ref ? (l.seq_per_s / ref).toFixed(2) : '-'} |`);
      }
    }
  }
  console.log(`\n| preset | implementation | seq/s | ÷ PyTorch |\n|---|---|---|---|\n${rows.join('\n')}`);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  run(process.argv.slice(2)).then((c) => (process.exitCode = c));
}

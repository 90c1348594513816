/**
 * The compute suite: training-step throughput (MLM + NSP, AdamW, batch 32,
 * sequence 128, 20 masked positions, 1 thread) for the tiny and mini presets on
 * every backend that loads, each in a fresh process, and — where Debian's
 * python3-torch is installed — the repo's PyTorch reference
 * (bench/torch_reference.py) on the same shapes in the same run, with the ratio
 * bertfleet ÷ PyTorch.
 *   bertfleet bench [--suite compute] [--presets tiny,mini] [--backends wasm-blas,wasm,cpu,tfjs-node] [--steps N]
 */
import { fileURLToPath } from 'node:url';
import { parseFlags } from '../cli/args.js';
import { failed, runJson } from './child-json.js';
import { findTorch, ROOT, runTorch } from './torch.js';

const HELP = `usage: bertfleet bench [--suite compute] [--presets tiny,mini] [--backends LIST] [--steps N]
                       [--torch-reference PATH] [--python PATH]

Prints one JSON line per (backend, preset), then a table with seq/s and the
ratio to PyTorch measured in the same run (when python3-torch is installed).
Slow backends (plain wasm, cpu) run fewer steps. The PyTorch side is
bench/torch_reference.py unless --torch-reference or BERTFLEET_TORCH_REFERENCE
names another script; --python is the interpreter (default /usr/bin/python3).
bertfleet bench --suite cluster measures the cluster instead (see its --help).`;

const DEFAULT_BACKENDS = ['tfjs-node', 'wasm-blas', 'wasm', 'cpu'];

export async function run(argv: string[]): Promise<number> {
  const values = parseFlags(argv, {
    presets: { type: 'string' }, backends: { type: 'string' }, steps: { type: 'string' },
    'torch-reference': { type: 'string' }, python: { type: 'string' },
  }, HELP);
  if (!values) return 0;
  const presets = ((values['presets'] as string | undefined) ?? 'tiny,mini').split(',');
  const backends = ((values['backends'] as string | undefined) ?? DEFAULT_BACKENDS.join(',')).split(',');
  const steps = (values['steps'] as string | undefined) ?? '5';
  const torch = findTorch({
    script: values['torch-reference'] as string | undefined,
    envScript: process.env['BERTFLEET_TORCH_REFERENCE'],
    python: values['python'] as string | undefined,
  });
  const rows: string[] = [];
  for (const preset of presets) {
    let ref: number | null = null;
    if ('script' in torch) {
      const r = runTorch(torch, ['train', '--config', preset, '--batch', '32', '--threads', '1', '--steps', steps, '--warmup', '2'], 1_200_000);
      console.log(JSON.stringify(r));
      if (!failed(r)) ref = r['seq_per_s'] as number;
    }
    rows.push(`| ${preset} | pytorch ${'script' in torch ? '' : '(not installed)'} | ${ref ?? '-'} | 1.00 |`);
    for (const backend of backends) {
      const slow = backend === 'wasm' || backend === 'cpu';
      const args = ['--import', 'tsx', 'bench/train-step.ts', '--backend', backend, '--preset', preset,
        '--steps', slow ? '2' : steps, '--warmup', slow ? '1' : '2'];
      // The plain cpu backend needs minutes and >15 GB for one step of these shapes: cap it.
      const r = runJson(process.execPath, args, { cwd: ROOT, timeoutMs: slow ? 600_000 : 1_800_000 });
      console.log(JSON.stringify({ backend, preset, ...r }));
      if (failed(r)) {
        rows.push(`| ${preset} | ${backend} | did not load: ${r.error.slice(0, 80)} | - |`);
      } else {
        const seqPerS = r['seq_per_s'] as number;
        rows.push(`| ${preset} | ${backend} | ${seqPerS} | ${ref ? (seqPerS / ref).toFixed(2) : '-'} |`);
      }
    }
  }
  console.log(`\n| preset | implementation | seq/s | ÷ PyTorch |\n|---|---|---|---|\n${rows.join('\n')}`);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  run(process.argv.slice(2)).then((c) => (process.exitCode = c));
}

/**
 * The PyTorch side of the benchmarks: finds the reference script (the repo's
 * own bench/torch_reference.py unless a flag or BERTFLEET_TORCH_REFERENCE
 * names another) and a Python that imports torch, and runs the script's modes.
 * The suites' entry points read the flags and the environment and pass them in.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../cli/args.js';
import { runJson, type ChildJson } from './child-json.js';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const DEFAULT_SCRIPT = fileURLToPath(new URL('./torch_reference.py', import.meta.url));
/** Debian's python3-torch installs for the system Python, which may not be first on PATH. */
export const DEFAULT_PYTHON = '/usr/bin/python3';

export type Torch = { python: string; script: string } | { missing: string };

/**
 * The script to run (`--torch-reference`, then BERTFLEET_TORCH_REFERENCE, then
 * the repo's own), which must exist; `missing` says why PyTorch is not usable.
 */
export function findTorch(opts: { script?: string; envScript?: string; python?: string }): Torch {
  const script = opts.script ?? opts.envScript ?? DEFAULT_SCRIPT;
  if (!existsSync(script)) {
    const from = opts.script !== undefined ? '--torch-reference' : opts.envScript !== undefined ? 'BERTFLEET_TORCH_REFERENCE' : 'the default';
    throw new UsageError(`PyTorch reference script (${from}): expected a file, got no file at ${script}`);
  }
  const python = opts.python ?? DEFAULT_PYTHON;
  const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    const why = probe.error ? probe.error.message : (probe.stderr.trim().split('\n').pop() ?? `exit ${String(probe.status)}`);
    return { missing: `PyTorch not installed (${python} -c "import torch": ${why})` };
  }
  return { python, script };
}

/** Runs one mode of the reference script (`train ...` or `allreduce ...`); one JSON object or an error. */
export function runTorch(torch: { python: string; script: string }, args: string[], timeoutMs: number): ChildJson {
  return runJson(torch.python, [torch.script, ...args], { cwd: ROOT, timeoutMs });
}

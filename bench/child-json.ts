/**
 * Runs one benchmark child to completion and returns the last JSON line it
 * printed on stdout, or why there is none (its error line, a timeout, its exit
 * status). Used for the one-shot children: bench/train-step.ts and the PyTorch
 * reference script.
 */
import { spawnSync } from 'node:child_process';

export type ChildJson = Record<string, unknown> | { error: string };

export function runJson(cmd: string, args: string[], opts: { cwd: string; timeoutMs: number }): ChildJson {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, encoding: 'utf8', timeout: opts.timeoutMs, maxBuffer: 16 << 20 });
  const line = (r.stdout ?? '').split('\n').reverse().find((l) => l.startsWith('{'));
  if (r.status === 0 && line) return JSON.parse(line) as Record<string, unknown>;
  const lines = (r.stderr ?? '').trim().split('\n');
  const timedOut = r.signal === 'SIGTERM' && r.error !== undefined;
  const why = timedOut
    ? `no result within ${Math.round(opts.timeoutMs / 60000)} min`
    : (lines.find((l) => /Error:|error:/.test(l)) || lines.slice(-1)[0] || (r.error ? String(r.error) : `exit ${String(r.status)}`));
  return { error: why.slice(0, 300) };
}

export function failed(r: ChildJson): r is { error: string } {
  return typeof r['error'] === 'string';
}

/**
 * `bertfleet bench`: picks a suite with `--suite` (default compute) and hands
 * it the remaining flags. compute: training-step throughput per backend beside
 * PyTorch (bench/compute.ts); cluster: train vs cluster with 1 and 2 workers,
 * the exchange's parts, DDP and a gloo all-reduce (bench/cluster.ts).
 */
import { UsageError } from '../cli/args.js';

const SUITES: Record<string, () => Promise<{ run(argv: string[]): Promise<number> }>> = {
  compute: () => import('./compute.js'),
  cluster: () => import('./cluster.js'),
};

/** The `--suite` value (`--suite X` or `--suite=X`) and the other flags. */
function splitSuite(argv: string[]): { suite: string; rest: string[] } {
  const rest: string[] = [];
  let suite: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--suite' || a.startsWith('--suite=')) {
      const value = a === '--suite' ? argv[++i] : a.slice('--suite='.length);
      if (suite !== undefined) throw new UsageError(`--suite given twice ("${suite}", then "${String(value)}")`);
      suite = value ?? '';
    } else {
      rest.push(a);
    }
  }
  return { suite: suite ?? 'compute', rest };
}

export async function run(argv: string[]): Promise<number> {
  const { suite, rest } = splitSuite(argv);
  const load = SUITES[suite];
  if (!load) throw new UsageError(`--suite must be one of ${Object.keys(SUITES).join(', ')}, got "${suite}"`);
  return (await load()).run(rest);
}

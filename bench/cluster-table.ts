/**
 * The cluster suite's results: the ratios issue 8 sets targets for, computed
 * from the measurement rows of one run, and the markdown tables printed at the
 * end. A ratio whose inputs were not measured (PyTorch absent, a run failed) is
 * null and shows as "—".
 */

export interface Row {
  suite: 'cluster';
  /** train | cluster-1 | cluster-2 | ddp-1 | ddp-2 | allreduce-2 */
  mode: string;
  impl?: string;
  seq_per_s?: number;
  step_ms?: number;
  step_ms_median?: number;
  ms_median?: number;
  parts_ms?: Record<string, number>;
  openblas_core?: string | null;
  error?: string;
  skipped?: string;
  load_avg_1m: number;
  [k: string]: unknown;
}

export interface Ratios {
  cluster1_vs_train: number | null;
  scaling_efficiency_bertfleet: number | null;
  scaling_efficiency_ddp: number | null;
  exchange_vs_allreduce_1_worker: number | null;
  exchange_vs_allreduce_2_workers: number | null;
}

const ORDER = ['computeMs', 'uploadMs', 'waitMs', 'downloadMs', 'applyMs', 'exchangeMs', 'stepMs'];

function ratio(a: number | undefined, b: number | undefined, k = 1): number | null {
  return a === undefined || b === undefined || b === 0 ? null : +(a / (k * b)).toFixed(3);
}

export function ratios(rows: Row[]): Ratios {
  const by = (mode: string): Row | undefined => rows.find((r) => r.mode === mode && r.error === undefined && r.skipped === undefined);
  const seq = (mode: string): number | undefined => by(mode)?.seq_per_s;
  const exchange = (mode: string): number | undefined => by(mode)?.parts_ms?.['exchangeMs'];
  const allreduce = by('allreduce-2')?.ms_median;
  return {
    cluster1_vs_train: ratio(seq('cluster-1'), seq('train')),
    scaling_efficiency_bertfleet: ratio(seq('cluster-2'), seq('cluster-1'), 2),
    scaling_efficiency_ddp: ratio(seq('ddp-2'), seq('ddp-1'), 2),
    exchange_vs_allreduce_1_worker: ratio(exchange('cluster-1'), allreduce),
    exchange_vs_allreduce_2_workers: ratio(exchange('cluster-2'), allreduce),
  };
}

const NAMES: Record<string, string> = {
  train: 'bertfleet train (1 process)', 'cluster-1': 'bertfleet cluster, 1 worker', 'cluster-2': 'bertfleet cluster, 2 workers',
  'ddp-1': 'PyTorch DDP, 1 process', 'ddp-2': 'PyTorch DDP, 2 processes', 'allreduce-2': 'gloo all-reduce, 2 processes',
};

const show = (x: unknown): string => (x === undefined || x === null ? '—' : String(x));

function measurementTable(rows: Row[]): string[] {
  const present = new Set(rows.flatMap((r) => Object.keys(r.parts_ms ?? {})));
  const parts = [...ORDER.filter((k) => present.has(k)), ...[...present].filter((k) => !ORDER.includes(k)).sort()];
  const head = ['measurement', 'seq/s', 'step ms', ...parts.map((k) => `${k === 'stepMs' ? 'worker step' : k.replace(/Ms$/, '')} ms`), 'OpenBLAS core', 'warnings'];
  const out = [`| ${head.join(' | ')} |`, `|${head.map(() => ' --- ').join('|')}|`];
  for (const r of rows) {
    const name = NAMES[r.mode] ?? r.mode;
    const why = r.skipped ?? (r.error === undefined ? undefined : `failed: ${r.error.split('\n')[0]!.slice(0, 160)}`);
    if (why !== undefined) {
      out.push(`| ${name} | not measured: ${why} |${' |'.repeat(head.length - 2)}`);
      continue;
    }
    const stepMs = r.mode === 'allreduce-2' ? `${show(r.ms_median)} (all-reduce)` : show(r.step_ms ?? r.step_ms_median);
    out.push(`| ${[name, show(r.seq_per_s), stepMs, ...parts.map((k) => show(r.parts_ms?.[k])), show(r.openblas_core), show(r['warnings'])].join(' | ')} |`);
  }
  return out;
}

function ratioTable(q: Ratios): string[] {
  const lines: [string, number | null, string][] = [
    ['cluster --workers 1 ÷ train (seq/s)', q.cluster1_vs_train, '≥ 0.9'],
    ['2-worker scaling efficiency, bertfleet: seq/s(2) ÷ (2 × seq/s(1))', q.scaling_efficiency_bertfleet, '≥ DDP’s; aim ≥ 0.9'],
    ['2-process scaling efficiency, PyTorch DDP (same formula)', q.scaling_efficiency_ddp, 'reference'],
    ['exchange per step, 1 worker ÷ gloo all-reduce (2 processes)', q.exchange_vs_allreduce_1_worker, '≤ 2; aim ≤ 1'],
    ['exchange per step, 2 workers ÷ gloo all-reduce (2 processes)', q.exchange_vs_allreduce_2_workers, '≤ 2; aim ≤ 1'],
  ];
  return ['| ratio | value | target (issue 8) |', '| --- | --- | --- |', ...lines.map(([n, v, t]) => `| ${n} | ${show(v === null ? null : v.toFixed(2))} | ${t} |`)];
}

export function printTables(rows: Row[], q: Ratios, ctx: { elements: number; coretypeEnv: string | undefined }): void {
  const notes = [
    `gradient: ${ctx.elements} float32 (${((4 * ctx.elements) / 1e6).toFixed(1)} MB); OPENBLAS_CORETYPE ${ctx.coretypeEnv === undefined ? 'unset' : `= ${ctx.coretypeEnv}`};`,
    'step ms: bertfleet, the mean between the logged steps; PyTorch, the median step. Parts (compute … worker step): mean per step and worker',
    'of the fields of the workers’ `worker steps` lines (defined in worker/step-timings.ts). warnings: log lines at warn level or above',
    'during a bertfleet run (retries, a worker lost); a non-zero count means the figures include a recovery.',
  ];
  console.log(['', ...measurementTable(rows), '', ...ratioTable(q), '', ...notes].join('\n'));
}

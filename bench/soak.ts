/**
 * Soak test of the distributed run, outside CI: runs `bertfleet train` once as
 * the reference, then the same run on a real cluster — its own nats-server, a
 * `bertfleet coordinator` on a fixed loopback port and N `bertfleet worker`
 * processes — and injects K random faults (worker SIGKILL, worker SIGTERM
 * drain, worker added, straggler added, coordinator SIGKILL + restart with
 * `--resume`, nats-server restart; see bench/soak/faults.ts) at random steps,
 * one at a time, each after the previous one's recovery; kinds are drawn from
 * a shuffled bag, so with K >= 6 every kind is tried. At the end it
 * compares pretrained/ and finetuned/ model.safetensors with the reference
 * byte for byte and prints a summary; it exits 1 if a fault was not
 * recovered, the run did not finish, a process died unasked or the bytes
 * differ. The fault plan comes from a seeded PRNG: the same seed picks the
 * same faults at the same steps (timing still varies). Every process it
 * started is killed on exit, Ctrl-C included. Logs of every process go to
 * the work folder, kept unless the run passes (or with --keep); --log-level
 * (say debug) is passed to the coordinator and the workers.
 *
 *   npx tsx bench/soak.ts [--seed N] [--faults K] [--pretrain-steps N] [--finetune-steps N]
 *                         [--workers N] [--model tiny|FILE] [--kinds k1,k2] [--straggler-delay-ms N]
 *                         [--log-level LEVEL] [--keep]
 *
 * Default: the pipeline fixtures (test/fixtures/pipeline: micro-bert.json,
 * corpus.txt, sentiment.csv, run.json), 120 + 80 steps, 3 workers, 10 faults.
 * `--model tiny`: the tiny preset on the embedded default data (40 + 30 steps,
 * global batch 32 in micro-batches of 8, a checkpoint every 5 steps).
 * `--model FILE`: that config.json on the pipeline fixtures.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { intFlag, parseFlags, UsageError } from '../cli/args.js';
import { Child, killAllChildren } from './soak/child.js';
import { SoakCluster } from './soak/cluster.js';
import { eligibleKinds, FAULT_KINDS, injectFault, secs, type FaultContext, type FaultKind } from './soak/faults.js';
import { Prng } from './soak/prng.js';
import { compareWeights, failuresOf, printSummary, type FaultRecord, type SoakReport } from './soak/report.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(root, 'bin/bertfleet');
const FIXTURES = join(root, 'test/fixtures/pipeline');
/** No coordinator log line for this long: the run is stuck. */
const STALL_MS = 300_000;

const HELP = `usage: npx tsx bench/soak.ts [--seed N] [--faults K] [--pretrain-steps N] [--finetune-steps N]
                          [--workers N] [--model tiny|FILE] [--kinds ${FAULT_KINDS.join(',')}]
                          [--straggler-delay-ms N] [--log-level LEVEL] [--keep]

Runs bertfleet train as the reference, then a coordinator and N workers with K random faults
injected, and checks the final weights are byte-identical. Exits 1 on any failure.`;

interface SoakOptions {
  seed: number;
  faults: number;
  workers: number;
  model: string;
  pretrainSteps: number;
  finetuneSteps: number;
  kinds: FaultKind[];
  stragglerDelayMs: number;
  keep: boolean;
  logLevel: string | undefined;
}

function parseOptions(argv: string[]): SoakOptions | null {
  const v = parseFlags(argv, {
    seed: { type: 'string' }, faults: { type: 'string' }, workers: { type: 'string' }, model: { type: 'string' },
    'pretrain-steps': { type: 'string' }, 'finetune-steps': { type: 'string' }, kinds: { type: 'string' },
    'straggler-delay-ms': { type: 'string' }, keep: { type: 'boolean' }, 'log-level': { type: 'string' },
  }, HELP);
  if (v === null) return null;
  const model = typeof v['model'] === 'string' ? v['model'] : join(FIXTURES, 'micro-bert.json');
  const tiny = model === 'tiny';
  const kinds = typeof v['kinds'] === 'string' ? v['kinds'].split(',') : [...FAULT_KINDS];
  const unknown = kinds.filter((k) => !(FAULT_KINDS as readonly string[]).includes(k));
  if (unknown.length > 0) throw new UsageError(`--kinds: unknown ${unknown.join(', ')}; known: ${FAULT_KINDS.join(', ')}`);
  return {
    seed: intFlag(v, 'seed', { min: 0 }) ?? 1,
    faults: intFlag(v, 'faults', { min: 0 }) ?? 10,
    workers: intFlag(v, 'workers', { min: 1 }) ?? 3,
    model,
    pretrainSteps: intFlag(v, 'pretrain-steps', { min: 1 }) ?? (tiny ? 40 : 120),
    finetuneSteps: intFlag(v, 'finetune-steps', { min: 1 }) ?? (tiny ? 30 : 80),
    kinds: kinds as FaultKind[],
    stragglerDelayMs: intFlag(v, 'straggler-delay-ms', { min: 1 }) ?? 400,
    keep: v['keep'] === true,
    logLevel: typeof v['log-level'] === 'string' ? v['log-level'] : undefined,
  };
}

/** The run's flags (without --output), the same for the reference and the cluster. */
function runArgs(o: SoakOptions, work: string): string[] {
  const steps = ['--pretrain-steps', String(o.pretrainSteps), '--finetune-steps', String(o.finetuneSteps), '--seed', '7', '--no-progress'];
  if (o.model !== 'tiny') {
    const data = ['--corpus', join(FIXTURES, 'corpus.txt'), '--classification', join(FIXTURES, 'sentiment.csv'), '--config', join(FIXTURES, 'run.json')];
    return ['--model', o.model, ...data, ...steps];
  }
  const config = join(work, 'tiny-run.json');
  writeFileSync(config, JSON.stringify({ checkpoint: { everySteps: 5, keep: 2 }, logEverySteps: 1 }));
  return ['--model', 'tiny', '--config', config, '--global-batch', '32', '--micro-batch', '8', ...steps];
}

function say(msg: string, t0?: number): void {
  const stamp = t0 === undefined ? '' : `[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] `;
  process.stdout.write(`${stamp}${msg}\n`);
}

async function runReference(args: string[], work: string, logDir: string): Promise<number> {
  say('reference: bertfleet train ...');
  const t0 = Date.now();
  const train = new Child('train', { bin: BIN, args: ['train', '--output', join(work, 'train'), ...args], cwd: work, logDir });
  const exit = await train.exited;
  if (exit.code !== 0) throw new Error(`reference train exited with code ${exit.code}; last lines:\n${train.lines.slice(-10).join('\n')}`);
  say(`reference: done in ${secs(Date.now() - t0)}`);
  return Date.now() - t0;
}

/** K steps at which to inject, sorted, spread over 5%..90% of the run (from step 3). */
function planTargets(rng: Prng, k: number, totalSteps: number): number[] {
  const lo = Math.max(3, Math.floor(totalSteps * 0.05));
  const hi = Math.max(lo, Math.floor(totalSteps * 0.9));
  return Array.from({ length: k }, () => rng.int(lo, hi)).sort((a, b) => a - b);
}

/** Resolves true once the run has done `target` steps, false if it finished first. */
async function reachStep(c: SoakCluster, target: number): Promise<boolean> {
  for (;;) {
    if (c.progress.global >= target) return true;
    if (c.finished) return false;
    assertNotStalled(c);
    await c.whileAlive(sleep(200));
  }
}

function assertNotStalled(c: SoakCluster): void {
  const quietMs = Date.now() - c.lastLineAtMs;
  if (quietMs > STALL_MS) throw new Error(`the run is stuck: no coordinator log line for ${secs(quietMs)} (at ${c.progress.phase} step ${c.progress.step})`);
}

async function runFault(n: number, kind: FaultKind, ctx: FaultContext, t0: number): Promise<FaultRecord> {
  const c = ctx.cluster;
  const at = `${c.progress.phase} step ${c.progress.step}`;
  const start = Date.now();
  say(`fault #${n}: ${kind} at ${at}`, t0);
  const base = { n, kind, atMs: start - t0, at };
  try {
    const r = await injectFault(kind, ctx);
    const rec: FaultRecord = { ...base, ...r, outcome: 'recovered', recoveryMs: Date.now() - start };
    say(`fault #${n}: ${kind} on ${r.target}: recovered in ${secs(rec.recoveryMs)} (${r.detail})`, t0);
    for (const note of r.notes) say(`fault #${n}: note: ${note}`, t0);
    return rec;
  } catch (err) {
    const detail = (err as Error).message;
    say(`fault #${n}: ${kind} FAILED after ${secs(Date.now() - start)}: ${detail}`, t0);
    return { ...base, target: '-', outcome: 'failed', recoveryMs: Date.now() - start, detail, notes: [] };
  }
}

/**
 * The next fault kind: drawn from a shuffled bag of all allowed kinds, refilled
 * when empty, so K >= the number of kinds tries each at least once; the first
 * one in the bag that can be injected now (see eligibleKinds) is taken.
 */
function nextKind(ctx: FaultContext, bag: FaultKind[], allowed: readonly FaultKind[]): FaultKind | null {
  if (bag.length === 0) bag.push(...ctx.rng.shuffled(allowed));
  const now = new Set(eligibleKinds(ctx, allowed));
  const i = bag.findIndex((k) => now.has(k));
  if (i < 0) return null;
  return bag.splice(i, 1)[0]!;
}

async function runFaults(ctx: FaultContext, o: SoakOptions, t0: number): Promise<FaultRecord[]> {
  const targets = planTargets(ctx.rng, o.faults, o.pretrainSteps + o.finetuneSteps);
  say(`fault plan (global steps): ${targets.join(', ')}`, t0);
  const records: FaultRecord[] = [];
  const bag: FaultKind[] = [];
  for (const target of targets) {
    if (!(await reachStep(ctx.cluster, target))) break;
    await sleep(ctx.rng.int(0, 500));
    if (ctx.cluster.finished) break;
    const kind = nextKind(ctx, bag, o.kinds);
    if (kind === null) continue;
    const rec = await runFault(records.length + 1, kind, ctx, t0);
    records.push(rec);
    if (rec.outcome === 'failed') break;
  }
  return records;
}

/** Waits for the coordinator to end the run, then for the workers to leave. */
async function awaitEnd(c: SoakCluster, t0: number): Promise<void> {
  while (c.coordinator.running) {
    assertNotStalled(c);
    await Promise.race([c.coordinator.exited, sleep(1_000)]);
  }
  say(`coordinator exited with code ${c.coordinator.exit?.code}`, t0);
  if (!c.finished) return;
  const left = [...c.workers.values()].filter((w) => w.running);
  await Promise.race([Promise.all(left.map((w) => w.exited)), sleep(30_000)]);
  for (const w of left.filter((x) => x.running)) {
    const what = `${w.name} still running 30 s after the run finished (killed)`;
    if (!c.hasRegistered(w.name)) c.notes.push(`${what}; it never registered: the run finished first`);
    else c.unexpectedExits.push(`${what}; its last line: ${w.lines.at(-1)?.slice(0, 300) ?? '(none)'}`);
  }
}

function errorLines(c: SoakCluster): string[] {
  return c.coordinators.flatMap((x) => x.lines.filter((l) => /"level":(50|60)/.test(l)));
}

async function soak(o: SoakOptions, work: string, state: { cluster: SoakCluster | null }): Promise<SoakReport> {
  const logDir = join(work, 'logs');
  mkdirSync(logDir);
  const args = runArgs(o, work);
  const referenceMs = await runReference(args, work, logDir);
  const output = join(work, 'cluster');
  const cluster = new SoakCluster({ bin: BIN, cwd: work, logDir, output, runArgs: args, workers: o.workers, pretrainSteps: o.pretrainSteps, stragglerDelayMs: o.stragglerDelayMs,
    ...(o.logLevel !== undefined && { logLevel: o.logLevel }),
  });
  state.cluster = cluster;
  const t0 = Date.now();
  await cluster.start();
  say(`cluster: nats ${cluster.natsUrl}, coordinator ${cluster.address}, ${o.workers} workers`, t0);
  const ctx: FaultContext = { cluster, rng: new Prng(o.seed), workers: o.workers, output };
  const failures: string[] = [];
  let faults: FaultRecord[] = [];
  try {
    faults = await runFaults(ctx, o, t0);
    if (faults.every((f) => f.outcome === 'recovered')) await awaitEnd(cluster, t0);
  } catch (err) {
    failures.push((err as Error).message);
  }
  const clusterMs = Date.now() - t0;
  await cluster.killAll();
  const base = {
    title: `seed ${o.seed}, ${o.faults} faults requested (${o.kinds.join(', ')}), model ${o.model}, ${o.pretrainSteps} + ${o.finetuneSteps} steps, ${o.workers} workers`,
    faultsRequested: o.faults, faults, referenceMs, clusterMs, runFinished: cluster.finished,
    weights: compareWeights(join(work, 'train'), output),
    unexpectedExits: cluster.unexpectedExits, notes: cluster.notes, errorLines: errorLines(cluster),
  };
  return { ...base, failures: [...failures, ...failuresOf(base)] };
}

/** Kills whatever is still running; synchronous so that it also works from the 'exit' handler. */
function killEverything(state: { cluster: SoakCluster | null }): void {
  killAllChildren();
  const pid = state.cluster?.nats?.pid;
  if (pid === undefined) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone: nothing to clean up.
  }
}

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  if (o === null) return 0;
  const work = mkdtempSync(join(tmpdir(), 'bertfleet-soak-'));
  const state: { cluster: SoakCluster | null } = { cluster: null };
  process.on('exit', () => killEverything(state));
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      say(`${sig}: stopping everything; logs kept in ${work}`);
      killEverything(state);
      process.exit(130);
    });
  }
  say(`soak: seed ${o.seed}, ${o.faults} faults, work folder ${work}`);
  const report = await soak(o, work, state);
  printSummary(report);
  writeFileSync(join(work, 'summary.json'), `${JSON.stringify(report, null, 2)}\n`);
  const passed = report.failures.length === 0;
  if (passed && !o.keep) rmSync(work, { recursive: true, force: true });
  else say(`logs, outputs and summary.json kept in ${work}`);
  return passed ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`soak: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  },
);

/**
 * The faults the soak injects, each with the recovery it waits for before the
 * next one (the same kinds as test/integration/cluster-faults.test.ts):
 *   worker-kill       SIGKILL a worker; the coordinator marks it left
 *                     (heartbeat timeout) and hands its micro-batches on;
 *   worker-drain      SIGTERM a worker; it leaves (reason drained) and exits 0;
 *   worker-add        a new worker joins mid-run and registers;
 *   straggler         a new worker slowed per micro-batch joins (the coordinator
 *                     should judge it a straggler; noted, not required);
 *   coordinator-kill  SIGKILL the coordinator, start it again with --resume on
 *                     the same address; it logs "resuming", the workers re-register;
 *   nats-restart      stop nats-server, start it again on its port and store.
 * A removed worker is replaced (fresh id) while fewer than N are alive, and at
 * least one worker is always alive. Every fault ends with the run seen making
 * progress again (a step done, or the run finished). A recovery not seen in
 * time throws FaultFailedError; behaviour that differs from what is expected
 * but does not stop the run is returned as a note.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fields } from './child.js';
import type { SoakCluster } from './cluster.js';
import type { Prng } from './prng.js';

export const FAULT_KINDS = ['worker-kill', 'worker-drain', 'worker-add', 'straggler', 'coordinator-kill', 'nats-restart'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export class FaultFailedError extends Error {
  override readonly name = 'FaultFailedError';
}

export interface FaultResult {
  /** Whom it hit: a worker id, the coordinator, nats-server. */
  target: string;
  detail: string;
  notes: string[];
}

export interface FaultContext {
  cluster: SoakCluster;
  rng: Prng;
  /** Workers to keep alive (removed ones are replaced while fewer are alive). */
  workers: number;
  output: string;
}

const JOIN_MS = 180_000;
const LEAVE_MS = 90_000;
const PROGRESS_MS = 180_000;

/** The kinds that can be injected now, among `allowed`. */
export function eligibleKinds(ctx: FaultContext, allowed: readonly FaultKind[]): FaultKind[] {
  const live = ctx.cluster.liveWorkerCount();
  return allowed.filter((k) => {
    if (k === 'worker-kill' || k === 'worker-drain') return ctx.cluster.registeredWorkers().length >= 1;
    if (k === 'worker-add' || k === 'straggler') return live < ctx.workers + 2;
    if (k === 'coordinator-kill') return hasTrainerState(ctx.output);
    return true;
  });
}

export function injectFault(kind: FaultKind, ctx: FaultContext): Promise<FaultResult> {
  switch (kind) {
    case 'worker-kill': return killWorker(ctx);
    case 'worker-drain': return drainWorker(ctx);
    case 'worker-add': return addWorker(ctx, false);
    case 'straggler': return addWorker(ctx, true);
    case 'coordinator-kill': return killCoordinator(ctx);
    case 'nats-restart': return restartNats(ctx);
  }
}

async function killWorker(ctx: FaultContext): Promise<FaultResult> {
  const c = ctx.cluster;
  await keepOneAfterRemoval(ctx);
  const id = ctx.rng.pick(c.registeredWorkers());
  const from = c.coordinator.lines.length;
  c.workers.get(id)!.kill('SIGKILL');
  const line = await lineOrEnd(c, c.coordinator.waitFor(leftPattern(id), { from, timeoutMs: LEAVE_MS }), `coordinator never marked ${id} left`);
  const reason = line === null ? 'not logged: the run finished first' : String(fields(line)?.['reason']);
  const notes = line === null || reason === 'heartbeat_timeout' ? [] : [`${id} left with reason ${reason}, expected heartbeat_timeout`];
  const replaced = await replenish(ctx);
  await expectProgress(c, from);
  // Logged just after "worker left": counted once the run has moved on.
  const moved = c.coordinator.lines.slice(from).filter((l) => /"msg":"(micro-batches|eval chunks) reassigned"/.test(l) && l.includes(`"from":"${id}"`)).length;
  return { target: id, detail: `left (${reason}), ${moved} reassignment(s)${replaced}`, notes };
}

async function drainWorker(ctx: FaultContext): Promise<FaultResult> {
  const c = ctx.cluster;
  await keepOneAfterRemoval(ctx);
  const id = ctx.rng.pick(c.registeredWorkers());
  const w = c.workers.get(id)!;
  const from = c.coordinator.lines.length;
  w.kill('SIGTERM');
  const exit = await within(w.exited, LEAVE_MS, `${id} did not exit after SIGTERM`);
  if (exit.code !== 0) throw new FaultFailedError(`drained worker ${id} exited with code ${exit.code}, signal ${exit.signal}; expected 0`);
  const notes: string[] = [];
  if (!w.lines.some((l) => l.includes('"msg":"left the run (drained)"'))) notes.push(`${id} exited 0 without logging "left the run (drained)"`);
  const left = await c.coordinator.waitFor(leftPattern(id), { from, timeoutMs: 30_000 }).catch(() => null);
  const reason = left === null ? 'not logged' : String(fields(left)?.['reason']);
  if (reason !== 'drained') notes.push(`coordinator: ${id} left with reason ${reason}, expected drained`);
  const replaced = await replenish(ctx);
  await expectProgress(c, from);
  return { target: id, detail: `exited 0, left (${reason})${replaced}`, notes };
}

async function addWorker(ctx: FaultContext, slow: boolean): Promise<FaultResult> {
  const c = ctx.cluster;
  const from = c.coordinator.lines.length;
  const t0 = Date.now();
  const id = c.startWorker({ slow });
  if (!(await awaitRegistered(c, id))) return { target: id, detail: 'the run finished before it registered', notes: [] };
  const joinedMs = Date.now() - t0;
  await expectProgress(c, from);
  if (!slow) return { target: id, detail: `registered after ${secs(joinedMs)}`, notes: [] };
  // Judged on measured times over a few steps; the run may end first.
  const judged = await c.coordinator.waitFor(new RegExp(`"workerId":"${id}".*"msg":"straggler`), { from, timeoutMs: 60_000 }).catch(() => null);
  const unjudged = c.finished ? 'not judged a straggler before the run ended' : 'not judged a straggler within 60 s';
  const verdict = judged === null ? unjudged : `judged a straggler after ${secs(Number(fields(judged)?.['time']) - t0)}`;
  return { target: id, detail: `registered after ${secs(joinedMs)}, ${verdict}`, notes: [] };
}

async function killCoordinator(ctx: FaultContext): Promise<FaultResult> {
  const c = ctx.cluster;
  const old = c.coordinator;
  const before = c.progress;
  const workerFrom = new Map([...c.workers].map(([id, w]) => [id, w.lines.length]));
  if (c.runFinishedLogged()) return { target: old.name, detail: 'not killed: it had already finished the run', notes: [] };
  old.kill('SIGKILL');
  const exit = await old.exited;
  if (exit.signal !== 'SIGKILL') return { target: old.name, detail: `not killed: it had already exited (code ${exit.code})`, notes: [] };
  // The kill can land between "run finished" and the exit: the run is over, there is nothing to resume.
  if (c.runFinishedLogged()) return { target: old.name, detail: 'killed just after it had finished the run; not restarted', notes: [] };
  const t0 = Date.now();
  const next = c.startCoordinator(true);
  const resuming = fields(await expectLine(c, next.waitFor(/"msg":"resuming"/, { timeoutMs: 90_000 }), `${next.name} never logged "resuming"`));
  const resumedMs = Date.now() - t0;
  const late: string[] = [];
  for (const [id, from] of workerFrom) {
    if (c.workers.get(id)?.running !== true) continue;
    if (!(await awaitRegistered(c, id, from))) late.push(id);
  }
  await expectProgress(c, 0);
  const at = `${String(resuming?.['phase'])} step ${String(resuming?.['step'])}`;
  const notes = late.map((id) => `${id} had not re-registered when ${next.name} finished the run`);
  return { target: old.name, detail: `killed at ${before.phase} step ${before.step}; ${next.name} resumed from ${at} after ${secs(resumedMs)}, ${workerFrom.size - late.length} of ${workerFrom.size} worker(s) re-registered`, notes };
}

async function restartNats(ctx: FaultContext): Promise<FaultResult> {
  const c = ctx.cluster;
  const t0 = Date.now();
  await c.nats.stop({ graceMs: 1_000 });
  await sleep(ctx.rng.int(500, 3_000));
  await c.startNats();
  const downMs = Date.now() - t0;
  await expectProgress(c, c.coordinator.lines.length);
  return { target: 'nats-server', detail: `down ${secs(downMs)}, restarted on port ${c.nats.port}`, notes: [] };
}

/** Removing one must leave one: with a single registered worker, add one first. */
async function keepOneAfterRemoval(ctx: FaultContext): Promise<void> {
  if (ctx.cluster.registeredWorkers().length > 1) return;
  await awaitRegistered(ctx.cluster, ctx.cluster.startWorker());
}

/** Starts a fresh worker while fewer than N are alive; returns a phrase for the detail. */
async function replenish(ctx: FaultContext): Promise<string> {
  if (ctx.cluster.liveWorkerCount() >= ctx.workers) return '';
  const id = ctx.cluster.startWorker();
  return (await awaitRegistered(ctx.cluster, id)) ? `; replaced by ${id}` : `; replacement ${id} started, but the run finished before it registered`;
}

/**
 * True once worker `id` has registered (after its log line `from`); false if
 * the run finished first (a worker started or cut off just before the end may
 * never get to); throws otherwise.
 */
async function awaitRegistered(c: SoakCluster, id: string, from = 0): Promise<boolean> {
  const w = c.workers.get(id)!;
  const coordinator = c.coordinator;
  const ended = coordinator.exited.then(() => 'ended' as const);
  try {
    const r = await c.whileAlive(Promise.race([w.waitFor(/"msg":"registered"/, { from, timeoutMs: JOIN_MS }), ended]));
    if (r !== 'ended' || w.lines.slice(from).some((l) => l.includes('"msg":"registered"'))) return true;
  } catch (err) {
    throw new FaultFailedError(`${id} never registered: ${(err as Error).message}`, { cause: err });
  }
  if (c.finished) return false;
  throw new FaultFailedError(`${coordinator.name} exited (code ${coordinator.exit?.code}) before ${id} registered`);
}

/** The run moved on after line `from` of the current coordinator: a step, an evaluation, or its end. */
async function expectProgress(c: SoakCluster, from: number): Promise<void> {
  const pattern = /"msg":"(step done|pretraining evaluated|phase started|run finished)"/;
  try {
    await c.whileAlive(c.coordinator.waitFor(pattern, { from, timeoutMs: PROGRESS_MS }));
  } catch (err) {
    if (c.finished) return;
    throw new FaultFailedError(`no progress after the fault: ${(err as Error).message}`, { cause: err });
  }
}

async function expectLine(c: SoakCluster, p: Promise<string>, what: string): Promise<string> {
  try {
    return await c.whileAlive(p);
  } catch (err) {
    throw new FaultFailedError(`${what}: ${(err as Error).message}`, { cause: err });
  }
}

/** Like expectLine, but null when the run finished before the line came. */
async function lineOrEnd(c: SoakCluster, p: Promise<string>, what: string): Promise<string | null> {
  try {
    return await expectLine(c, p, what);
  } catch (err) {
    if (c.finished) return null;
    throw err;
  }
}

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new FaultFailedError(`${what} within ${ms} ms`)), ms)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function leftPattern(id: string): RegExp {
  return new RegExp(`"workerId":"${id}".*"msg":"worker left"`);
}

function hasTrainerState(output: string): boolean {
  const dir = join(output, 'state');
  return existsSync(dir) && readdirSync(dir).some((d) => d.startsWith('step-'));
}

export function secs(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

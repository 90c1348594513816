/**
 * The kill-with-grace and supervision helpers (shared/process/) on real
 * child processes: a child that ignores SIGTERM is SIGKILLed after the grace
 * period; a crashing child is restarted up to the limit, then given up; a
 * child that never got ready is not restarted; a stopped or cleanly exited
 * child is not restarted either.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../shared/log.js';
import { killWithGrace } from '../../shared/process/kill-with-grace.js';
import { Supervisor, type Launched } from '../../shared/process/supervisor.js';

/** `node -e script`, ready once it printed "ready" (or at spawn when `readyAtSpawn`). */
function launchNode(script: string, readyAtSpawn = true): Launched {
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const ready = new Promise<void>((resolve, reject) => {
    if (readyAtSpawn) child.once('spawn', () => resolve());
    else child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`exited with ${code} before ready`)));
  });
  return { child, ready };
}

const log = silentLogger();

describe('killWithGrace', () => {
  it('SIGKILLs a child that ignores SIGTERM once the grace period is over, and resolves when it is gone', async () => {
    const { child } = launchNode(`process.on('SIGTERM', () => {}); console.log('ready'); setInterval(() => {}, 1000);`, false);
    await new Promise((r) => child.stdout!.once('data', r));
    const end = await killWithGrace(child, { graceMs: 300 });
    expect(end).toEqual({ code: null, signal: 'SIGKILL', forced: true });
  });

  it('resolves at once for a child that already exited', async () => {
    const { child } = launchNode('process.exit(4)');
    await new Promise((r) => child.once('exit', r));
    expect(await killWithGrace(child, { graceMs: 10_000 })).toEqual({ code: 4, signal: null, forced: false });
  });
});

describe('Supervisor', () => {
  it('restarts a crashing child up to the limit, then gives up with its last exit', async () => {
    const attempts: number[] = [];
    const s = new Supervisor({
      name: 'crasher', log, restartOn: (e) => e.code !== 0, restartLimit: { max: 2, windowMs: 60_000 }, restartDelayMs: 10,
      launch: (attempt) => {
        attempts.push(attempt);
        return launchNode('setTimeout(() => process.exit(3), 50)');
      },
    });
    await s.firstReady;
    expect(await s.ended).toEqual({ kind: 'gave-up', exit: { code: 3, signal: null } });
    expect(attempts).toEqual([0, 1, 2]);
  });

  it('does not restart a child that was never ready', async () => {
    let launches = 0;
    const s = new Supervisor({
      name: 'never-ready', log, restartOn: () => true, restartLimit: { max: 5, windowMs: 60_000 },
      launch: () => {
        launches++;
        return launchNode('process.exit(2)', false);
      },
    });
    await expect(s.firstReady).rejects.toThrow(/before ready/);
    expect(await s.ended).toMatchObject({ kind: 'gave-up', exit: { code: 2 } });
    expect(launches).toBe(1);
  });

  it('neither restarts a child it stopped nor one that exited cleanly', async () => {
    const stopped = new Supervisor({ name: 'long', log, restartOn: () => true, restartLimit: { max: 5, windowMs: 60_000 }, launch: () => launchNode('setInterval(() => {}, 1000)') });
    await stopped.firstReady;
    expect(await stopped.stop({ signal: 'SIGTERM', graceMs: 2_000 })).toEqual({ kind: 'stopped', exit: { code: null, signal: 'SIGTERM' } });
    expect(stopped.pid).toBeUndefined();

    const clean = new Supervisor({ name: 'clean', log, restartOn: (e) => e.code !== 0, restartLimit: { max: 5, windowMs: 60_000 }, launch: () => launchNode('setTimeout(() => {}, 50)') });
    expect(await clean.ended).toEqual({ kind: 'exited', exit: { code: 0, signal: null } });
  });
});

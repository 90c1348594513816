/**
 * The distributed run's control plane on a real nats-server: the
 * coordinator's RunControl writes phases and checkpoints by revision and
 * publishes events; every worker's PhaseFollower sees a phase change,
 * including one that starts after the change was written; a stale
 * coordinator's write is refused. Unreachable services fail with a clear
 * UnreachableError naming them: nats-server for the coordinator, the
 * coordinator for a worker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCoordinator } from '../../coordinator/main.js';
import type { Member } from '../../coordinator/membership.js';
import { RunOutputs } from '../../coordinator/outputs.js';
import { RunControl } from '../../coordinator/run-control.js';
import { parseRunConfig } from '../../shared/config/run-config.js';
import { connectControl, type ControlConnection } from '../../shared/control/connect.js';
import { RunStateConflictError, type RunPhase } from '../../shared/control/run-state.js';
import { subscribeEvents, type ControlEvent } from '../../shared/control/subjects.js';
import { UnreachableError } from '../../shared/errors.js';
import { silentLogger } from '../../shared/log.js';
import { presetConfig } from '../../shared/model/config.js';
import { PhaseFollower } from '../../worker/phase-follower.js';
import { runWorker } from '../../worker/main.js';
import { startNats, type TestNats } from '../helpers/nats.js';
import { freePort } from '../helpers/ports.js';

const log = silentLogger();
const RUN = 'run-control-test';

async function until(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('control plane of a distributed run', () => {
  let nats: TestNats;
  const conns: ControlConnection[] = [];
  const connect = async (name: string) => {
    const c = await connectControl({ servers: nats.url, name, log });
    conns.push(c);
    return c;
  };

  beforeAll(async () => {
    nats = await startNats();
  });

  afterAll(async () => {
    for (const c of conns) await c.closeWithin(2_000);
    await nats?.stop();
  });

  it('brings a phase change to every worker, including one that connects after it was written', async () => {
    const control = await RunControl.open(await connect('coordinator'), { runId: RUN, coordinatorId: 'c1', log });
    const events: ControlEvent[] = [];
    const sub = await subscribeEvents(await connect('listener'), RUN, (e) => void events.push(e), { log });
    const seen: RunPhase[][] = [[], []];
    const early = await Promise.all(seen.map(async (list, i) => PhaseFollower.start(await connect(`w${i}`), { runId: RUN, log, onChange: (p) => list.push(p) })));
    expect(early.map((f) => f.phase)).toEqual([null, null]);

    await control.phase('pretrain', 0);
    control.joined({ id: 'w0', hostname: 'h', pid: 7 } as Member);
    await control.checkpoint('pretrain', 2, '/runs/x/state/step-pretrain-00000002');
    await control.phase('finetune', 0);
    await until('both early workers to see finetune', () => early.every((f) => f.phase === 'finetune'));
    expect(seen).toEqual([['pretrain', 'finetune'], ['pretrain', 'finetune']]);

    const late = await PhaseFollower.start(await connect('w-late'), { runId: RUN, log });
    expect(late.phase).toBe('finetune');
    await control.phase('evaluate', 6);
    await until('every worker to see evaluate', () => [...early, late].every((f) => f.phase === 'evaluate'));

    await until('the events', () => events.filter((e) => e.kind === 'phase.changed').length === 3);
    expect(events.filter((e) => e.kind === 'phase.changed').map((e) => e.payload)).toMatchObject([
      { from: null, to: 'pretrain' }, { from: 'pretrain', to: 'finetune' }, { from: 'finetune', to: 'evaluate' },
    ]);
    expect(events.find((e) => e.kind === 'checkpoint.written')?.payload).toMatchObject({ phase: 'pretrain', step: 2, path: '/runs/x/state/step-pretrain-00000002' });
    expect(events.find((e) => e.kind === 'worker.joined')?.payload).toMatchObject({ worker_id: 'w0', pid: 7 });
    for (const f of [...early, late]) await f.stop();
    await sub.stop();
    expect(control.lastError).toBeNull();
  });

  it('refuses a stale coordinator by revision once another has taken over the run', async () => {
    const runId = 'run-two-writers';
    const first = await RunControl.open(await connect('c1'), { runId, coordinatorId: 'c1', log });
    await first.phase('pretrain', 0);
    const second = await RunControl.open(await connect('c2'), { runId, coordinatorId: 'c2', log });
    await second.phase('pretrain', 4);
    await first.checkpoint('pretrain', 6, '/runs/y');
    expect(first.lastError).toBeInstanceOf(RunStateConflictError);
    expect(second.lastError).toBeNull();
  });
});

describe('unreachable services', () => {
  it('gives up on an unreachable nats-server with UnreachableError naming it', async () => {
    const url = `nats://127.0.0.1:${await freePort()}`;
    const config = parseRunConfig({});
    const started = Date.now();
    const err = await runCoordinator({
      config, bert: presetConfig('tiny'), data: { sources: {}, labels: ['a', 'b'], fingerprint: 'x' }, fingerprints: undefined as never,
      outputs: new RunOutputs('/tmp/bertfleet-never-written'), resume: false, log, listen: { host: '127.0.0.1', port: 0 },
      natsServers: url, expectedWorkers: 1, natsMaxWaitMs: 1_200, tls: null,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnreachableError);
    expect((err as Error).message).toMatch(new RegExp(`^nats-server at ${url} unreachable: no connection after \\d+ attempts`));
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('gives up on an unreachable coordinator with UnreachableError naming its address', async () => {
    const address = `127.0.0.1:${await freePort()}`;
    const err = await runWorker({
      coordinator: address, workerId: 'w1', log, signal: new AbortController().signal, tls: null,
      setup: () => Promise.reject(new Error('not reached')),
      client: { connectMaxAttempts: 3, connectTimeoutMs: 200, connectInitialDelayMs: 50, connectMaxDelayMs: 100 },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnreachableError);
    expect((err as Error).message).toMatch(`coordinator at ${address} unreachable: no connection after 3 attempts`);
  });
});

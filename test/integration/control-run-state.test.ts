/**
 * The control plane against a real nats-server with JetStream on a loopback
 * port: run state written by revision, read late, watched in order and across
 * a server restart; events on the documented subjects; connection failures
 * and server shutdown.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UnreachableError } from '../../shared/errors.js';
import { silentLogger } from '../../shared/log.js';
import { connectControl, type ControlConnection } from '../../shared/control/connect.js';
import {
  RunStateConflictError,
  RunStateReader,
  RunStateWriter,
  type RunPhase,
  type RunStateInput,
  type VersionedRunState,
} from '../../shared/control/run-state.js';
import { publishEvent, subscribeEvents, type ControlEvent } from '../../shared/control/subjects.js';
import { startNats, type TestNats } from '../helpers/nats.js';
import { freePort } from '../helpers/ports.js';
import { isProcessAlive } from '../helpers/process.js';
import { makeTempDir } from '../helpers/tmp.js';

const log = silentLogger();

function stateAt(phase: RunPhase, step: number): RunStateInput {
  return { phase, step, last_checkpoint: step > 0 ? `runs/ckpt-${step}` : null, failure: null };
}

function connectTo(server: TestNats, name: string): Promise<ControlConnection> {
  return connectControl({ servers: server.url, name, log, reconnectTimeWaitMs: 100 });
}

/** Resolves on the connection's next status of `type`. */
function nextStatus(conn: ControlConnection, type: 'reconnect' | 'disconnect'): Promise<void> {
  return new Promise((resolve) => {
    const off = conn.onStatus((s) => {
      if (s.type === type) {
        off();
        resolve();
      }
    });
  });
}

async function take<T>(it: AsyncIterator<T>, n: number): Promise<T[]> {
  const out: T[] = [];
  while (out.length < n) {
    const r = await it.next();
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

describe('control plane on a real nats-server', () => {
  let server: TestNats;
  let coordinator: ControlConnection;
  let worker: ControlConnection;

  beforeAll(async () => {
    server = await startNats();
    coordinator = await connectTo(server, 'coordinator');
    worker = await connectTo(server, 'worker');
  });

  afterAll(async () => {
    await worker?.close();
    await coordinator?.close();
    await server?.stop();
  });

  it('creates the run state once, then updates it by revision', async () => {
    const writer = await RunStateWriter.open(coordinator, { runId: 'create-update', coordinatorId: 'c1', log });
    const first = await writer.createIfAbsent(stateAt('pretrain', 0));
    expect(first.created).toBe(true);
    const again = await writer.createIfAbsent(stateAt('finetune', 99));
    expect(again).toMatchObject({ created: false, revision: first.revision, state: { phase: 'pretrain', step: 0 } });
    const next = await writer.update(stateAt('pretrain', 10), first.revision);
    expect(next.revision).toBeGreaterThan(first.revision);
    const reader = await RunStateReader.open(worker, { runId: 'create-update', log });
    expect(await reader.read()).toEqual(next);
  });

  it('refuses an update that names a stale revision', async () => {
    const writer = await RunStateWriter.open(coordinator, { runId: 'stale', coordinatorId: 'c1', log });
    const first = await writer.createIfAbsent(stateAt('pretrain', 0));
    const second = await writer.update(stateAt('pretrain', 1), first.revision);
    const stale = writer.update(stateAt('pretrain', 2), first.revision);
    await expect(stale).rejects.toBeInstanceOf(RunStateConflictError);
    await expect(stale).rejects.toMatchObject({ expectedRevision: first.revision, currentRevision: second.revision });
    await expect(stale).rejects.toThrow(`expected revision ${first.revision}, current ${second.revision}`);
  });

  it('lets a reader opened after a phase change read the new phase', async () => {
    const writer = await RunStateWriter.open(coordinator, { runId: 'late-reader', coordinatorId: 'c1', log });
    const first = await writer.createIfAbsent(stateAt('pretrain', 0));
    await writer.update(stateAt('finetune', 0), first.revision);
    const reader = await RunStateReader.open(worker, { runId: 'late-reader', log });
    expect((await reader.read())?.state).toMatchObject({ run_id: 'late-reader', phase: 'finetune', coordinator_id: 'c1' });
  });

  it('shows a watcher every phase from pretrain to done, in order', async () => {
    const writer = await RunStateWriter.open(coordinator, { runId: 'phases', coordinatorId: 'c1', log });
    const reader = await RunStateReader.open(worker, { runId: 'phases', log });
    const watch = await reader.watch();
    let rev = (await writer.createIfAbsent(stateAt('pretrain', 0))).revision;
    for (const phase of ['finetune', 'evaluate', 'done'] as const) rev = (await writer.update(stateAt(phase, 0), rev)).revision;
    const seen = await take(watch, 4);
    await watch.stop();
    expect(seen.map((v) => v.state.phase)).toEqual(['pretrain', 'finetune', 'evaluate', 'done']);
    expect(seen.map((v) => v.revision)).toEqual([...seen.map((v) => v.revision)].sort((a, b) => a - b));
  });

  it('delivers events on the documented subjects', async () => {
    const received: ControlEvent[] = [];
    let gotBoth!: () => void;
    const both = new Promise<void>((resolve) => (gotBoth = resolve));
    const sub = await subscribeEvents(
      worker,
      'events-run',
      (e) => {
        received.push(e);
        if (received.length === 2) gotBoth();
      },
      { log },
    );
    publishEvent(coordinator, 'events-run', 'phase.changed', { from: 'pretrain', to: 'finetune', step: 40, at_ms: 1 });
    publishEvent(coordinator, 'events-run', 'worker.joined', { worker_id: 'w1', hostname: 'h', pid: 7, step: 40, at_ms: 2 });
    await both;
    await sub.stop();
    expect(received).toEqual([
      { kind: 'phase.changed', subject: 'bertfleet.events-run.events.phase.changed', payload: { from: 'pretrain', to: 'finetune', step: 40, at_ms: 1 } },
      { kind: 'worker.joined', subject: 'bertfleet.events-run.events.worker.joined', payload: { worker_id: 'w1', hostname: 'h', pid: 7, step: 40, at_ms: 2 } },
    ]);
  });
});

describe('control plane across failures', () => {
  it('re-reads and keeps watching after nats-server restarts on the same store and port', async () => {
    const store = await makeTempDir('nats-restart');
    let server = await startNats({ storeDir: store.dir });
    const port = server.port;
    const coordinator = await connectTo(server, 'coordinator');
    const worker = await connectTo(server, 'worker');
    try {
      const writer = await RunStateWriter.open(coordinator, { runId: 'restart', coordinatorId: 'c1', log });
      const reader = await RunStateReader.open(worker, { runId: 'restart', log });
      const first = await writer.createIfAbsent(stateAt('pretrain', 5));
      const watch = await reader.watch();
      expect((await take(watch, 1)).map((v) => v.state.step)).toEqual([5]);

      const reconnected = Promise.all([nextStatus(coordinator, 'reconnect'), nextStatus(worker, 'reconnect')]);
      await server.stop({ keepStore: true });
      server = await startNats({ storeDir: store.dir, port });
      await reconnected;

      const after = await writer.update(stateAt('finetune', 0), first.revision);
      const [seen] = (await take(watch, 1)) as [VersionedRunState];
      expect(seen).toEqual(after);
      expect(await reader.read()).toEqual(after);
      await watch.stop();
    } finally {
      await worker.close();
      await coordinator.close();
      await server.stop();
      await store.remove();
    }
  });

  it('retries an unreachable server, then throws UnreachableError naming it within the budget', async () => {
    const url = `nats://127.0.0.1:${await freePort()}`;
    const started = performance.now();
    const attempt = connectControl({ servers: url, log, connectTimeoutMs: 500, initialDelayMs: 50, maxDelayMs: 200, maxAttempts: 4 });
    await expect(attempt).rejects.toBeInstanceOf(UnreachableError);
    await expect(attempt).rejects.toThrow(new RegExp(`nats-server at ${url} unreachable: no connection after 4 attempts`));
    // 4 attempts of at most 500 ms plus 50+100+200 ms of backoff; generous slack for a loaded machine.
    expect(performance.now() - started).toBeLessThan(4 * 500 + 350 + 5_000);
  });

  it('leaves no process behind when the server is stopped', async () => {
    const server = await startNats();
    expect(isProcessAlive(server.pid)).toBe(true);
    await server.stop();
    expect(isProcessAlive(server.pid)).toBe(false);
  });
});

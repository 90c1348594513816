/**
 * One owner per output folder and per run, and a run state that outlives a
 * nats-server restart: the folder lock refuses a live holder naming it and
 * takes over a dead one; RunControl's writes retry across a restart and stop
 * the run with a clear error past their deadline; runCoordinator refuses a
 * run whose lease another coordinator holds, writing nothing; a second
 * `bertfleet coordinator` on a folder in use exits non-zero naming the first
 * one's pid, and the first releases folder and lease when stopped.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCoordinator, runIdFor } from '../../coordinator/main.js';
import { RunOutputs } from '../../coordinator/outputs.js';
import { LOCK_FILE, OutputLock, OutputLockedError, refuseIfOutputLocked } from '../../coordinator/ownership.js';
import { RunControl, RunStateWriteError } from '../../coordinator/run-control.js';
import { parseRunConfig } from '../../shared/config/run-config.js';
import { connectControl, type ControlConnection } from '../../shared/control/connect.js';
import { readRunLease, RunLease, RunOwnedError } from '../../shared/control/lease.js';
import { RunStateConflictError, RunStateReader, RunStateWriter } from '../../shared/control/run-state.js';
import { silentLogger } from '../../shared/log.js';
import { presetConfig } from '../../shared/model/config.js';
import { runCli } from '../helpers/cli.js';
import { fields, spawnBertfleet } from '../helpers/logged-process.js';
import { startNats, type TestNats } from '../helpers/nats.js';
import { pipelineArgs } from '../helpers/pipeline.js';
import { makeTempDir } from '../helpers/tmp.js';
import { capturingLogger, deadPid } from '../helpers/observe.js';

const log = silentLogger();
const HERE = hostname();

function connectTo(server: TestNats, name: string): Promise<ControlConnection> {
  return connectControl({ servers: server.url, name, log, reconnectTimeWaitMs: 100 });
}

describe('output folder lock', () => {
  let tmp: { dir: string; remove: () => Promise<void> };
  let n = 0;
  const folder = (): string => join(tmp.dir, `out-${++n}`);
  const me = (id: string, pid = process.pid, host = HERE) => ({ owner_id: id, hostname: host, pid });

  beforeAll(async () => {
    tmp = await makeTempDir('lock');
  });

  afterAll(async () => {
    await tmp.remove();
  });

  it('locks a folder, refuses a second coordinator naming the holder and the folder, and frees it on release', () => {
    const dir = folder();
    const lock = OutputLock.acquire(dir, { owner: me('first', process.ppid), runId: 'run-a', log });
    expect(readdirSync(dir)).toEqual([LOCK_FILE]);
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'))).toMatchObject({ owner_id: 'first', hostname: HERE, pid: process.ppid, run_id: 'run-a' });
    const second = (): OutputLock => OutputLock.acquire(dir, { owner: me('second'), runId: 'run-b', log });
    expect(second).toThrow(OutputLockedError);
    expect(second).toThrow(`output folder ${dir} is in use by coordinator first (pid ${process.ppid} on ${HERE}), run run-a, since `);
    expect(() => refuseIfOutputLocked(dir)).toThrow(OutputLockedError);
    lock.release();
    // The lock made the folder and nothing else was written: both are gone.
    expect(existsSync(dir)).toBe(false);
    expect(() => refuseIfOutputLocked(dir)).not.toThrow();
  });

  it('keeps a folder it did not create, and what else was written to it', () => {
    const dir = folder();
    mkdirSync(dir);
    const lock = OutputLock.acquire(dir, { owner: me('only'), runId: 'run-a', log });
    writeFileSync(join(dir, 'run-config.json'), '{}\n');
    lock.release();
    expect(readdirSync(dir)).toEqual(['run-config.json']);
  });

  it('takes over a lock whose holder on this host is gone, with a warning', () => {
    const dir = folder();
    mkdirSync(dir);
    const stale = { owner_id: 'crashed', hostname: HERE, pid: deadPid(), run_id: 'run-a', locked_at_ms: 1 };
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify(stale));
    expect(() => refuseIfOutputLocked(dir)).not.toThrow();
    const { log: captured, lines } = capturingLogger();
    const lock = OutputLock.acquire(dir, { owner: me('successor'), runId: 'run-a', log: captured });
    expect(lines.find((l) => l['msg'] === 'stale output lock taken over')).toMatchObject({ holderId: 'crashed', pid: stale.pid });
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'))).toMatchObject({ owner_id: 'successor' });
    expect(readdirSync(dir)).toEqual([LOCK_FILE]);
    lock.release();
  });

  it('takes over a lock of its own pid under another owner id (a restarted container), but not one from another host', () => {
    const dir = folder();
    mkdirSync(dir);
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ owner_id: 'earlier-life', hostname: HERE, pid: process.pid, run_id: 'r', locked_at_ms: 1 }));
    OutputLock.acquire(dir, { owner: me('this-life'), runId: 'r', log }).release();

    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ owner_id: 'remote', hostname: 'elsewhere', pid: deadPid(), run_id: 'r', locked_at_ms: 1 }));
    expect(() => OutputLock.acquire(dir, { owner: me('local'), runId: 'r', log })).toThrow(/in use by coordinator remote \(pid \d+ on elsewhere\)/);
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'))).toMatchObject({ owner_id: 'remote' });
  });
});

describe('run state writes across nats-server outages', () => {
  it('retries a write while nats-server restarts on the same port and store; the run goes on', async () => {
    const store = await makeTempDir('runstate-restart');
    let server = await startNats({ storeDir: store.dir });
    const port = server.port;
    const conn = await connectTo(server, 'coordinator');
    const fatal: Error[] = [];
    try {
      const control = await RunControl.open(conn, { runId: 'restarted', coordinatorId: 'c1', log, writeTimeoutMs: 60_000, onFatal: (e) => void fatal.push(e) });
      await control.phase('pretrain', 0);
      const reconnected = new Promise<void>((resolve) => conn.onStatus((s) => s.type === 'reconnect' && resolve()));
      await server.stop({ keepStore: true });
      // Written while the server is down: it waits, retrying.
      const written = control.checkpoint('pretrain', 4, '/runs/r/state/step-pretrain-00000004');
      await new Promise((r) => setTimeout(r, 1_500));
      server = await startNats({ storeDir: store.dir, port });
      await reconnected;
      await written;
      await control.phase('finetune', 0);
      expect(control.lastError).toBeNull();
      expect(fatal).toEqual([]);
      const reader = await RunStateReader.open(conn, { runId: 'restarted', log });
      expect((await reader.read())?.state).toMatchObject({ phase: 'finetune', step: 0, last_checkpoint: '/runs/r/state/step-pretrain-00000004', coordinator_id: 'c1' });
    } finally {
      await conn.closeWithin(2_000);
      await server.stop();
      await store.remove();
    }
  });

  it('recognises a retried write whose first attempt landed though its reply was lost', async () => {
    const server = await startNats();
    const conn = await connectTo(server, 'coordinator');
    try {
      const writer = await RunStateWriter.open(conn, { runId: 'lost-reply', coordinatorId: 'c1', log });
      const first = await writer.createIfAbsent({ phase: 'pretrain', step: 0, last_checkpoint: null, failure: null }, 1_000);
      const next = { phase: 'pretrain' as const, step: 2, last_checkpoint: '/runs/x/2', failure: null };
      const landed = await writer.update(next, first.revision, 2_000);
      // The same write again (same revision, same time stamp): the earlier attempt, not a conflict.
      expect(await writer.update(next, first.revision, 2_000)).toEqual(landed);
      // Anything else naming the old revision is another writer's conflict.
      await expect(writer.update({ ...next, step: 3 }, first.revision, 2_000)).rejects.toBeInstanceOf(RunStateConflictError);
    } finally {
      await conn.close();
      await server.stop();
    }
  });

  it('stops the run with RunStateWriteError once a write keeps failing past its deadline', async () => {
    const server = await startNats();
    const conn = await connectTo(server, 'coordinator');
    try {
      let fatal!: (e: Error) => void;
      const fataled = new Promise<Error>((resolve) => (fatal = resolve));
      const control = await RunControl.open(conn, { runId: 'unwritable', coordinatorId: 'c1', log, writeTimeoutMs: 1_500, onFatal: (e) => fatal(e) });
      await control.phase('pretrain', 0);
      await server.stop();
      await control.phase('finetune', 0);
      const err = await fataled;
      expect(err).toBeInstanceOf(RunStateWriteError);
      expect(err.message).toMatch(/^run state of unwritable could not be written for \d+ ms \(\d+ attempts, deadline 1500 ms: cluster\.runStateWriteTimeoutMs\); is nats-server reachable\?/);
      expect(control.lastError).toBe(err);
    } finally {
      await conn.closeWithin(500);
      await server.stop();
    }
  });
});

describe('coordinators on the same run or folder', () => {
  let nats: TestNats;
  let work: { dir: string; remove: () => Promise<void> };

  beforeAll(async () => {
    nats = await startNats();
    work = await makeTempDir('ownership');
  });

  afterAll(async () => {
    await nats?.stop();
    await work?.remove();
  });

  it('refuses a run whose lease another coordinator holds, naming it and writing nothing', async () => {
    const config = parseRunConfig({});
    const bert = presetConfig('tiny');
    const data = { sources: {}, labels: ['a', 'b'], fingerprint: 'x' };
    const output = join(work.dir, 'leased-elsewhere');
    const runId = runIdFor(config, bert, data, output);
    const holderConn = await connectTo(nats, 'elsewhere');
    const holder = await RunLease.acquire(holderConn, { runId, ownerId: 'remote-coordinator', hostname: 'other-machine', pid: 77, log });
    try {
      const err = await runCoordinator({
        config, bert, data, fingerprints: undefined as never, outputs: new RunOutputs(output), resume: false, log,
        listen: { host: '127.0.0.1', port: 0 }, natsServers: nats.url, expectedWorkers: 1, tls: null,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RunOwnedError);
      expect((err as Error).message).toMatch(`run ${runId} is already owned by coordinator remote-coordinator (pid 77 on other-machine)`);
      expect(existsSync(output)).toBe(false);
      expect(holder.lost).toBeNull();
    } finally {
      await holder.release();
      await holderConn.close();
    }
  });

  it('refuses a second bertfleet coordinator on a folder in use, naming the first one, and frees folder and lease when the first stops', async () => {
    const output = join(work.dir, 'shared-folder');
    // Plaintext: the test reads the lease with a connection of its own, and is about the folder, not security.
    const args = ['coordinator', '--listen', '127.0.0.1:0', '--nats', nats.url, '--workers', '1', '--insecure', ...pipelineArgs(output)];
    const first = spawnBertfleet(args, { cwd: work.dir });
    try {
      const { runId } = fields(await first.waitFor(/"msg":"coordinator listening"/, 120_000)) as { runId: string };
      const before = readdirSync(output).sort();
      const config = readFileSync(join(output, 'run-config.json'));
      expect(before).toEqual([LOCK_FILE, 'run-config.json']);

      for (const extra of [[], ['--resume']]) {
        const second = await runCli([...args, ...extra], { cwd: work.dir });
        expect(second.code, second.stderr.slice(-2000)).not.toBe(0);
        expect(second.stderr).toContain(`OutputLockedError: output folder ${output} is in use by coordinator ${HERE}-${first.pid}-`);
        expect(second.stderr).toContain(`(pid ${first.pid} on ${HERE}), run ${runId}`);
        expect(readdirSync(output).sort()).toEqual(before);
        expect(readFileSync(join(output, 'run-config.json')).equals(config)).toBe(true);
      }

      const conn = await connectTo(nats, 'observer');
      try {
        expect(await readRunLease(conn, runId)).toMatchObject({ pid: first.pid, hostname: HERE });
        first.proc.kill('SIGTERM');
        expect((await first.exited).code).not.toBe(0);
        expect(existsSync(join(output, LOCK_FILE))).toBe(false);
        expect(await readRunLease(conn, runId)).toBeNull();
      } finally {
        await conn.close();
      }
    } finally {
      first.proc.kill('SIGKILL');
      await first.exited;
    }
  });
});

/**
 * NATS authentication and per-role permissions against a real nats-server
 * running nats-auth.ts's generated config: a client without credentials is
 * refused; the coordinator does all RunControl and the lease do; a worker
 * reads and watches the run state and hears events, and every write it
 * tries (a KV put/create/update/delete, a stream create/update/purge/delete,
 * an event) is refused and leaves the run state as it was. With TLS, a
 * client without a certificate from the CA is refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/errors.js';
import { silentLogger } from '../../shared/log.js';
import { connectControl, readNatsCredentials, redactServerUrl, type ControlConnection, type ControlStatus } from '../../shared/control/connect.js';
import { LEASE_BUCKET, RunLease } from '../../shared/control/lease.js';
import { RUN_STATE_BUCKET, RUN_STATE_HISTORY, RunStateReader, RunStateWriter, type RunStateInput, type VersionedRunState } from '../../shared/control/run-state.js';
import { publishEvent, subscribeEvents, type ControlEvent } from '../../shared/control/subjects.js';
import { makeThrowawayPki, type ThrowawayPki } from '../../shared/security/throwaway-pki.js';
import { loadTlsMaterial } from '../../shared/security/tls-material.js';
import { startNatsWithAuth, type TestNatsWithAuth } from '../helpers/nats.js';
import { refusal } from '../helpers/observe.js';

const log = silentLogger();
const RUN = 'auth-run';
const state = (phase: 'pretrain' | 'finetune', step: number): RunStateInput => ({ phase, step, last_checkpoint: null, failure: null });

/** Connects with a role's credentials and records every status the connection reports. */
async function connectAs(server: TestNatsWithAuth, role: 'coordinator' | 'worker', extra: { tls?: { ca: Buffer; cert: Buffer; key: Buffer } } = {}) {
  const conn = await connectControl({ servers: server.url, name: role, log, credentialsFile: server.auth.credentials[role], maxAttempts: 3, ...extra });
  const statuses: ControlStatus[] = [];
  conn.onStatus((s) => statuses.push(s));
  return { conn, statuses };
}

describe('nats-server with generated users and permissions', () => {
  let server: TestNatsWithAuth;
  let coordinator: { conn: ControlConnection; statuses: ControlStatus[] };
  let worker: { conn: ControlConnection; statuses: ControlStatus[] };
  let writer: RunStateWriter;
  let written: VersionedRunState;

  beforeAll(async () => {
    server = await startNatsWithAuth();
    coordinator = await connectAs(server, 'coordinator');
    writer = await RunStateWriter.open(coordinator.conn, { runId: RUN, log, coordinatorId: 'coord-1' });
    written = await writer.createIfAbsent(state('pretrain', 0));
    worker = await connectAs(server, 'worker');
  });

  afterAll(async () => {
    await worker?.conn.close();
    await coordinator?.conn.close();
    await server?.stop();
  });

  it('writes credentials files the connection accepts, readable by their owner only', () => {
    expect(readNatsCredentials(server.auth.credentials.worker)).toMatchObject({ role: 'worker', inbox_prefix: '_INBOX_worker' });
  });

  it('refuses a client without credentials, naming the authorization failure', async () => {
    const err = await refusal(connectControl({ servers: server.url, log, maxAttempts: 5, initialDelayMs: 10 }));
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toMatch(/refused to authenticate no credentials: .*Authorization Violation/i);
  });

  it('lets the coordinator write the run state, hold the lease and publish events', async () => {
    const next = await writer.update(state('pretrain', 1), written.revision);
    const lease = await RunLease.acquire(coordinator.conn, { runId: RUN, ownerId: 'coord-1', hostname: 'h', pid: process.pid, log, ttlMs: 3_000 });
    publishEvent(coordinator.conn, RUN, 'step.metrics', { phase: 'pretrain', step: 1, loss: 1, lr: 0.1, seq_per_sec: 1, duration_ms: 1, at_ms: 1 });
    await coordinator.conn.nc.flush();
    await lease.release();
    written = next;
    expect(coordinator.statuses.filter((s) => s.type === 'error')).toEqual([]);
  });

  it('lets a worker read and watch the run state and hear events', async () => {
    const reader = await RunStateReader.open(worker.conn, { runId: RUN, log });
    expect((await reader.read())?.revision).toBe(written.revision);
    const watch = await reader.watch();
    const heard: ControlEvent[] = [];
    const sub = await subscribeEvents(worker.conn, RUN, (e) => void heard.push(e), { log });
    written = await writer.update(state('finetune', 2), written.revision);
    publishEvent(coordinator.conn, RUN, 'phase.changed', { from: 'pretrain', to: 'finetune', step: 2, at_ms: 2 });
    const seen: number[] = [];
    for await (const v of watch) {
      seen.push(v.revision);
      if (v.revision === written.revision) break;
    }
    expect(seen).toEqual([written.revision - 1, written.revision]);
    await coordinator.conn.nc.flush();
    await worker.conn.nc.flush();
    await sub.stop();
    expect(heard.map((e) => e.kind)).toEqual(['phase.changed']);
    expect(worker.statuses.filter((s) => s.type === 'error')).toEqual([]);
  });

  it('refuses every write a worker tries on the run state, which stays as it was', async () => {
    const before = await (await RunStateReader.open(coordinator.conn, { runId: RUN, log })).read();
    const kv = await worker.conn.nc.jetstream().views.kv(RUN_STATE_BUCKET, { history: RUN_STATE_HISTORY });
    const bytes = new TextEncoder().encode('{"phase":"done"}');
    for (const attempt of [
      () => kv.put(RUN, bytes),
      () => kv.create('other-run', bytes),
      () => kv.update(RUN, bytes, before!.revision),
      () => kv.delete(RUN),
      () => kv.purge(RUN),
    ]) {
      expect(await refusal(attempt())).toMatchObject({ code: 'PERMISSIONS_VIOLATION' });
    }
    const workerWriter = await RunStateWriter.open(worker.conn, { runId: RUN, log, coordinatorId: 'evil' });
    expect(await refusal(workerWriter.update(state('pretrain', 99), before!.revision))).toMatchObject({ code: 'PERMISSIONS_VIOLATION' });
    const jsm = await worker.conn.nc.jetstreamManager();
    const stream = `KV_${RUN_STATE_BUCKET}`;
    for (const attempt of [
      () => jsm.streams.purge(stream),
      () => jsm.streams.delete(stream),
      () => jsm.streams.update(stream, { max_msgs_per_subject: 1 }),
      () => jsm.streams.add({ name: 'KV_evil', subjects: ['$KV.evil.>'] }),
    ]) {
      expect(await refusal(attempt())).toMatchObject({ code: 'PERMISSIONS_VIOLATION' });
    }
    const after = await (await RunStateReader.open(coordinator.conn, { runId: RUN, log })).read();
    expect(after).toEqual(before);
  });

  it('refuses a worker reading the lease bucket', async () => {
    const err = await refusal(worker.conn.nc.jetstream().views.kv(LEASE_BUCKET, { history: 1 }));
    expect(err).toMatchObject({ code: 'PERMISSIONS_VIOLATION' });
  });

  it('drops an event published by a worker and reports the violation on its connection', async () => {
    const heard: ControlEvent[] = [];
    const sub = await subscribeEvents(coordinator.conn, RUN, (e) => void heard.push(e), { log });
    const violation = new Promise<ControlStatus>((resolve) => worker.conn.onStatus((s) => s.type === 'error' && resolve(s)));
    publishEvent(worker.conn, RUN, 'phase.changed', { from: 'finetune', to: 'pretrain', step: 0, at_ms: 3 });
    // The worker's PUB is judged before its flush is answered; the coordinator's marker comes after.
    await worker.conn.nc.flush();
    expect((await violation).detail).toBe('PERMISSIONS_VIOLATION');
    publishEvent(coordinator.conn, RUN, 'step.metrics', { phase: 'finetune', step: 2, loss: 1, lr: 0.1, seq_per_sec: 1, duration_ms: 1, at_ms: 4 });
    await coordinator.conn.nc.flush();
    while (heard.length === 0) await new Promise((r) => setTimeout(r, 10));
    await sub.stop();
    expect(heard.map((e) => e.kind)).toEqual(['step.metrics']);
  });

  it('keeps a URL with credentials out of what it shows', () => {
    expect(redactServerUrl('nats://worker:s3cret@10.0.0.1:4222')).toBe('nats://***@10.0.0.1:4222');
    expect(redactServerUrl('["tls://a:b@h:1","nats://h:2"]')).toBe('["tls://***@h:1","nats://h:2"]');
  });
});

describe('nats-server with TLS and client certificates', () => {
  let pki: ThrowawayPki;
  let stranger: ThrowawayPki;
  let server: TestNatsWithAuth;

  beforeAll(async () => {
    pki = await makeThrowawayPki({ workerIds: ['w1'] });
    stranger = await makeThrowawayPki({ workerIds: ['w1'] });
    server = await startNatsWithAuth({ tls: { certFile: pki.nats.cert, keyFile: pki.nats.key, caFile: pki.nats.ca } });
  });

  afterAll(async () => {
    await server?.stop();
    pki?.remove();
    stranger?.remove();
  });

  it('lets a worker with a certificate from the CA and its credentials read the run state', async () => {
    const coordinator = await connectAs(server, 'coordinator', { tls: loadTlsMaterial(pki.coordinator) });
    const writer = await RunStateWriter.open(coordinator.conn, { runId: RUN, log, coordinatorId: 'coord-1' });
    const created = await writer.createIfAbsent(state('pretrain', 0));
    const worker = await connectAs(server, 'worker', { tls: loadTlsMaterial(pki.workers.get('w1')!) });
    const reader = await RunStateReader.open(worker.conn, { runId: RUN, log });
    expect((await reader.read())?.revision).toBe(created.revision);
    await worker.conn.close();
    await coordinator.conn.close();
  });

  // nats.js reports a TLS handshake the server refused as a connection timeout; the test above shows the same server accepts good certificates.
  it('refuses a client whose certificate comes from another CA', async () => {
    const foreign = loadTlsMaterial(stranger.workers.get('w1')!);
    const ourCa = loadTlsMaterial(pki.coordinator).ca;
    const err = await refusal(
      connectControl({ servers: server.url, log, credentialsFile: server.auth.credentials.worker, maxAttempts: 1, connectTimeoutMs: 1_000, tls: { ...foreign, ca: ourCa } }),
    );
    expect(err.message).toMatch(/unreachable/);
  });

  it('refuses a client without a certificate', async () => {
    const ourCa = loadTlsMaterial(pki.coordinator).ca;
    const err = await refusal(
      connectControl({ servers: server.url, log, credentialsFile: server.auth.credentials.worker, maxAttempts: 1, connectTimeoutMs: 1_000, tls: { ca: ourCa } as never }),
    );
    expect(err.message).toMatch(/unreachable/);
  });
});

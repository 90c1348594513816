/**
 * mTLS and identity binding through bertfleet's own gRPC adapter, with real
 * certificates (makeThrowawayPki) and real grpc-js on loopback: a coordinator
 * service and a reducer service serving TLS, reached by createCoordinatorClient.
 * A worker with its own certificate registers, heartbeats and uploads; a
 * client without a certificate, with one from another CA, or in plaintext is
 * refused at the handshake with an UnreachableError saying so; a valid
 * certificate for worker w2 cannot register, heartbeat, upload or leave as
 * w1 (PERMISSION_DENIED naming both) and leaves w1 as it was; a reducer takes
 * OpenStep from the coordinator's certificate only. A registration refusal
 * to an authenticated worker keeps the run's values (the plaintext case,
 * without them, is in cluster-service.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoordinatorService } from '../../coordinator/coordinator-service.js';
import { DistributedExecutor } from '../../coordinator/distributed-executor.js';
import { Reducer } from '../../coordinator/reducer.js';
import { ReducerService } from '../../coordinator/reducer-service.js';
import type { RunFingerprints } from '../../shared/cluster/fingerprints.js';
import { encodeIndexedStats } from '../../shared/cluster/stats-json.js';
import { parseRunConfig } from '../../shared/config/run-config.js';
import { PermissionError, ProtocolError, UnreachableError } from '../../shared/errors.js';
import { silentLogger } from '../../shared/log.js';
import type { ParamSpec } from '../../shared/model/params.js';
import { makeThrowawayPki, type ThrowawayPki, type TlsFiles } from '../../shared/security/throwaway-pki.js';
import { loadTlsMaterial, type TlsMaterial } from '../../shared/security/tls-material.js';
import { Replica } from '../../shared/training/replica.js';
import type { Range } from '../../shared/training/tree-sum.js';
import type { CoordinatorClient } from '../../shared/wire/client.js';
import { createCoordinatorClient, createServer, type ClientOptions, type CoordinatorServer } from '../../shared/wire/grpc.js';
import { PROTOCOL_VERSION, type RegisterRequest, type StepPlan } from '../../shared/wire/messages.js';

const log = silentLogger();
const P = 4096;
const SPECS: ParamSpec[] = [{ name: 'w', shape: [P], decay: true, init: 'zeros' }];
const FP: RunFingerprints = {
  protocol_version: PROTOCOL_VERSION, model_config_fingerprint: 'cfg-1', vocab_fingerprint: 'vocab-1', data_fingerprint: 'data-1', backend_fingerprint: 'backend=cpu',
};
const STATS = { sequences: 4, lossSum: 2, nspLossSum: 1, correct: 1, nspCorrect: 2, maskedTokens: 5 };
/** Clients that must fail do so quickly. */
const FAST: Partial<ClientOptions> = { connectTimeoutMs: 1_000, connectInitialDelayMs: 50, connectMaxDelayMs: 100, connectMaxAttempts: 3 };

const request = (id: string, over: Partial<RegisterRequest> = {}): RegisterRequest => ({ worker_id: id, ...FP, pid: 1, hostname: 'test', ...over });

function work(step: number, M = 3) {
  const microBatches = Array.from({ length: M }, (_, j) => ({ index: j, examples: [4 * j, 4 * j + 1, 4 * j + 2, 4 * j + 3], dropoutSeed: 9 + j }));
  return { phase: 'pretrain' as const, step, dataset: 'pretrain' as const, microBatches, counts: { sequences: 4 * M, maskedTokens: 20 } };
}

function upload(c: CoordinatorClient, claimedId: string, step: number, range: Range) {
  const stats = Array.from({ length: range.hi - range.lo }, (_, k) => ({ index: range.lo + k, stats: STATS }));
  return c.pushGradient({ worker_id: claimedId, step, phase: 'pretrain', range, stats_json: encodeIndexedStats(stats) }, new Float32Array(P).fill(range.lo + 1));
}

const fail = (p: Promise<unknown>): Promise<unknown> => p.then(() => new Error('expected a refusal, got success'), (e: unknown) => e);

describe('mTLS identity binding on the coordinator service', () => {
  let pki: ThrowawayPki;
  let stranger: ThrowawayPki;
  let executor: DistributedExecutor;
  let server: CoordinatorServer;
  let address: string;
  const clients: CoordinatorClient[] = [];
  const material = (files: TlsFiles): TlsMaterial => loadTlsMaterial(files);
  const connect = async (tls: TlsMaterial | null, o: Partial<ClientOptions> = {}): Promise<CoordinatorClient> => {
    const c = await createCoordinatorClient(address, { log, tls, ...o });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    pki = await makeThrowawayPki({ workerIds: ['w1', 'w2'], reducers: 1 });
    stranger = await makeThrowawayPki({ workerIds: ['w1'] });
    // No heartbeats are sent here: a long timeout keeps registered workers in while refused handshakes are retried.
    const config = parseRunConfig({ pretrain: { steps: 4, globalBatch: 12, microBatch: 4 }, cluster: { heartbeatTimeoutMs: 600_000 } });
    executor = new DistributedExecutor({ runId: 'run-tls', config, fingerprints: FP, expectedWorkers: 2, log });
    server = createServer(new CoordinatorService(executor, { log, pollMs: 30_000 }), { log, tls: loadTlsMaterial(pki.coordinator, { role: 'coordinator' }) });
    address = `127.0.0.1:${await server.startServer('127.0.0.1', 0)}`;
  });

  afterAll(async () => {
    await executor?.close(100);
    for (const c of clients) c.close();
    await server?.stop({ graceMs: 500 });
    pki?.remove();
    stranger?.remove();
  });

  it('lets a worker with its own certificate fetch the config, register and heartbeat', async () => {
    const w1 = await connect(material(pki.workers.get('w1')!));
    expect((await w1.getRunConfig({ worker_id: 'w1', protocol_version: PROTOCOL_VERSION })).run_id).toBe('run-tls');
    await expect(w1.register(request('w1', { hostname: 'host-w1', pid: 11 }))).resolves.toMatchObject({ run_id: 'run-tls', membership_version: 1 });
    await expect(w1.heartbeat({ worker_id: 'w1', step: 0, status: 'training' })).resolves.toMatchObject({ drain: false });
    const w2 = await connect(material(pki.workers.get('w2')!));
    await expect(w2.register(request('w2'))).resolves.toMatchObject({ membership_version: 2 });
  });

  it('reaches the coordinator by name as well as by IP (the certificate names both)', async () => {
    const byName = await createCoordinatorClient(address.replace('127.0.0.1', 'localhost'), { log, tls: material(pki.workers.get('w1')!) });
    clients.push(byName);
    expect((await byName.getRunConfig({ worker_id: 'w1', protocol_version: PROTOCOL_VERSION })).run_id).toBe('run-tls');
  });

  it("keeps the run's values in a registration refusal to an authenticated worker", async () => {
    const w2 = await connect(material(pki.workers.get('w2')!));
    const err = await fail(w2.register(request('w2', { data_fingerprint: 'data-2' })));
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as Error).message).toBe('registration of worker w2 refused: data_fingerprint differs: expected data-1, got data-2');
  });

  it('refuses a client without a certificate at the handshake, saying so', async () => {
    // What a client holding only the CA would present: no certificate at all.
    const caOnly = { ...material(pki.workers.get('w1')!), cert: null, key: null } as unknown as TlsMaterial;
    const err = await fail(connect(caOnly, FAST));
    expect(err).toBeInstanceOf(UnreachableError);
    expect((err as Error).message).toMatch(`coordinator at ${address} unreachable: TLS handshake failed: the server requires a client certificate and got none`);
  });

  it('refuses a client whose certificate comes from another CA, saying so', async () => {
    const foreign = material(stranger.workers.get('w1')!);
    // It trusts our CA, so only the server's check of the client certificate can refuse it.
    const err = await fail(connect({ ...foreign, ca: material(pki.coordinator).ca }, FAST));
    expect(err).toBeInstanceOf(UnreachableError);
    expect((err as Error).message).toMatch(`coordinator at ${address} unreachable: TLS handshake failed: `);
    expect((err as Error).message).toMatch(/refused this client's certificate/);
  });

  it("refuses to talk to a server whose certificate is from another CA or of another role", async () => {
    const otherCa = await fail(connect(material(stranger.workers.get('w1')!), FAST));
    expect((otherCa as Error).message).toMatch(/TLS handshake failed: the server's certificate was refused: self-signed certificate in certificate chain/);
    const notAReducer = await fail(connect(material(pki.workers.get('w1')!), { ...FAST, serverRole: 'reducer' }));
    expect((notAReducer as Error).message).toMatch(`reducer at ${address} unreachable: TLS handshake failed: the server's certificate was refused: peer certificate: expected reducer, got coordinator`);
  });

  it('refuses a plaintext client', async () => {
    const err = await fail(connect(null, FAST));
    expect(err).toBeInstanceOf(UnreachableError);
    expect((err as Error).message).toMatch(`coordinator at ${address} unreachable: no connection after 3 attempts`);
  });

  it("refuses w2's certificate speaking for w1 (register, heartbeat, upload, leave) and leaves w1 as it was", async () => {
    const w1 = await connect(material(pki.workers.get('w1')!));
    const w2 = await connect(material(pki.workers.get('w2')!));
    await w1.register(request('w1', { hostname: 'host-w1', pid: 11 }));
    await w2.register(request('w2'));
    const replica = new Replica(SPECS, new Float32Array(P).fill(0.5));
    await executor.startPhase({ phase: 'pretrain', specs: SPECS, dataset: 'pretrain', replica, startStep: 0, update: undefined as never });
    const step = executor.runStep(work(0));
    const a1 = await w1.nextAssignment({ worker_id: 'w1', after_seq: 0 });
    const a2 = await w2.nextAssignment({ worker_id: 'w2', after_seq: 0 });
    expect(a1.subtrees).toEqual([{ lo: 0, hi: 1 }, { lo: 1, hi: 2 }]);
    const before = { ...executor.membership.get('w1')! };
    const version = executor.membership.version;

    const attempts: Array<[string, () => Promise<unknown>]> = [
      ['Register', () => w2.register(request('w1', { hostname: 'evil', pid: 666 }))],
      ['Heartbeat', () => w2.heartbeat({ worker_id: 'w1', step: 0, status: 'training' })],
      ['PushGradient', () => upload(w2, 'w1', 0, { lo: 0, hi: 1 })],
      ['Leave', () => w2.leave({ worker_id: 'w1', reason: 'error', detail: 'hijacked' })],
      ['PullReduced', () => w2.pullReduced({ worker_id: 'w1', step: 0, phase: 'pretrain' })],
    ];
    for (const [call, attempt] of attempts) {
      const err = await fail(attempt());
      expect(err, call).toBeInstanceOf(PermissionError);
      expect((err as Error).message, call).toBe(`${call}: the client certificate is for worker w2, but the request claims worker "w1"`);
      expect((err as Error).cause, call).toMatchObject({ code: 7 });
    }
    expect(executor.membership.get('w1')).toEqual(before);
    expect(executor.membership.version).toBe(version);

    // w1's own uploads of the same ranges are the first the coordinator sees: the step completes.
    const pulls = [w1.pullReduced({ worker_id: 'w1', step: 0, phase: 'pretrain' }), w2.pullReduced({ worker_id: 'w2', step: 0, phase: 'pretrain' })];
    for (const r of a1.subtrees) await upload(w1, 'w1', 0, r);
    for (const r of a2.subtrees) await upload(w2, 'w2', 0, r);
    const outcome = await step;
    expect(outcome.stats).toEqual([STATS, STATS, STATS]);
    const [got1, got2] = await Promise.all(pulls);
    expect(got1).toEqual(outcome.grad);
    expect(got2).toEqual(outcome.grad);
  });
});

describe('mTLS identity binding on a reducer', () => {
  let pki: ThrowawayPki;
  let server: CoordinatorServer;
  let address: string;
  const clients: CoordinatorClient[] = [];
  const plan: StepPlan = {
    phase: 'pretrain', step: 1, num_micro_batches: 2, blocks: [{ worker_id: 'w1', subtrees: [{ lo: 0, hi: 1 }, { lo: 1, hi: 2 }] }],
    slice_lo: 0, slice_hi: 64, chunk_bytes: 64, reassigned_from: '', pullers: ['w1', 'coordinator'],
  };
  const connect = async (files: TlsFiles): Promise<CoordinatorClient> => {
    const c = await createCoordinatorClient(address, { log, tls: loadTlsMaterial(files), serverRole: 'reducer' });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    pki = await makeThrowawayPki({ workerIds: ['w1'], reducers: 1 });
    server = createServer(new ReducerService(new Reducer(log), { log }), { log, tls: loadTlsMaterial(pki.reducers[0]!, { role: 'reducer', id: '1' }) });
    address = `127.0.0.1:${await server.startServer('127.0.0.1', 0)}`;
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await server?.stop({ graceMs: 500 });
    pki?.remove();
  });

  it("refuses OpenStep from a worker's certificate and takes it from the coordinator's", async () => {
    const w1 = await connect(pki.workers.get('w1')!);
    const err = await fail(w1.openStep(plan));
    expect(err).toBeInstanceOf(PermissionError);
    expect((err as Error).message).toBe('OpenStep: expected a client certificate for coordinator, got one for worker w1');
    await expect(fail(w1.reassign({ ...plan, reassigned_from: 'w1' }))).resolves.toBeInstanceOf(PermissionError);
    const coordinator = await connect(pki.coordinator);
    await expect(coordinator.openStep(plan)).resolves.toBeUndefined();
    await expect(w1.heartbeat({ worker_id: 'w1', step: 0, status: 'training' })).resolves.toMatchObject({ phase: 'pretrain', coordinator_step: 1 });
  });
});

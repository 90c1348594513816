/**
 * Security on by default, end to end with real processes: `bertfleet cluster
 * --workers 2` (its throwaway PKI, nats-server with users and TLS) trains
 * while this test attacks it through the addresses and PKI folder its
 * cluster.json names:
 *   - gRPC without a client certificate, plaintext or TLS: refused at the handshake;
 *   - gRPC with a certificate from another CA: refused at the handshake;
 *   - gRPC with a valid certificate for worker `intruder` claiming a real
 *     worker's id (Heartbeat, PushGradient, Leave): PERMISSION_DENIED;
 *   - NATS without credentials: refused; NATS with the workers' credentials
 *     writing the run state: PERMISSIONS_VIOLATION;
 * and the run's weights still equal `bertfleet train`'s. A `--insecure`
 * cluster logs its warning and finishes with the same bytes. A worker or
 * coordinator given neither TLS files nor --insecure refuses to start,
 * saying what to pass; a worker takes its id from its certificate. The files
 * of `bertfleet pki init` (what the k8s Secrets hold) run a nats-server, a
 * coordinator and a worker to train's bytes.
 */
import * as grpc from '@grpc/grpc-js';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectControl } from '../../shared/control/connect.js';
import { RUN_STATE_BUCKET, RUN_STATE_HISTORY, RunStateReader } from '../../shared/control/run-state.js';
import { silentLogger } from '../../shared/log.js';
import { issueWorkerCert, makeThrowawayPki } from '../../shared/security/throwaway-pki.js';
import { loadTlsMaterial } from '../../shared/security/tls-material.js';
import { loadCoordinatorService } from '../../shared/wire/grpc.js';
import { runCli } from '../helpers/cli.js';
import { fields, spawnBertfleet, type LoggedProcess } from '../helpers/logged-process.js';
import { PIPELINE_FIXTURES, pipelineArgs } from '../helpers/pipeline.js';
import { startNats } from '../helpers/nats.js';
import { freePort } from '../helpers/ports.js';
import { makeTestSecurity } from '../helpers/secure-processes.js';
import { refusal } from '../helpers/observe.js';

const work = mkdtempSync(join(tmpdir(), 'bertfleet-security-'));
const WEIGHTS = ['pretrained/model.safetensors', 'finetuned/model.safetensors'];
/** Long enough for the attacks to land while it trains. */
const STEPS = ['--pretrain-steps', '24', '--finetune-steps', '16'];
/** No security settings inherited from the environment running the tests. */
const NO_SECURITY_ENV = { BERTFLEET_TLS_CA: '', BERTFLEET_TLS_CERT: '', BERTFLEET_TLS_KEY: '', BERTFLEET_NATS_CREDS: '' };
const log = silentLogger();

afterAll(() => rmSync(work, { recursive: true, force: true }));

beforeAll(async () => {
  const ref = await runCli(['train', ...pipelineArgs(join(work, 'train'), STEPS)], { cwd: work });
  expect(ref.code, ref.stderr.slice(-2000)).toBe(0);
});

function expectSameAsTrain(name: string): void {
  for (const f of WEIGHTS) expect(readFileSync(join(work, name, f)).equals(readFileSync(join(work, 'train', f))), `${name}/${f} differs from train's`).toBe(true);
}

const Coordinator = grpc.makeGenericClientConstructor(loadCoordinatorService(), 'Coordinator');
type RawClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

function client(address: string, creds: grpc.ChannelCredentials): RawClient {
  return new Coordinator(address, creds) as unknown as RawClient;
}

/** The status a unary call ends with (OK = 0). */
function unary(c: RawClient, method: string, req: object): Promise<grpc.status> {
  return new Promise((resolve) => {
    c[method]!(req, { deadline: Date.now() + 10_000 }, (err: grpc.ServiceError | null) => resolve(err === null ? grpc.status.OK : err.code));
  });
}

/** Opens an upload claiming to be `workerId`, sends its header, and returns the status it ends with. */
function pushAs(c: RawClient, workerId: string): Promise<grpc.status> {
  return new Promise((resolve) => {
    const call = c['PushGradient']!({ deadline: Date.now() + 10_000 }, (err: grpc.ServiceError | null) => resolve(err === null ? grpc.status.OK : err.code)) as grpc.ClientWritableStream<unknown>;
    call.write({ header: { worker_id: workerId, step: 0, phase: 'pretrain', range: { lo: 0, hi: 1 }, total_bytes: 4, chunk_bytes: 4 } });
    call.write({ data: Buffer.alloc(4), data_crc32: 0x2144df1c });
    call.end();
  });
}

async function clusterFileOf(output: string, cluster: LoggedProcess): Promise<{ coordinator: string; nats: string; pki_dir: string; nats_credentials: string }> {
  const file = join(output, 'cluster.json');
  while (!existsSync(file)) {
    if (cluster.proc.exitCode !== null) throw new Error(`cluster exited before writing ${file}:\n${cluster.lines.slice(-20).join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return JSON.parse(readFileSync(file, 'utf8')) as never;
}

describe('bertfleet cluster with security on by default', () => {
  it('refuses every attack while it trains, and ends with the bytes of train', async () => {
    const output = join(work, 'secure');
    // Slower workers (a test hook that changes no bits) keep the run going while the attacks land.
    const cluster = spawnBertfleet(['cluster', '--workers', '2', ...pipelineArgs(output, STEPS)], { cwd: work, env: { ...NO_SECURITY_ENV, BERTFLEET_TEST_DELAY_MS_PER_MICRO_BATCH: '300' } });
    const info = await clusterFileOf(output, cluster);
    expect(info.pki_dir).toBeTruthy();
    const listening = fields(await cluster.waitFor(/"msg":"coordinator listening"/));
    expect(listening).toMatchObject({ tls: true });
    const runId = listening['runId'] as string;
    await cluster.waitFor(/"step":2,"of":24/, 120_000);
    const ca = readFileSync(join(info.pki_dir, 'ca.pem'));

    // gRPC: no certificate at all (plaintext), TLS without a client certificate, a certificate from another CA.
    const other = await makeThrowawayPki({ workerIds: ['worker-1'] });
    try {
      const foreign = loadTlsMaterial(other.workers.get('worker-1')!);
      for (const creds of [grpc.credentials.createInsecure(), grpc.credentials.createSsl(ca), grpc.credentials.createSsl(ca, foreign.key, foreign.cert)]) {
        const c = client(info.coordinator, creds);
        expect(await unary(c, 'Heartbeat', { worker_id: 'worker-1', step: 0, status: 'training' })).toBe(grpc.status.UNAVAILABLE);
        c.close();
      }
    } finally {
      other.remove();
    }

    // gRPC: a valid certificate (same CA) for worker `intruder`, speaking for worker-1.
    const intruderFiles = await issueWorkerCert(info.pki_dir, 'intruder');
    const intruder = loadTlsMaterial(intruderFiles, { role: 'worker', id: 'intruder' });
    const c = client(info.coordinator, grpc.credentials.createSsl(intruder.ca, intruder.key, intruder.cert));
    expect(await unary(c, 'Heartbeat', { worker_id: 'worker-1', step: 0, status: 'training' })).toBe(grpc.status.PERMISSION_DENIED);
    expect(await pushAs(c, 'worker-1')).toBe(grpc.status.PERMISSION_DENIED);
    expect(await unary(c, 'Leave', { worker_id: 'worker-1', reason: 'drained', detail: 'not really' })).toBe(grpc.status.PERMISSION_DENIED);
    c.close();

    // NATS: no credentials (with or without a certificate of the CA); the workers' credentials writing the run state.
    const natsTls = { ca: intruder.ca, cert: intruder.cert, key: intruder.key };
    expect((await refusal(connectControl({ servers: info.nats, log, maxAttempts: 1, connectTimeoutMs: 2_000 }))).message).toBeTruthy();
    expect((await refusal(connectControl({ servers: info.nats, log, maxAttempts: 1, connectTimeoutMs: 2_000, tls: natsTls }))).message).toMatch(/refused to authenticate no credentials/);
    const conn = await connectControl({ servers: info.nats, log, maxAttempts: 1, credentialsFile: info.nats_credentials, tls: natsTls });
    try {
      const kv = await conn.nc.jetstream().views.kv(RUN_STATE_BUCKET, { history: RUN_STATE_HISTORY });
      const forged = new TextEncoder().encode('{"phase":"done"}');
      expect(await refusal(kv.put(runId, forged))).toMatchObject({ code: 'PERMISSIONS_VIOLATION' });
      expect(await refusal(kv.delete(runId))).toMatchObject({ code: 'PERMISSIONS_VIOLATION' });
      const state = await (await RunStateReader.open(conn, { runId, log })).read();
      expect(['pretrain', 'finetune']).toContain(state?.state.phase);
    } finally {
      await conn.close();
    }
    // Every attack landed while the run was going.
    expect(cluster.proc.exitCode).toBeNull();

    const end = await cluster.exited;
    expect(end.code, cluster.lines.slice(-30).join('\n')).toBe(0);
    expect(cluster.lines.filter((l) => l.includes('"msg":"worker left"')), 'no worker was made to leave').toEqual([]);
    expectSameAsTrain('secure');
    // The throwaway PKI went with the cluster.
    expect(existsSync(info.pki_dir)).toBe(false);
  });

  it('runs plaintext with --insecure, saying so in a warning, with the same bytes', async () => {
    const output = join(work, 'insecure');
    const r = await runCli(['cluster', '--workers', '2', '--insecure', ...pipelineArgs(output, STEPS)], { cwd: work, env: NO_SECURITY_ENV });
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const warnings = r.stderr.split('\n').filter((l) => l.includes('running without TLS or authentication (--insecure)')).map(fields);
    // The cluster, its coordinator and both workers.
    expect(warnings.map((w) => w['service']).sort()).toEqual(['cluster', 'coordinator', 'worker', 'worker']);
    for (const w of warnings) expect(w['level']).toBe(40);
    expectSameAsTrain('insecure');
  });
});

describe('processes started by hand', () => {
  it('refuses a worker and a coordinator without TLS files or --insecure, saying what to pass', async () => {
    const worker = await runCli(['worker', '--coordinator', '127.0.0.1:1', '--nats', 'nats://127.0.0.1:2'], { cwd: work, env: NO_SECURITY_ENV });
    expect(worker.code).toBe(2);
    expect(worker.stderr).toContain('bertfleet worker runs with TLS by default: pass --tls-ca FILE --tls-cert FILE --tls-key FILE (or set BERTFLEET_TLS_CA, BERTFLEET_TLS_CERT, BERTFLEET_TLS_KEY) and --nats-creds FILE (or BERTFLEET_NATS_CREDS), or --insecure');
    const coordinator = await runCli(['coordinator', '--listen', '127.0.0.1:0', ...pipelineArgs(join(work, 'refused'))], { cwd: work, env: NO_SECURITY_ENV });
    expect(coordinator.code).toBe(2);
    expect(coordinator.stderr).toContain('bertfleet coordinator runs with TLS by default: pass --tls-ca FILE');
    expect(existsSync(join(work, 'refused'))).toBe(false);
  });

  it('takes the worker id from the certificate, from flags or environment, and refuses another id', async () => {
    const sec = await makeTestSecurity({ workerIds: ['w9'] });
    try {
      const files = sec.security.pki.workers.get('w9')!;
      const env = { ...NO_SECURITY_ENV, BERTFLEET_TLS_CA: files.ca, BERTFLEET_TLS_CERT: files.cert, BERTFLEET_TLS_KEY: files.key, BERTFLEET_NATS_CREDS: sec.security.nats.credentials.worker };
      const w = spawnBertfleet(['worker', '--coordinator', '127.0.0.1:1', '--nats', 'nats://127.0.0.1:2'], { cwd: work, env });
      expect(fields(await w.waitFor(/"msg":"mTLS on"/))).toMatchObject({ workerId: 'w9', identity: { role: 'worker', id: 'w9' } });
      w.proc.kill('SIGINT');
      await w.exited;
      const other = await runCli(['worker', '--coordinator', '127.0.0.1:1', '--worker-id', 'w1', ...sec.worker('w9')], { cwd: work, env: NO_SECURITY_ENV });
      expect(other.code).toBe(1);
      expect(other.stderr).toMatch(/TlsConfigError: .*expected a certificate for worker w1, got one for worker w9/);
    } finally {
      sec.remove();
    }
  });
});

describe('bertfleet pki init', () => {
  it('makes files that run nats-server, a coordinator (TLS from its --config) and a worker, with the bytes of train', async () => {
    const pki = join(work, 'pki');
    const init = await runCli(['pki', 'init', '--out', pki, '--worker-ids', 'w1', '--nats-tls-dir', pki], { cwd: work });
    expect(init.code, init.stderr).toBe(0);
    const nats = await startNats({ configFile: join(pki, 'nats.conf') });
    try {
      const address = `127.0.0.1:${await freePort()}`;
      const tls = (name: string): string[] => ['--tls-ca', join(pki, 'ca.pem'), '--tls-cert', join(pki, `${name}.pem`), '--tls-key', join(pki, `${name}.key`)];
      // The coordinator's files from the `tls` block of its --config (paths relative to the file), the worker's from flags.
      const config = join(pki, 'run-with-tls.json');
      writeFileSync(config, JSON.stringify({
        ...JSON.parse(readFileSync(join(PIPELINE_FIXTURES, 'run.json'), 'utf8')),
        tls: { ca: 'ca.pem', cert: 'coordinator.pem', key: 'coordinator.key', natsCreds: 'nats-coordinator.creds.json' },
      }));
      const coordinator = spawnBertfleet(
        ['coordinator', '--listen', address, '--nats', nats.url, '--workers', '1', ...pipelineArgs(join(work, 'pki-run'), STEPS), '--config', config],
        { cwd: work, env: NO_SECURITY_ENV },
      );
      const worker = spawnBertfleet(['worker', '--coordinator', address, '--nats', nats.url, ...tls('worker-w1'), '--nats-creds', join(pki, 'nats-worker.creds.json')], { cwd: work, env: NO_SECURITY_ENV });
      const ends = await Promise.all([coordinator.exited, worker.exited]);
      expect(ends.map((e) => e.code), coordinator.lines.slice(-20).join('\n')).toEqual([0, 0]);
      expect(fields(await worker.waitFor(/"msg":"mTLS on"/))).toMatchObject({ workerId: 'w1' });
      expectSameAsTrain('pki-run');
      expect(fields(await coordinator.waitFor(/"msg":"mTLS on"/))).toMatchObject({ identity: { role: 'coordinator' }, natsCredentials: join(pki, 'nats-coordinator.creds.json') });
      // The block is the process's, not the run's: not saved with the run config.
      expect(JSON.parse(readFileSync(join(work, 'pki-run', 'run-config.json'), 'utf8'))).not.toHaveProperty('tls');
    } finally {
      await nats.stop();
    }
  });
});

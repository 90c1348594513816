/**
 * Bounded inputs at the wire, over real gRPC on loopback. A fake coordinator
 * (a bare grpc-js server on the repo's proto) announces a 4 GiB FetchState or
 * a 4 GiB reduced gradient: the worker's readers refuse at the header, with
 * the size the layout expects and the size announced, before any buffer of
 * that size exists (the fake would stream on forever; the refusal comes
 * first, not a deadline). On the real coordinator service, a retry racing
 * its own first upload (two concurrent PushGradient streams of the same
 * worker and subtree) stops the older stream as soon as its header is read,
 * and the step still reduces to the single-process bits; a registration
 * beyond cluster.maxWorkers is refused.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoordinatorService } from '../../coordinator/coordinator-service.js';
import { DistributedExecutor } from '../../coordinator/distributed-executor.js';
import type { RunFingerprints } from '../../shared/cluster/fingerprints.js';
import { encodeIndexedStats } from '../../shared/cluster/stats-json.js';
import { parseRunConfig } from '../../shared/config/run-config.js';
import { ProtocolError } from '../../shared/errors.js';
import { silentLogger } from '../../shared/log.js';
import type { ParamSpec } from '../../shared/model/params.js';
import { Replica } from '../../shared/training/replica.js';
import { treeSum, type Range } from '../../shared/training/tree-sum.js';
import type { CoordinatorClient } from '../../shared/wire/client.js';
import { gradientDataChunk, gradientHeaderChunk } from '../../shared/wire/gradient-stream.js';
import { createCoordinatorClient, createServer, loadCoordinatorService } from '../../shared/wire/grpc.js';
import { PROTOCOL_VERSION, type GradientChunk, type PushAck } from '../../shared/wire/messages.js';
import { fetchState, stateBytes } from '../../worker/fetch-state.js';
import { reducedTarget } from '../../worker/worker-loop.js';

const log = silentLogger();
const FOUR_GIB = 2 ** 32;

/** A bare grpc-js server speaking the repo's proto: only the handlers given. */
async function fakeCoordinator(handlers: grpc.UntypedServiceImplementation): Promise<{ address: string; stop(): Promise<void> }> {
  const server = new grpc.Server();
  server.addService(loadCoordinatorService(), handlers);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  return {
    address: `127.0.0.1:${port}`,
    stop: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}

/** Writes `first`, then zero-filled data chunks for as long as the client listens. */
function streamForever(first: unknown, data: () => unknown) {
  return (call: grpc.ServerWritableStream<unknown, unknown>): void => {
    let open = true;
    call.on('cancelled', () => (open = false));
    call.write(first);
    const more = (): void => {
      if (!open) return;
      call.write(data(), () => setImmediate(more));
    };
    more();
  };
}

describe('worker readers refuse a peer-announced size the layout does not allow', () => {
  it('refuses a 4 GiB FetchState header, naming the expected and the announced size', async () => {
    const P = 1000;
    const header = {
      run_id: 'fake', step: 0, phase: 'pretrain', optimizer_json: '{}', seq: 1, total_bytes: FOUR_GIB, crc32: 0,
      tensors: [{ name: 'params', shape: [FOUR_GIB / 4], dtype: 'float32', offset: 0, byte_length: FOUR_GIB }],
    };
    const fake = await fakeCoordinator({ FetchState: streamForever({ header }, () => ({ data: Buffer.alloc(1 << 20) })) });
    const client = await createCoordinatorClient(fake.address, { log, tls: null });
    try {
      const err = await fetchState(client, { workerId: 'w1', phase: 'pretrain' }, () => P).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProtocolError);
      expect((err as Error).message).toBe(`state of run fake at step 0: expected ${stateBytes(P)} bytes, got a header announcing ${FOUR_GIB} bytes`);
    } finally {
      client.close();
      await fake.stop();
    }
  });

  it('refuses a 4 GiB reduced gradient, and one cut in chunks other than cluster.chunkBytes', async () => {
    const P = 2048;
    let total = FOUR_GIB;
    let chunkBytes = 4096;
    const header = () => gradientHeaderChunk({ worker_id: '', step: 3, phase: 'pretrain', range: { lo: 0, hi: 2 }, stats_json: '' }, total, chunkBytes);
    const fake = await fakeCoordinator({ PullReduced: (call: grpc.ServerWritableStream<unknown, unknown>) => streamForever(header(), () => gradientDataChunk(new Uint8Array(chunkBytes)))(call) });
    const client = await createCoordinatorClient(fake.address, { log, tls: null });
    const into = new Float32Array(P);
    const pull = () => client.pullReduced({ worker_id: 'w1', step: 3, phase: 'pretrain' }, { into: (h) => reducedTarget(h, into, 4096) }).catch((e: unknown) => e);
    try {
      let err = await pull();
      expect(err).toBeInstanceOf(ProtocolError);
      expect((err as Error).message).toBe(`reduced gradient of pretrain step 3: expected ${P * 4} bytes (the slice of the parameter layout), got a header announcing ${FOUR_GIB} bytes`);
      total = P * 4;
      chunkBytes = 64 << 20;
      err = await pull();
      expect((err as Error).message).toBe('reduced gradient of pretrain step 3: expected chunks of 4096 bytes (cluster.chunkBytes), got 67108864 bytes');
    } finally {
      client.close();
      await fake.stop();
    }
  });
});

const P = 40_000; // 160 kB: 40 chunks of 4 KiB
const SPECS: ParamSpec[] = [{ name: 'w', shape: [P], decay: true, init: 'zeros' }];
const FP: RunFingerprints = {
  protocol_version: PROTOCOL_VERSION, model_config_fingerprint: 'cfg-1', vocab_fingerprint: 'vocab-1', data_fingerprint: 'data-1', backend_fingerprint: 'backend=cpu',
};
const STATS = { sequences: 4, lossSum: 2, nspLossSum: 1, correct: 1, nspCorrect: 2, maskedTokens: 5 };
const bits = (v: Float32Array): Buffer => Buffer.from(v.buffer, v.byteOffset, v.byteLength);

function leaf(i: number): Float32Array {
  return Float32Array.from({ length: P }, (_, k) => Math.fround(1 / (i + 3) + k * 1e-7));
}

function statsJson(r: Range): string {
  return encodeIndexedStats(Array.from({ length: r.hi - r.lo }, (_, k) => ({ index: r.lo + k, stats: STATS })));
}

describe('duplicate uploads over gRPC: one stream per worker and subtree', () => {
  let executor: DistributedExecutor;
  let server: Awaited<ReturnType<typeof createServer>>;
  let port: number;
  let w1: CoordinatorClient;
  let w2: CoordinatorClient;
  let raw: grpc.Client & Record<string, (cb: (err: grpc.ServiceError | null, ack?: PushAck) => void) => grpc.ClientWritableStream<GradientChunk>>;

  beforeAll(async () => {
    const config = parseRunConfig({ pretrain: { steps: 4, globalBatch: 12, microBatch: 4 }, cluster: { chunkBytes: 4096, maxWorkers: 2 } });
    executor = new DistributedExecutor({ runId: 'run-bounds', config, fingerprints: FP, expectedWorkers: 2, log });
    server = createServer(new CoordinatorService(executor, { log, pollMs: 300 }), { log, tls: null });
    port = await server.startServer('127.0.0.1', 0);
    w1 = await createCoordinatorClient(`127.0.0.1:${port}`, { log, tls: null });
    w2 = await createCoordinatorClient(`127.0.0.1:${port}`, { log, tls: null });
    const Raw = grpc.makeClientConstructor(loadCoordinatorService(), 'Coordinator');
    raw = new Raw(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as typeof raw;
  });

  afterAll(async () => {
    await executor.close(100);
    w1.close();
    w2.close();
    raw.close();
    await server.stop({ graceMs: 500 });
  });

  /** A PushGradient stream we write by hand, and its outcome. */
  function openUpload(): { call: grpc.ClientWritableStream<GradientChunk>; ack: Promise<PushAck> } {
    let call!: grpc.ClientWritableStream<GradientChunk>;
    const ack = new Promise<PushAck>((resolve, reject) => {
      call = raw.PushGradient!((err, res) => (err ? reject(err) : resolve(res!)));
    });
    ack.catch(() => undefined);
    return { call, ack };
  }

  it('stops the first stream when its retry arrives, and reduces the step to the single-process bits', async () => {
    for (const [c, id] of [[w1, 'w1'], [w2, 'w2']] as const) await c.register({ worker_id: id, ...FP, pid: 1, hostname: 'test' });
    await executor.startPhase({ phase: 'pretrain', specs: SPECS, dataset: 'pretrain', replica: new Replica(SPECS, new Float32Array(P)), startStep: 0, update: undefined as never });
    const microBatches = Array.from({ length: 3 }, (_, j) => ({ index: j, examples: [4 * j], dropoutSeed: j }));
    const step = executor.runStep({ phase: 'pretrain', step: 0, dataset: 'pretrain', microBatches, counts: { sequences: 12, maskedTokens: 20 } });
    const a2 = await w2.nextAssignment({ worker_id: 'w2', after_seq: 0 });
    const a1 = await w1.nextAssignment({ worker_id: 'w1', after_seq: 0 });
    const pulls = [w1, w2].map((c, i) => c.pullReduced({ worker_id: `w${i + 1}`, step: 0, phase: 'pretrain' }));
    const range = a2.subtrees[0]!;
    expect(range).toEqual({ lo: 2, hi: 3 });
    const grad = treeSum(range, leaf);
    const payload = new Uint8Array(grad.buffer);
    const header = gradientHeaderChunk({ worker_id: 'w2', step: 0, phase: 'pretrain', range, stats_json: statsJson(range) }, payload.byteLength, 4096);
    const piece = (i: number) => gradientDataChunk(payload.subarray(i * 4096, Math.min(payload.byteLength, (i + 1) * 4096)));

    // The first attempt gets a few chunks in, then stalls (its worker gave up on it).
    const first = openUpload();
    first.call.write(header);
    for (let i = 0; i < 3; i++) first.call.write(piece(i));
    const round = executor.roundFor('w2', 'pretrain', 0);
    while (round.openUploads === 0) await new Promise((r) => setTimeout(r, 10));

    // The retry: its header alone stops the first stream.
    const retry = openUpload();
    retry.call.write(header);
    const refused = (await first.ack.catch((e: unknown) => e)) as grpc.ServiceError;
    expect(refused.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(refused.details).toBe('upload of step 0 (pretrain) from w2 [2, 3): superseded by a newer upload of the same range (a retry)');
    for (let i = 0; i < 40; i++) retry.call.write(piece(i));
    retry.call.end();
    expect(await retry.ack).toMatchObject({ step: 0, range, received_bytes: P * 4 });
    expect(round.openUploads).toBe(0);

    for (const r of a1.subtrees) await w1.pushGradient({ worker_id: 'w1', step: 0, phase: 'pretrain', range: r, stats_json: statsJson(r) }, treeSum(r, leaf), { chunkBytes: 4096 });
    const out = await step;
    const expected = bits(treeSum({ lo: 0, hi: 3 }, leaf));
    expect(bits(out.grad).equals(expected)).toBe(true);
    for (const got of await Promise.all(pulls)) expect(bits(got).equals(expected)).toBe(true);
  });

  it('refuses a registration beyond cluster.maxWorkers, naming the limit', async () => {
    const w3 = await createCoordinatorClient(`127.0.0.1:${port}`, { log, tls: null });
    try {
      const err = await w3.register({ worker_id: 'w3', ...FP, pid: 3, hostname: 'test' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProtocolError); // LimitExceededError (RESOURCE_EXHAUSTED) once the status table maps it
      expect((err as Error).message).toBe('registration of worker w3 refused: the run already has 2 live workers, its maximum (cluster.maxWorkers 2); expected one to leave first');
      expect(executor.membership.active().map((m) => m.id)).toEqual(['w1', 'w2']);
    } finally {
      w3.close();
    }
  });
});

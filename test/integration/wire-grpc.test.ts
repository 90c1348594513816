/**
 * The gRPC adapter over real loopback sockets, against a tiny Coordinator
 * implemented here: registration accepted and refused, a multi-MiB gradient
 * pushed and pulled bit-exactly in chunks, errors keeping their class across
 * the wire, unreachable addresses and a clean shutdown.
 */
import { EventEmitter, once } from 'node:events';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProtocolError, ShapeError, UnreachableError } from '../../shared/errors.js';
import { silentLogger } from '../../shared/log.js';
import { gradientDataChunk, gradientHeaderChunk, readGradient } from '../../shared/wire/gradient-stream.js';
import type { CoordinatorClient } from '../../shared/wire/client.js';
import { createCoordinatorClient, createServer, type CoordinatorServer } from '../../shared/wire/grpc.js';
import { PROTOCOL_VERSION, type GradientChunk, type GradientHeader, type RegisterRequest } from '../../shared/wire/messages.js';
import type { CallContext, CoordinatorHandlers } from '../../shared/wire/service.js';
import { packTensors, stateChunks } from '../../shared/wire/state-payload.js';
import { freePort, isPortFree } from '../helpers/ports.js';

const log = silentLogger();
const PARAMS = 3_000_000; // 12 MB of float32: several 1 MiB chunks, beyond grpc's default 4 MiB limit
const FINGERPRINTS = { model_config_fingerprint: 'cfg-abc', vocab_fingerprint: 'vocab-123', backend_fingerprint: 'cpu-1' };

function registerRequest(overrides: Partial<RegisterRequest> = {}): RegisterRequest {
  return { worker_id: 'w1', protocol_version: PROTOCOL_VERSION, ...FINGERPRINTS, data_fingerprint: 'data-1', pid: 42, hostname: 'host-a', ...overrides };
}

/** Every bit pattern allowed, NaN payloads included: equality is checked on the bits. */
function randomGradient(n: number, seed: number): Float32Array {
  const bits = new Uint32Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bits[i] = x >>> 0;
  }
  return new Float32Array(bits.buffer);
}

/** One worker owning all micro-batches: its upload of [0, M) is the reduced gradient. */
class TinyCoordinator implements CoordinatorHandlers {
  private readonly live = new Map<number, { header: GradientHeader; pieces: Uint8Array[] }>();
  private readonly ready = new EventEmitter();

  async register(req: RegisterRequest) {
    if (req.protocol_version !== PROTOCOL_VERSION) {
      throw new ProtocolError(`protocol_version differs: expected ${PROTOCOL_VERSION}, got ${req.protocol_version}`);
    }
    for (const [field, expected] of Object.entries(FINGERPRINTS)) {
      const got = req[field as keyof typeof FINGERPRINTS];
      if (got !== expected) throw new ProtocolError(`${field} differs: expected ${expected}, got ${got}`);
    }
    return { run_id: 'run-1', protocol_version: PROTOCOL_VERSION, current_step: 0, phase: 'pretrain', needs_state: false, heartbeat_interval_ms: 1000, membership_version: 1, reducer_addresses: [] };
  }

  async getRunConfig() {
    return { run_id: 'run-1', protocol_version: PROTOCOL_VERSION, run_config_json: '{"seed":7}' };
  }

  async nextAssignment(req: { after_seq: number }) {
    const step = req.after_seq + 1;
    const micro_batches = [0, 1, 2, 3].map((index) => ({ index, examples: [index * 8, index * 8 + 1], dropout_seed: 100 + index }));
    return {
      run_id: 'run-1', kind: 'train', seq: step, phase: 'pretrain', step, dataset: 'pretrain', micro_batch_size: 8, num_micro_batches: 4,
      micro_batches, subtrees: [{ lo: 0, hi: 4 }], counts: { sequences: 32, masked_tokens: 90, has_masked_tokens: true },
      eval_chunks: [], membership_version: 1, stop_reason: '', recovery: false, audit: micro_batches[2]!,
    };
  }

  async pushEvalResults(req: { seq: number; results: unknown[] }) {
    return { seq: req.seq, accepted: req.results.length };
  }

  /** Each checked chunk is kept and streamed to the step's pull at once, as the coordinator does with reduced chunks. */
  async pushGradient(chunks: AsyncIterable<GradientChunk>) {
    let header: GradientHeader | undefined;
    for await (const m of readGradient(chunks, { expectedBytes: PARAMS * 4 })) {
      if (m.header !== undefined) {
        header = m.header;
        this.live.set(header.step, { header, pieces: [] });
      } else {
        this.live.get(header!.step)!.pieces.push(Uint8Array.from(m.piece.bytes));
      }
      this.ready.emit('piece');
    }
    return { step: header!.step, range: header!.range, received_bytes: header!.total_bytes };
  }

  async *pullReduced(req: { step: number }, ctx: CallContext) {
    while (!this.live.has(req.step)) await once(this.ready, 'piece', { signal: ctx.signal });
    const s = this.live.get(req.step)!;
    yield gradientHeaderChunk({ ...s.header, worker_id: '' }, s.header.total_bytes, s.header.chunk_bytes);
    for (let i = 0; i < Math.ceil(s.header.total_bytes / s.header.chunk_bytes); i++) {
      while (s.pieces.length <= i) await once(this.ready, 'piece', { signal: ctx.signal });
      yield gradientDataChunk(s.pieces[i]!);
    }
  }

  async heartbeat(req: { step: number }) {
    return { coordinator_step: req.step, phase: 'pretrain', drain: false };
  }

  async *fetchState() {
    const { tensors, payload } = packTensors([
      { name: 'bert.embeddings.word_embeddings.weight', shape: [4, 3], values: Float32Array.from({ length: 12 }, (_, i) => i / 3) },
      { name: 'optimizer.step', shape: [], values: Float32Array.of(17) },
    ]);
    yield* stateChunks({ run_id: 'run-1', step: 17, phase: 'pretrain', tensors, optimizer_json: '{"t":17}', seq: 40 }, payload, 16);
  }

  async reportChecksum(req: { checksum: string }) {
    return { match: true, reference_checksum: req.checksum };
  }

  async reportAudit(req: { tensors: { name: string; crc32: number }[] }) {
    return { outcome: req.tensors.map((t) => `${t.name}=${t.crc32}`).join(',') };
  }

  async reportMetrics() {
    return {};
  }

  async openStep(): Promise<never> {
    throw new ProtocolError('not a reducer');
  }

  async reassign(): Promise<never> {
    throw new ProtocolError('not a reducer');
  }

  async leave() {
    return { reassigned: 0 };
  }
}

describe('gRPC wire adapter on loopback', () => {
  let server: CoordinatorServer;
  let client: CoordinatorClient;

  beforeAll(async () => {
    server = createServer(new TinyCoordinator(), { log, tls: null });
    const port = await server.startServer('127.0.0.1', 0);
    client = await createCoordinatorClient(`127.0.0.1:${port}`, { log, tls: null, timeouts: { longPollTimeoutMs: 30_000 } });
  });

  afterAll(async () => {
    client?.close();
    await server?.stop({ graceMs: 1_000 });
  });

  it('accepts a worker whose fingerprints match', async () => {
    await expect(client.register(registerRequest())).resolves.toMatchObject({ run_id: 'run-1', protocol_version: PROTOCOL_VERSION });
  });

  it('refuses a worker with another vocabulary, naming the field and both values', async () => {
    const refused = client.register(registerRequest({ vocab_fingerprint: 'vocab-999' }));
    await expect(refused).rejects.toBeInstanceOf(ProtocolError);
    await expect(refused).rejects.toThrow('vocab_fingerprint differs: expected vocab-123, got vocab-999');
  });

  // On one HTTP/2 connection this hangs for good (Node's http2, messages over ~100 KB both
  // ways at once); the client sends uploads on a connection of their own.
  it('streams both ways at once: a 12 MB gradient pushed while each chunk is pulled back as it lands, bit-exactly', async () => {
    const gradient = randomGradient(PARAMS, 12);
    const pulled = client.pullReduced({ worker_id: 'w1', step: 12, phase: 'pretrain' }, { expectedBytes: PARAMS * 4 });
    const ack = await client.pushGradient({ worker_id: 'w1', step: 12, phase: 'pretrain', range: { lo: 0, hi: 4 }, stats_json: '[]' }, gradient);
    expect(ack).toEqual({ step: 12, range: { lo: 0, hi: 4 }, received_bytes: PARAMS * 4 });
    const reduced = await pulled;
    expect(reduced.length).toBe(PARAMS);
    expect(Buffer.compare(Buffer.from(reduced.buffer, reduced.byteOffset, reduced.byteLength), Buffer.from(gradient.buffer))).toBe(0);
  });

  it('rejects a gradient of the wrong length with a ShapeError that keeps its class across gRPC', async () => {
    const short = randomGradient(1024, 3);
    const err = await client.pushGradient({ worker_id: 'w1', step: 13, phase: 'pretrain', range: { lo: 0, hi: 4 }, stats_json: '[]' }, short).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ShapeError);
    expect(err).toMatchObject({ what: 'gradient for step 13 from w1 [0, 4)', expected: '12000000 bytes', got: '4096 bytes' });
    expect((err as Error).message).toBe('gradient for step 13 from w1 [0, 4): expected 12000000 bytes, got 4096 bytes');
    expect((err as Error).cause).toMatchObject({ code: 3 }); // the grpc error: INVALID_ARGUMENT
  });

  it('serves long-poll, unary and state calls with their typed replies', async () => {
    await expect(client.getRunConfig({ worker_id: 'w1', protocol_version: PROTOCOL_VERSION })).resolves.toEqual({ run_id: 'run-1', protocol_version: PROTOCOL_VERSION, run_config_json: '{"seed":7}' });
    await expect(client.nextAssignment({ worker_id: 'w1', after_seq: 4 })).resolves.toMatchObject({
      kind: 'train', seq: 5, step: 5, subtrees: [{ lo: 0, hi: 4 }], counts: { sequences: 32, masked_tokens: 90, has_masked_tokens: true },
      micro_batches: [{ index: 0, examples: [0, 1], dropout_seed: 100 }, { index: 1 }, { index: 2 }, { index: 3, examples: [24, 25] }],
      audit: { index: 2, examples: [16, 17], dropout_seed: 102 },
    });
    await expect(client.pushEvalResults({ worker_id: 'w1', seq: 6, results: [{ index: 0, stats_json: '{}', predictions: [1, 0, -1] }] })).resolves.toEqual({ seq: 6, accepted: 1 });
    await expect(client.heartbeat({ worker_id: 'w1', step: 5, status: 'training' })).resolves.toEqual({ coordinator_step: 5, phase: 'pretrain', drain: false });
    await expect(client.reportChecksum({ worker_id: 'w1', step: 5, checksum: 'ab', phase: 'pretrain' })).resolves.toEqual({ match: true, reference_checksum: 'ab' });
    await expect(client.reportMetrics({ worker_id: 'w1', step: 5, json: '{"loss":1}' })).resolves.toBeUndefined();
    // CRC-32s are uint32: values above 2^31 arrive unchanged.
    const audit = { worker_id: 'w1', phase: 'pretrain', step: 5, micro_batch: 2, sha256: 'ab', stats_json: '{}', fingerprint: 'backend=cpu' };
    await expect(client.reportAudit({ ...audit, tensors: [{ name: 'a', crc32: 0xdeadbeef }, { name: 'b', crc32: 7 }] })).resolves.toEqual({ outcome: `a=${0xdeadbeef},b=7` });
    const state = await client.fetchState({ worker_id: 'w1', phase: '' });
    expect(state.header).toMatchObject({ step: 17, optimizer_json: '{"t":17}', seq: 40 });
    expect([...state.tensors.get('bert.embeddings.word_embeddings.weight')!.values]).toEqual(Array.from({ length: 12 }, (_, i) => Math.fround(i / 3)));
    expect(state.tensors.get('optimizer.step')).toMatchObject({ shape: [], values: Float32Array.of(17) });
  });
});

describe('gRPC server flow control', () => {
  it('widens its HTTP/2 receive window for uploads (grpc-js internals still where expected)', async () => {
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk: Buffer, _enc, done) => void (lines.push(chunk.toString()), done()) });
    const server = createServer(new TinyCoordinator(), { log: pino({ level: 'debug' }, sink), tls: null, flowControlWindowBytes: 8 << 20 });
    await server.startServer('127.0.0.1', 0);
    await server.stop({ graceMs: 100 });
    expect(lines.find((l) => l.includes('"msg":"listening"'))).toMatch(/"flowControlWindowBytes":8388608,"widened":true/);
  });
});

describe('gRPC wire adapter failures', () => {
  it('retries an unreachable coordinator, then throws UnreachableError naming its address', async () => {
    const address = `127.0.0.1:${await freePort()}`;
    const connecting = createCoordinatorClient(address, { log, tls: null, connectTimeoutMs: 200, connectInitialDelayMs: 20, connectMaxDelayMs: 50, connectMaxAttempts: 3 });
    await expect(connecting).rejects.toBeInstanceOf(UnreachableError);
    await expect(connecting).rejects.toThrow(`coordinator at ${address} unreachable: no connection after 3 attempts`);
  });

  it('releases its port on shutdown, cancelling a pull still waiting', async () => {
    const server = createServer(new TinyCoordinator(), { log, tls: null });
    const port = await server.startServer('127.0.0.1', 0);
    const client = await createCoordinatorClient(`127.0.0.1:${port}`, { log, tls: null });
    const waiting = client.pullReduced({ worker_id: 'w1', step: 99, phase: 'pretrain' }).catch((e: unknown) => e);
    await client.heartbeat({ worker_id: 'w1', step: 0, status: 'training' }); // the pull is open by now
    await server.stop({ graceMs: 200 });
    expect(await waiting).toBeInstanceOf(UnreachableError);
    client.close();
    expect(await isPortFree(port)).toBe(true);
  });
});

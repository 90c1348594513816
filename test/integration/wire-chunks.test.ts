/**
 * The pure parts of the wire layer, without sockets: chunking, checksums,
 * reassembly checks, the tensor table of FetchState, the error <-> status
 * table and backoff delays. (Pure tests; they sit here beside wire-grpc
 * because test/unit belongs to another part of the tree.)
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, ProtocolError, ShapeError, UnreachableError } from '../../shared/errors.js';
import { backoffDelayMs } from '../../shared/wire/backoff.js';
import { splitBytes } from '../../shared/wire/chunks.js';
import { collectGradient, gradientStream, readGradient } from '../../shared/wire/gradient-stream.js';
import { crc32, crc32Portable } from '../../shared/wire/crc32.js';
import type { GradientChunk } from '../../shared/wire/messages.js';
import { packTensors, unpackTensors } from '../../shared/wire/state-payload.js';
import { fromWireError, GrpcStatus, toWireError } from '../../shared/wire/status-codes.js';

const header = { worker_id: 'w2', step: 12, phase: 'pretrain', range: { lo: 4, hi: 8 }, stats_json: '' };

function chunksOf(values: Float32Array, chunkBytes: number): GradientChunk[] {
  return [...gradientStream(header, values, chunkBytes)];
}

describe('chunks', () => {
  it('splits into views of at most the chunk size that share the original memory', () => {
    const bytes = new Uint8Array(10_000).map((_, i) => i & 0xff);
    const parts = [...splitBytes(bytes, 4096)];
    expect(parts.map((p) => p.byteLength)).toEqual([4096, 4096, 1808]);
    expect(parts.every((p) => p.buffer === bytes.buffer)).toBe(true);
    expect(Buffer.concat(parts).equals(Buffer.from(bytes))).toBe(true);
  });

  it('reassembles a gradient bit-exactly, into a reused buffer when given one', async () => {
    const values = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i));
    const into = new Float32Array(1000);
    const { header: h, gradient } = await collectGradient(chunksOf(values, 512), { into });
    expect(h).toMatchObject({ ...header, total_bytes: 4000, chunk_bytes: 512 });
    expect(gradient.buffer).toBe(into.buffer);
    expect(Buffer.from(gradient.buffer).equals(Buffer.from(values.buffer))).toBe(true);
  });

  it('gives each data chunk its own CRC-32, and its index and offset on arrival', async () => {
    const values = Float32Array.from({ length: 300 }, (_, i) => i / 3);
    const chunks = chunksOf(values, 512); // 1200 bytes: 512, 512, 176
    expect(chunks.slice(1).map((c) => [c.data!.byteLength, c.data_crc32])).toEqual(
      [[0, 512], [512, 1024], [1024, 1200]].map(([a, b]) => [b! - a!, crc32(new Uint8Array(values.buffer).subarray(a, b))]),
    );
    const pieces = [];
    for await (const m of readGradient(chunks)) if (m.piece) pieces.push([m.piece.index, m.piece.offset, m.piece.bytes.byteLength]);
    expect(pieces).toEqual([[0, 0, 512], [1, 512, 512], [2, 1024, 176]]);
  });

  it('rejects a chunk whose checksum does not match, naming the gradient and the chunk', async () => {
    const chunks = chunksOf(new Float32Array(256).fill(1), 512);
    const corrupted = Buffer.from(chunks[2]!.data!);
    corrupted[7]! ^= 1;
    chunks[2] = { data: corrupted, data_crc32: chunks[2]!.data_crc32! };
    await expect(collectGradient(chunks)).rejects.toThrow(/gradient for step 12 from w2 \[4, 8\), chunk 1: checksum mismatch: expected crc32 0x[0-9a-f]{8}, got 0x/);
  });

  it('rejects a chunk of the wrong size, and a chunk size other than the one required', async () => {
    const chunks = chunksOf(new Float32Array(256), 512);
    const short = chunks[1]!.data!.subarray(0, 100);
    chunks[1] = { data: short, data_crc32: crc32(short) };
    await expect(collectGradient(chunks)).rejects.toThrow(new ShapeError('gradient for step 12 from w2 [4, 8), chunk 0', '512 bytes', '100 bytes'));
    await expect(collectGradient(chunksOf(new Float32Array(256), 512), { chunkBytes: 1024 })).rejects.toThrow(/chunk size: expected 1024 bytes \(the run's cluster.chunkBytes\), got 512 bytes/);
  });

  it('rejects a stream shorter than its header announced', async () => {
    const chunks = chunksOf(new Float32Array(256), 512).slice(0, -1);
    await expect(collectGradient(chunks)).rejects.toThrow(new ShapeError('gradient for step 12 from w2 [4, 8)', '1024 bytes', '512 bytes (1 of 2 chunks)'));
  });

  it('rejects data before the header and a second header', async () => {
    const chunks = chunksOf(new Float32Array(4), 512);
    await expect(collectGradient(chunks.slice(1))).rejects.toBeInstanceOf(ProtocolError);
    await expect(collectGradient([chunks[0]!, chunks[0]!])).rejects.toThrow('a second header chunk arrived');
  });

  it('rejects a header announcing another size than expected before reading data', async () => {
    await expect(collectGradient(chunksOf(new Float32Array(4), 512), { expectedBytes: 32 })).rejects.toThrow('expected 32 bytes, got 16 bytes');
  });
});

describe('crc32', () => {
  it('gives the standard check value and agrees with the portable version across chunk boundaries', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    const data = new Uint8Array(100_003).map((_, i) => (i * 2654435761) >>> 24);
    const whole = crc32Portable(data);
    expect(crc32(data)).toBe(whole);
    expect(crc32Portable(data.subarray(5_001), crc32Portable(data.subarray(0, 5_001)))).toBe(whole);
  });
});

describe('state payload', () => {
  it('packs tensors back to back and unpacks them by name', () => {
    const { tensors, payload } = packTensors([
      { name: 'a', shape: [2, 3], values: Float32Array.from([1, 2, 3, 4, 5, 6]) },
      { name: 'b', shape: [1], values: Float32Array.of(7) },
    ]);
    expect(tensors.map((t) => [t.name, t.offset, t.byte_length])).toEqual([['a', 0, 24], ['b', 24, 4]]);
    const back = unpackTensors(tensors, payload);
    expect([...back.get('a')!.values]).toEqual([1, 2, 3, 4, 5, 6]);
    expect(() => unpackTensors([{ ...tensors[0]!, shape: [4, 3] }, tensors[1]!], payload)).toThrow(ShapeError);
  });
});

describe('error <-> status table', () => {
  it('restores the class and fields the server threw', () => {
    const sent = toWireError(new ShapeError('gradient for step 3', '16 bytes', '8 bytes'));
    expect(sent.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    const back = fromWireError({ ...sent, call: 'PushGradient on x', timeoutMs: 1 }, 'the grpc error');
    expect(back).toBeInstanceOf(ShapeError);
    expect(back).toMatchObject({ what: 'gradient for step 3', expected: '16 bytes', got: '8 bytes', cause: 'the grpc error' });
    const config = fromWireError({ ...toWireError(new ConfigError(['a', 'b'])), call: 'c', timeoutMs: 1 }, null);
    expect(config).toMatchObject({ problems: ['a', 'b'] });
  });

  it('maps a status without a bertfleet trailer by its code', () => {
    const failed = { details: 'connect failed', trailer: null, call: 'Register on 10.0.0.1:1', timeoutMs: 500 };
    expect(fromWireError({ ...failed, code: GrpcStatus.UNAVAILABLE }, null)).toBeInstanceOf(UnreachableError);
    expect(fromWireError({ ...failed, code: GrpcStatus.DEADLINE_EXCEEDED }, null).message).toBe('Register on 10.0.0.1:1 got no answer within 500 ms');
    expect(toWireError(new TypeError('boom'))).toEqual({ code: GrpcStatus.INTERNAL, details: 'TypeError: boom', trailer: null });
  });
});

describe('backoff', () => {
  it('doubles from the initial delay up to the cap', () => {
    const opts = { initialDelayMs: 100, maxDelayMs: 500, maxAttempts: 10 };
    expect([1, 2, 3, 4, 5].map((n) => backoffDelayMs(n, opts))).toEqual([100, 200, 400, 500, 500]);
  });
});

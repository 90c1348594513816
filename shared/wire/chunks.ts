/**
 * State payloads <-> streamed chunks (gradients have their own framing, with a
 * CRC per chunk: gradient-stream.ts). A stream is one header chunk (carrying
 * total_bytes and the CRC-32 of the payload) followed by data chunks of at
 * most `WIRE_CHUNK_BYTES`. Splitting makes zero-copy views of the caller's
 * buffer; reassembling copies once into a fresh, aligned buffer and checks the
 * length and the checksum. Floats travel as little-endian float32, the
 * platform's own order (asserted below), so no byte is swapped.
 *
 * Knows the chunk message shapes of messages.ts, nothing of gRPC or of what
 * the tensors mean.
 */
import { BackendError, ProtocolError, ShapeError } from '../errors.js';
import { crc32, formatCrc } from './crc32.js';
import type { Range } from './messages.js';

/** 1 MiB: well within the 16 MiB message limit set in grpc.ts. */
export const WIRE_CHUNK_BYTES = 1 << 20;

/** Refuse headers announcing more than this unless the caller raises it. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 2 ** 32;

/** Throws on a big-endian platform: the wire format is little-endian float32. */
export function assertLittleEndian(): void {
  const probe = new Uint8Array(new Uint16Array([1]).buffer);
  if (probe[0] !== 1) {
    throw new BackendError('wire format is little-endian float32, but this platform is big-endian');
  }
}
assertLittleEndian();

/** The bytes of a payload, as a view of the same memory (no copy). */
export function payloadBytes(payload: Uint8Array | Float32Array): Uint8Array {
  return new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength);
}

/**
 * Views of `bytes`, each at most `maxChunkBytes` long, in order. They share
 * memory with `bytes`: do not modify it until the stream has been sent.
 */
export function* splitBytes(bytes: Uint8Array, maxChunkBytes = WIRE_CHUNK_BYTES): Generator<Buffer> {
  if (!(maxChunkBytes > 0)) throw new RangeError(`maxChunkBytes must be > 0, got ${maxChunkBytes}`);
  for (let off = 0; off < bytes.byteLength; off += maxChunkBytes) {
    const len = Math.min(maxChunkBytes, bytes.byteLength - off);
    yield Buffer.from(bytes.buffer, bytes.byteOffset + off, len);
  }
}

/** A stream chunk of either direction: a header or a data slice. */
interface FramedChunk<H> {
  header?: H | null | undefined;
  data?: Uint8Array | undefined;
}

/** What every payload header carries for the integrity checks. */
export interface PayloadSeal {
  total_bytes: number;
  crc32: number;
}

/** The header chunk, then the data chunks of `payload`; `header` gets the seal. */
export function* frameChunks<H extends PayloadSeal>(
  header: Omit<H, keyof PayloadSeal>,
  payload: Uint8Array | Float32Array,
  maxChunkBytes = WIRE_CHUNK_BYTES,
): Generator<{ header: H } | { data: Uint8Array }> {
  const bytes = payloadBytes(payload);
  const sealed = { ...header, total_bytes: bytes.byteLength, crc32: crc32(bytes) } as H;
  yield { header: sealed };
  for (const data of splitBytes(bytes, maxChunkBytes)) yield { data };
}

export interface CollectOptions<H> {
  /** Names the payload in errors, e.g. `gradient for step 12 from w1 [0, 4)`. */
  describe: (header: H) => string;
  /** When known, the exact size the payload must have. */
  expectedBytes?: number;
  maxPayloadBytes?: number;
  /**
   * Write the payload here instead of into a fresh buffer (or into the buffer
   * this returns for the header); its length is then the expected size.
   * Reusing buffers across steps spares the page faults and GC of a fresh
   * 100 MB allocation. After a failure its contents are undefined.
   */
  into?: Uint8Array | ((header: H) => Uint8Array);
}

/**
 * Reads a header-then-data stream into one buffer, checking the header
 * comes first and only once, the byte count against the header (and against
 * `expectedBytes`) and the CRC-32.
 */
export async function collectChunks<H extends PayloadSeal>(
  chunks: AsyncIterable<FramedChunk<H>> | Iterable<FramedChunk<H>>,
  opts: CollectOptions<H>,
): Promise<{ header: H; bytes: Uint8Array }> {
  let header: H | undefined;
  let bytes: Uint8Array = new Uint8Array(0);
  let received = 0;
  let crc = 0;
  for await (const chunk of chunks) {
    if (chunk.header != null) {
      if (header !== undefined) throw new ProtocolError(`${opts.describe(header)}: a second header chunk arrived`);
      header = chunk.header;
      const into = typeof opts.into === 'function' ? opts.into(header) : opts.into;
      const total = checkAnnouncedSize(header, opts, into);
      bytes = into ?? new Uint8Array(total);
      continue;
    }
    if (header === undefined) throw new ProtocolError('payload stream: the first chunk must be a header, got data');
    const data = chunk.data ?? new Uint8Array(0);
    if (received + data.byteLength > bytes.byteLength) {
      throw new ShapeError(opts.describe(header), `${header.total_bytes} bytes`, `at least ${received + data.byteLength} bytes`);
    }
    bytes.set(data, received);
    crc = crc32(data, crc);
    received += data.byteLength;
  }
  if (header === undefined) throw new ProtocolError('payload stream: ended before any header chunk');
  const what = opts.describe(header);
  if (received !== header.total_bytes) throw new ShapeError(what, `${header.total_bytes} bytes`, `${received} bytes`);
  if (crc !== header.crc32) {
    throw new ProtocolError(`${what}: payload checksum mismatch: expected crc32 ${formatCrc(header.crc32)}, got ${formatCrc(crc)}`);
  }
  return { header, bytes };
}

function checkAnnouncedSize<H extends PayloadSeal>(header: H, opts: CollectOptions<H>, into: Uint8Array | undefined): number {
  const what = opts.describe(header);
  const max = opts.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  const total = header.total_bytes;
  const expected = opts.expectedBytes ?? into?.byteLength;
  if (expected !== undefined && total !== expected) throw new ShapeError(what, `${expected} bytes`, `${total} bytes`);
  if (!Number.isSafeInteger(total) || total < 0 || total > max) {
    throw new ShapeError(what, `at most ${max} bytes`, `${total} bytes`);
  }
  return total;
}

export function formatRange(r: Range | null): string {
  return r === null ? '[?)' : `[${r.lo}, ${r.hi})`;
}

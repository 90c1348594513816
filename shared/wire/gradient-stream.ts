/**
 * Gradient payloads <-> streamed chunks. A stream is one header (total_bytes,
 * chunk_bytes) and then the payload in order, cut at multiples of chunk_bytes;
 * each data chunk carries the CRC-32 of its own bytes. So a receiver can use
 * chunk i as soon as it has checked it (the coordinator sums it into the
 * step's reduction), and a sender can send chunk i of a sum still being
 * finished (the reduced gradient goes out chunk by chunk as it completes).
 * Sending makes zero-copy views of the caller's buffer.
 *
 * Knows the message shapes of messages.ts, nothing of gRPC or of what the
 * floats mean.
 */
import { ProtocolError, ShapeError } from '../errors.js';
import { DEFAULT_MAX_PAYLOAD_BYTES, formatRange, payloadBytes } from './chunks.js';
import { crc32, formatCrc } from './crc32.js';
import type { GradientChunk, GradientHeader } from './messages.js';

/** What the sender fills in; the stream adds the sizes. */
export type GradientSendHeader = Omit<GradientHeader, 'total_bytes' | 'chunk_bytes'>;

/** How a payload of `totalBytes` is cut: chunk i covers bytes [i * chunkBytes, min(total, (i + 1) * chunkBytes)). */
export interface ChunkCut {
  totalBytes: number;
  chunkBytes: number;
  count: number;
}

export function chunkCut(totalBytes: number, chunkBytes: number): ChunkCut {
  if (!(Number.isInteger(chunkBytes) && chunkBytes > 0 && chunkBytes % 4 === 0)) {
    throw new RangeError(`chunk size must be a positive multiple of 4 bytes (float32), got ${chunkBytes}`);
  }
  return { totalBytes, chunkBytes, count: Math.ceil(totalBytes / chunkBytes) };
}

/** Byte offset and length of chunk `i`. */
export function chunkSpan(cut: ChunkCut, i: number): { offset: number; bytes: number } {
  const offset = i * cut.chunkBytes;
  return { offset, bytes: Math.min(cut.chunkBytes, cut.totalBytes - offset) };
}

/** `gradient for step 12 from w1 [0, 4)`; the reduced one has no worker. */
export function describeGradient(h: Pick<GradientHeader, 'worker_id' | 'step' | 'range'>): string {
  const from = h.worker_id === '' ? '' : ` from ${h.worker_id}`;
  return `gradient for step ${h.step}${from} ${formatRange(h.range)}`;
}

/** The header message of a stream of `totalBytes` cut at `chunkBytes`. */
export function gradientHeaderChunk(header: GradientSendHeader, totalBytes: number, chunkBytes: number): GradientChunk {
  chunkCut(totalBytes, chunkBytes);
  return { header: { ...header, total_bytes: totalBytes, chunk_bytes: chunkBytes } };
}

/** The data message of `bytes` (one chunk), with its CRC (or the one given, already computed). */
export function gradientDataChunk(bytes: Uint8Array, crc = crc32(bytes)): GradientChunk {
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { data, data_crc32: crc };
}

/** Header, then the chunks of `payload` (views of it: do not modify it until the stream is sent). */
export function* gradientStream(header: GradientSendHeader, payload: Float32Array, chunkBytes: number): Generator<GradientChunk> {
  const bytes = payloadBytes(payload);
  const cut = chunkCut(bytes.byteLength, chunkBytes);
  yield gradientHeaderChunk(header, bytes.byteLength, chunkBytes);
  for (let i = 0; i < cut.count; i++) {
    const { offset, bytes: n } = chunkSpan(cut, i);
    yield gradientDataChunk(bytes.subarray(offset, offset + n));
  }
}

export interface ReadOptions {
  /** Checks the header (who sends, which step, the sizes) before any data is read; throws to refuse. */
  accept?: (header: GradientHeader) => void;
  /** When known, the exact payload size. */
  expectedBytes?: number;
  /** When known, the chunk size the stream must use. */
  chunkBytes?: number;
  /** Stop reading after the last announced chunk instead of at the stream's end. */
  untilLast?: boolean;
  maxPayloadBytes?: number;
}

/** One checked data chunk: its index, its byte offset in the payload, its bytes (a view of the message). */
export interface GradientPiece {
  index: number;
  offset: number;
  bytes: Uint8Array;
}

/**
 * Reads a gradient stream: first `{ header }` (after the size checks and
 * `accept`), then each data chunk in order as `{ piece }`, after checking its
 * length and its CRC-32. Ends after checking that every byte came.
 */
export async function* readGradient(
  chunks: AsyncIterable<GradientChunk> | Iterable<GradientChunk>,
  opts: ReadOptions = {},
): AsyncGenerator<{ header: GradientHeader; piece?: undefined } | { piece: GradientPiece; header?: undefined }> {
  let header: GradientHeader | undefined;
  let cut: ChunkCut | undefined;
  let index = 0;
  const it = (Symbol.asyncIterator in chunks ? chunks[Symbol.asyncIterator]() : chunks[Symbol.iterator]()) as AsyncIterator<GradientChunk> | Iterator<GradientChunk>;
  for (;;) {
    // Done once the last chunk the header announced is in: the sender's end-of-stream is not
    // awaited (a receiver can answer at once); the iterator is left as is, not closed.
    if (opts.untilLast === true && cut !== undefined && index === cut.count) return;
    const next = await it.next();
    if (next.done === true) break;
    const chunk = next.value;
    if (chunk.header != null) {
      if (header !== undefined) throw new ProtocolError(`${describeGradient(header)}: a second header chunk arrived`);
      header = chunk.header;
      cut = checkHeader(header, opts);
      opts.accept?.(header);
      yield { header };
      continue;
    }
    if (header === undefined || cut === undefined) throw new ProtocolError('gradient stream: the first chunk must be a header, got data');
    const data = chunk.data ?? new Uint8Array(0);
    const what = describeGradient(header);
    if (index >= cut.count) throw new ShapeError(what, `${header.total_bytes} bytes`, `more (chunk ${index} of ${cut.count})`);
    const span = chunkSpan(cut, index);
    if (data.byteLength !== span.bytes) throw new ShapeError(`${what}, chunk ${index}`, `${span.bytes} bytes`, `${data.byteLength} bytes`);
    const crc = crc32(data);
    if (crc !== chunk.data_crc32) {
      throw new ProtocolError(`${what}, chunk ${index}: checksum mismatch: expected crc32 ${formatCrc(chunk.data_crc32 ?? 0)}, got ${formatCrc(crc)}`);
    }
    yield { piece: { index, offset: span.offset, bytes: data } };
    index++;
  }
  if (header === undefined || cut === undefined) throw new ProtocolError('gradient stream: ended before any header chunk');
  if (index !== cut.count) {
    throw new ShapeError(describeGradient(header), `${header.total_bytes} bytes`, `${chunkSpan(cut, index).offset} bytes (${index} of ${cut.count} chunks)`);
  }
}

function checkHeader(h: GradientHeader, opts: ReadOptions): ChunkCut {
  const what = describeGradient(h);
  const max = opts.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  const total = h.total_bytes;
  if (opts.expectedBytes !== undefined && total !== opts.expectedBytes) throw new ShapeError(what, `${opts.expectedBytes} bytes`, `${total} bytes`);
  if (!Number.isSafeInteger(total) || total < 0 || total > max) throw new ShapeError(what, `at most ${max} bytes`, `${total} bytes`);
  if (total % 4 !== 0) throw new ShapeError(what, 'a multiple of 4 bytes (float32)', `${total} bytes`);
  if (opts.chunkBytes !== undefined && h.chunk_bytes !== opts.chunkBytes) {
    throw new ShapeError(`${what}: chunk size`, `${opts.chunkBytes} bytes (the run's cluster.chunkBytes)`, `${h.chunk_bytes} bytes`);
  }
  try {
    return chunkCut(total, h.chunk_bytes);
  } catch (err) {
    throw new ProtocolError(`${what}: ${(err as Error).message}`);
  }
}

/**
 * Reads a whole gradient stream into float32: into `into` when given (its
 * length is then the expected size; a function is called with the header),
 * else into a fresh array; with every check of `readGradient`.
 */
export async function collectGradient(
  chunks: AsyncIterable<GradientChunk> | Iterable<GradientChunk>,
  opts: ReadOptions & { into?: Float32Array | ((h: GradientHeader) => Float32Array); onPiece?: (index: number) => void } = {},
): Promise<{ header: GradientHeader; gradient: Float32Array }> {
  let header: GradientHeader | undefined;
  let out: Uint8Array = new Uint8Array(0);
  let gradient: Float32Array = new Float32Array(0);
  for await (const m of readGradient(chunks, opts)) {
    if (m.header !== undefined) {
      header = m.header;
      const into = typeof opts.into === 'function' ? opts.into(header) : opts.into;
      if (into !== undefined && into.byteLength !== header.total_bytes) throw new ShapeError(describeGradient(header), `${into.byteLength} bytes`, `${header.total_bytes} bytes`);
      gradient = into ?? new Float32Array(header.total_bytes / 4);
      out = payloadBytes(gradient);
    } else {
      out.set(m.piece.bytes, m.piece.offset);
      opts.onPiece?.(m.piece.index);
    }
  }
  return { header: header!, gradient };
}

/**
 * The FetchState payload: named float32 tensors (parameters and optimizer
 * state) packed back to back, described by a table of TensorMeta
 * {name, shape, dtype, offset, byte_length}. Packing copies once into one
 * buffer; unpacking returns views of the received buffer after checking that
 * the table tiles it exactly and each shape matches its length.
 *
 * Knows nothing of gRPC, of which tensors a model has or of their order: the
 * caller chooses names and order (use the Hugging Face parameter names).
 */
import { ProtocolError, ShapeError } from '../errors.js';
import { collectChunks, DEFAULT_MAX_PAYLOAD_BYTES, frameChunks, WIRE_CHUNK_BYTES, type PayloadSeal } from './chunks.js';
import type { StateChunk, StateHeader, TensorMeta } from './messages.js';

export interface NamedTensor {
  name: string;
  /** e.g. [hidden, hidden] for `bert.encoder.layer.0.attention.self.query.weight`. */
  shape: readonly number[];
  values: Float32Array;
}

/** Packs tensors in the given order into one buffer and its table. */
export function packTensors(tensors: readonly NamedTensor[]): { tensors: TensorMeta[]; payload: Uint8Array } {
  const table: TensorMeta[] = [];
  let offset = 0;
  for (const t of tensors) {
    checkShape(t.name, t.shape, t.values.length);
    table.push({ name: t.name, shape: [...t.shape], dtype: 'float32', offset, byte_length: t.values.byteLength });
    offset += t.values.byteLength;
  }
  const payload = new Uint8Array(offset);
  tensors.forEach((t, i) => payload.set(new Uint8Array(t.values.buffer, t.values.byteOffset, t.values.byteLength), table[i]!.offset));
  return { tensors: table, payload };
}

/** Float32 views of `payload` by name; the table must tile the payload exactly. */
export function unpackTensors(table: readonly TensorMeta[], payload: Uint8Array): Map<string, NamedTensor> {
  if (payload.byteOffset % 4 !== 0) throw new RangeError('state payload must start 4-byte aligned');
  const out = new Map<string, NamedTensor>();
  let expectedOffset = 0;
  for (const m of table) {
    if (m.dtype !== 'float32') throw new ProtocolError(`state tensor ${m.name}: expected dtype float32, got ${m.dtype}`);
    if (m.offset !== expectedOffset) {
      throw new ProtocolError(`state tensor ${m.name}: expected offset ${expectedOffset}, got ${m.offset}`);
    }
    if (out.has(m.name)) throw new ProtocolError(`state tensor ${m.name} appears twice in the table`);
    const elements = m.byte_length / 4;
    checkShape(`state tensor ${m.name}`, m.shape, elements);
    const values = new Float32Array(payload.buffer, payload.byteOffset + m.offset, elements);
    out.set(m.name, { name: m.name, shape: m.shape, values });
    expectedOffset += m.byte_length;
  }
  if (expectedOffset !== payload.byteLength) {
    throw new ShapeError('state payload', `${expectedOffset} bytes (sum of the tensor table)`, `${payload.byteLength} bytes`);
  }
  return out;
}

function checkShape(name: string, shape: readonly number[], elements: number): void {
  const product = shape.reduce((a, b) => a * b, 1);
  if (!Number.isInteger(elements) || product !== elements) {
    throw new ShapeError(name, `${product} elements for shape [${shape.join(', ')}]`, `${elements} elements`);
  }
}

/** Header + data chunks of a FetchState reply. */
export function stateChunks(
  header: Omit<StateHeader, keyof PayloadSeal>,
  payload: Uint8Array,
  maxChunkBytes = WIRE_CHUNK_BYTES,
): Generator<StateChunk> {
  return frameChunks<StateHeader>(header, payload, maxChunkBytes);
}

/** What the reader of a FetchState stream knows to expect before any byte is allocated. */
export interface StateExpectation {
  /**
   * The exact payload size the run's parameter layout gives (params, AdamW m
   * and v: 3 x P float32), or a function of the header giving it (the phase
   * decides the layout; it may throw to refuse the header); a header
   * announcing another size is refused before the payload buffer is allocated.
   */
  expectedBytes?: number | ((header: StateHeader) => number);
  /** Without `expectedBytes`, the largest payload accepted. */
  maxPayloadBytes?: number;
}

/**
 * Reassembles a FetchState stream, with the checks of `collectChunks`; the
 * header is checked first (its size against `expectedBytes`, its tensor table
 * against its own size), so a peer's announcement never sizes an allocation
 * the caller did not expect.
 */
export async function collectState(
  chunks: AsyncIterable<StateChunk> | Iterable<StateChunk>,
  opts: StateExpectation = {},
): Promise<{ header: StateHeader; tensors: Map<string, NamedTensor> }> {
  const describe = (h: StateHeader): string => `state of run ${h.run_id} at step ${h.step}`;
  const { header, bytes } = await collectChunks<StateHeader>(chunks, {
    describe,
    ...(opts.maxPayloadBytes !== undefined && { maxPayloadBytes: opts.maxPayloadBytes }),
    // Called with the header, before the buffer is taken: refuse an announcement that cannot be right.
    into: (h) => {
      const expectedBytes = typeof opts.expectedBytes === 'function' ? opts.expectedBytes(h) : opts.expectedBytes;
      checkStateHeader(h, describe(h), { ...(expectedBytes !== undefined && { expectedBytes }), ...(opts.maxPayloadBytes !== undefined && { maxPayloadBytes: opts.maxPayloadBytes }) });
      return new Uint8Array(h.total_bytes);
    },
  });
  return { header, tensors: unpackTensors(header.tensors, bytes) };
}

/**
 * Before allocating: the announced size is the expected one (ProtocolError,
 * expected vs got) and the tensor table adds up to it.
 */
export function checkStateHeader(h: StateHeader, what: string, opts: { expectedBytes?: number; maxPayloadBytes?: number } = {}): void {
  const total = h.total_bytes;
  if (opts.expectedBytes !== undefined && total !== opts.expectedBytes) {
    throw new ProtocolError(`${what}: expected ${opts.expectedBytes} bytes, got a header announcing ${total} bytes`);
  }
  const max = opts.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  if (!Number.isSafeInteger(total) || total < 0 || total > max) throw new ProtocolError(`${what}: expected at most ${max} bytes, got a header announcing ${total} bytes`);
  const tableBytes = h.tensors.reduce((n, t) => n + t.byte_length, 0);
  if (tableBytes !== total) throw new ProtocolError(`${what}: expected the tensor table to add up to the announced ${total} bytes, got ${tableBytes} bytes`);
}

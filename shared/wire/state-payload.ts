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
import { collectChunks, frameChunks, WIRE_CHUNK_BYTES, type PayloadSeal } from './chunks.js';
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

/** Reassembles a FetchState stream, with the checks of `collectChunks`. */
export async function collectState(
  chunks: AsyncIterable<StateChunk> | Iterable<StateChunk>,
  opts: { maxPayloadBytes?: number } = {},
): Promise<{ header: StateHeader; tensors: Map<string, NamedTensor> }> {
  const { header, bytes } = await collectChunks<StateHeader>(chunks, {
    describe: (h) => `state of run ${h.run_id} at step ${h.step}`,
    ...opts,
  });
  return { header, tensors: unpackTensors(header.tensors, bytes) };
}

/**
 * The safetensors format, parsed and written from bytes: an 8-byte little-endian
 * header length, a JSON header `{name: {dtype, shape, data_offsets}}` (plus an
 * optional `__metadata__` of strings), then the tensor data. Every offset is
 * checked, so a truncated or crafted file is refused, never read past its end.
 * F32 is read as is; F16 and BF16 are widened to float32. Pure: no file access.
 */
import { CheckpointError } from '../errors.js';

export interface NamedTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

const BYTES_PER: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function decode(dtype: string, bytes: Uint8Array, count: number): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  if (dtype === 'F32') {
    // Little-endian host (checked by the wire layer too): one copy, no per-element decode.
    // (Buffer#slice does not copy, so copy explicitly into the aligned output.)
    new Uint8Array(out.buffer).set(bytes.subarray(0, count * 4));
  } else if (dtype === 'F16') {
    for (let i = 0; i < count; i++) out[i] = f16ToF32(view.getUint16(i * 2, true));
  } else {
    const u32 = new Uint32Array(1);
    const f32 = new Float32Array(u32.buffer);
    for (let i = 0; i < count; i++) {
      u32[0] = view.getUint16(i * 2, true) << 16;
      out[i] = f32[0]!;
    }
  }
  return out;
}

function checkEntry(source: string, name: string, e: unknown): HeaderEntry {
  const entry = e as Partial<HeaderEntry>;
  if (typeof entry !== 'object' || entry === null || !Array.isArray(entry.shape) || !Array.isArray(entry.data_offsets)) {
    throw new CheckpointError(`${source}: tensor ${name}: header entry must have dtype, shape and data_offsets`);
  }
  if (!entry.shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new CheckpointError(`${source}: tensor ${name}: shape ${JSON.stringify(entry.shape)} is not a list of non-negative integers`);
  }
  const [begin, end] = entry.data_offsets;
  if (!Number.isInteger(begin) || !Number.isInteger(end) || begin! < 0 || end! < begin!) {
    throw new CheckpointError(`${source}: tensor ${name}: data_offsets ${JSON.stringify(entry.data_offsets)} are not an increasing pair`);
  }
  return entry as HeaderEntry;
}

/**
 * Parses a safetensors file. Tensors whose dtype is not floating point are
 * returned in `skipped` only when `skip(name)` says so (e.g. Hugging Face's
 * int64 `position_ids` buffer); otherwise an unsupported dtype is an error.
 */
export function parseSafetensors(
  bytes: Uint8Array,
  source: string,
  skip: (name: string) => boolean = () => false,
): { tensors: Map<string, NamedTensor>; metadata: Record<string, string>; skipped: string[] } {
  if (bytes.byteLength < 8) {
    throw new CheckpointError(`${source}: file is ${bytes.byteLength} bytes, expected at least 8 (truncated)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (headerLen > MAX_HEADER_BYTES || 8 + headerLen > bytes.byteLength) {
    throw new CheckpointError(
      `${source}: header length ${headerLen} runs past the end of the ${bytes.byteLength}-byte file (truncated or not safetensors)`,
    );
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + headerLen)).toString('utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new CheckpointError(`${source}: header is not valid JSON`, { cause: err });
  }
  const dataStart = 8 + headerLen;
  const dataLen = bytes.byteLength - dataStart;
  const metadata = (header['__metadata__'] ?? {}) as Record<string, string>;
  const entries = Object.entries(header)
    .filter(([name]) => name !== '__metadata__')
    .map(([name, e]) => [name, checkEntry(source, name, e)] as const)
    .sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0]);
  const tensors = new Map<string, NamedTensor>();
  const skipped: string[] = [];
  let prevEnd = 0;
  let prevName = '';
  for (const [name, e] of entries) {
    const [begin, end] = e.data_offsets;
    if (end > dataLen) {
      throw new CheckpointError(`${source}: tensor ${name} ends at byte ${end} of the data, but the data has ${dataLen} bytes (truncated file)`);
    }
    if (begin < prevEnd) {
      throw new CheckpointError(`${source}: tensor ${name} (bytes ${begin}..${end}) overlaps ${prevName} (ends at ${prevEnd})`);
    }
    prevEnd = end;
    prevName = name;
    const per = BYTES_PER[e.dtype];
    if (per === undefined) {
      if (skip(name)) {
        skipped.push(name);
        continue;
      }
      throw new CheckpointError(`${source}: tensor ${name} has dtype ${e.dtype}, expected one of F32, F16, BF16`);
    }
    const count = e.shape.reduce((a, b) => a * b, 1);
    if (count * per !== end - begin) {
      throw new CheckpointError(
        `${source}: tensor ${name} of shape [${e.shape}] and dtype ${e.dtype} needs ${count * per} bytes, its offsets span ${end - begin}`,
      );
    }
    tensors.set(name, { shape: e.shape, data: decode(e.dtype, bytes.subarray(dataStart + begin, dataStart + end), count) });
  }
  return { tensors, metadata, skipped };
}

/** Serialises float32 tensors in the given order (8-byte aligned header, as the reference writer pads). */
export function serializeSafetensors(tensors: ReadonlyArray<[string, NamedTensor]>, metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header['__metadata__'] = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    const bytes = t.data.length * 4;
    header[name] = { dtype: 'F32', shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.allocUnsafe(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let pos = 8 + headerBytes.length;
  for (const [, t] of tensors) {
    const src = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    src.copy(out, pos);
    pos += src.length;
  }
  return out;
}

/**
 * The digest of one micro-batch's gradient that the gradient audit compares
 * across two workers: sha256 of the whole float32 bytes, a CRC-32 per tensor
 * (in the parameter table's order) so a difference can be named, and the
 * micro-batch's loss statistics as the worker encoded them. Two healthy
 * workers computing the same micro-batch on the same replica produce the same
 * bytes (its data and dropout seed come from the run seed, the step and its
 * index), so any difference is a fault of one of them.
 *
 * Knows nothing of gRPC or of which worker sent what.
 */
import { checksum } from '../training/flat.js';
import { crc32, formatCrc } from '../wire/crc32.js';

export interface TensorCrc {
  name: string;
  crc32: number;
}

export interface GradientDigest {
  /** sha256 (hex) of the whole gradient's bytes. */
  sha256: string;
  /** One CRC-32 per tensor, in the parameter table's order. */
  tensors: TensorCrc[];
  /** The micro-batch's stats as JSON (shared/cluster/stats-json.ts `encodeStats`). */
  statsJson: string;
}

/** Where a gradient's tensors lie in the flat vector (FlatLayout fits). */
export interface TensorLayout {
  readonly specs: readonly { name: string }[];
  readonly offsets: readonly number[];
  readonly total: number;
}

export function gradientDigest(grad: Float32Array, layout: TensorLayout, statsJson: string): GradientDigest {
  const bytes = new Uint8Array(grad.buffer, grad.byteOffset, grad.byteLength);
  const tensors = layout.specs.map((s, i) => {
    const hi = i + 1 < layout.offsets.length ? layout.offsets[i + 1]! : layout.total;
    return { name: s.name, crc32: crc32(bytes.subarray(layout.offsets[i]! * 4, hi * 4)) };
  });
  return { sha256: checksum(grad), tensors, statsJson };
}

/** How two digests of one micro-batch differ; null when they are the same. */
export interface DigestDifference {
  /** The first tensor (in table order) whose bytes differ; null when only the stats, or the tensor lists themselves, differ. */
  tensor: string | null;
  /** One sentence for the error message. */
  detail: string;
}

export function compareDigests(a: GradientDigest, b: GradientDigest): DigestDifference | null {
  const statsDiffer = a.statsJson !== b.statsJson;
  if (a.sha256 === b.sha256 && !statsDiffer) return null;
  if (a.tensors.length !== b.tensors.length) {
    return { tensor: null, detail: `the tensor lists differ: ${a.tensors.length} tensors against ${b.tensors.length}` };
  }
  for (let i = 0; i < a.tensors.length; i++) {
    const x = a.tensors[i]!;
    const y = b.tensors[i]!;
    if (x.name !== y.name) return { tensor: null, detail: `the tensor lists differ at position ${i}: ${x.name} against ${y.name}` };
    if (x.crc32 !== y.crc32) return { tensor: x.name, detail: `first differing tensor: ${x.name} (crc32 ${formatCrc(x.crc32)} against ${formatCrc(y.crc32)})` };
  }
  if (a.sha256 !== b.sha256) return { tensor: null, detail: 'the sha256 differ but no tensor CRC-32 does (a collision)' };
  return { tensor: null, detail: `the gradients are equal but the stats differ: ${a.statsJson} against ${b.statsJson}` };
}

/**
 * One flat float32 vector for all parameters (and, alike, for gradients and
 * optimizer moments), in the order of the parameter table. This is the unit
 * that is summed, clipped, updated, checksummed and sent over the wire.
 */
import { createHash } from 'node:crypto';
import { ShapeError } from '../errors.js';
import { flatLayout, numElements, type ParamSpec } from '../model/params.js';

export class FlatLayout {
  readonly offsets: readonly number[];
  readonly total: number;
  private readonly index: Map<string, number>;

  constructor(readonly specs: readonly ParamSpec[]) {
    const { offsets, total } = flatLayout(specs);
    this.offsets = offsets;
    this.total = total;
    this.index = new Map(specs.map((s, i) => [s.name, i]));
  }

  /** A view (no copy) of one parameter inside a flat vector. */
  view(flat: Float32Array, name: string): Float32Array {
    const i = this.index.get(name);
    if (i === undefined) throw new Error(`no parameter named ${name}`);
    return flat.subarray(this.offsets[i]!, this.offsets[i]! + numElements(this.specs[i]!.shape));
  }

  pack(values: ReadonlyMap<string, Float32Array>): Float32Array {
    const flat = new Float32Array(this.total);
    this.specs.forEach((s, i) => {
      const v = values.get(s.name);
      if (!v) throw new Error(`parameter ${s.name} has no value`);
      if (v.length !== numElements(s.shape)) throw new ShapeError(`parameter ${s.name}`, `${numElements(s.shape)} values`, `${v.length}`);
      flat.set(v, this.offsets[i]!);
    });
    return flat;
  }

  /** Views (no copies) of every parameter, by name. */
  unpack(flat: Float32Array): Map<string, Float32Array> {
    this.checkLength(flat, 'flat vector');
    return new Map(this.specs.map((s) => [s.name, this.view(flat, s.name)]));
  }

  checkLength(flat: Float32Array, what: string): void {
    if (flat.length !== this.total) throw new ShapeError(what, `${this.total} float32 values`, `${flat.length}`);
  }

  /** 1 where AdamW weight decay applies, per element (not on LayerNorm or biases). */
  decayMask(): Uint8Array {
    const mask = new Uint8Array(this.total);
    this.specs.forEach((s, i) => {
      if (s.decay) mask.fill(1, this.offsets[i]!, this.offsets[i]! + numElements(s.shape));
    });
    return mask;
  }
}

/** sha256 of the vector's bytes: replicas compare it to prove they are identical. */
export function checksum(flat: Float32Array): string {
  return createHash('sha256').update(new Uint8Array(flat.buffer, flat.byteOffset, flat.byteLength)).digest('hex');
}

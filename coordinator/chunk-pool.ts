/**
 * Spare chunk-sized float32 buffers for the reduction: a partial's chunk is
 * copied into one while it waits for its sibling, and given back once added
 * in, so steady-state steps allocate nothing. Holds at most `keep` spares.
 * A chunk is at most MAX_CHUNK_BYTES (cluster.chunkBytes' bound), whoever
 * asks for the pool (a reducer's comes from the coordinator's OpenStep).
 */

/** The largest chunk: run-config cluster.chunkBytes' maximum, half the 16 MiB message limit. */
export const MAX_CHUNK_BYTES = 8 << 20;

export class ChunkPool {
  private readonly spare: Float32Array[] = [];

  constructor(
    readonly chunkFloats: number,
    private readonly keep = 64,
  ) {
    if (!(Number.isInteger(chunkFloats) && chunkFloats > 0 && chunkFloats * 4 <= MAX_CHUNK_BYTES)) {
      throw new RangeError(`chunk size must be 4 .. ${MAX_CHUNK_BYTES} bytes (whole float32 values), got ${chunkFloats * 4} bytes`);
    }
  }

  /** A buffer of `floats` (<= chunkFloats) floats, contents undefined. */
  take(floats: number): Float32Array {
    const b = this.spare.pop() ?? new Float32Array(this.chunkFloats);
    return floats === this.chunkFloats ? b : b.subarray(0, floats);
  }

  /** Takes back a buffer from `take` (or a view of one). */
  give(b: Float32Array): void {
    if (this.spare.length < this.keep) this.spare.push(b.byteOffset === 0 && b.length === this.chunkFloats ? b : new Float32Array(b.buffer, 0, this.chunkFloats));
  }
}

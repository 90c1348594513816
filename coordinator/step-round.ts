/**
 * One training step's reduction: which worker owes which subtree partial sum,
 * and the fixed-order tree sum over [0, M) (tree-sum.ts), done chunk by chunk
 * as the uploads stream in. The sum is elementwise, so chunk i of the reduced
 * gradient is the tree sum of chunk i of every partial: when chunk i of a
 * subtree arrives and chunk i of its sibling is in, the two are added (left +
 * right, as treeSum does) and the result climbs the tree; when chunk i reaches
 * the root it is final, and is served to the workers at once (`whenReady`)
 * while later chunks are still arriving. The bits are those of one process
 * summing all M micro-batch gradients, whatever the partition, the chunk
 * size, or the arrival order. Chunks wait in pooled chunk-sized buffers, and
 * the subtrees with lo = 0 (the tree's left spine) sum straight into the
 * reduced gradient.
 *
 * A chunk is summed once per subtree: a repeated chunk (a retried upload whose
 * first attempt got part of the way), or a chunk of a finer subtree whose
 * enclosing one already delivered it, is skipped — partials are deterministic,
 * so the skipped bytes are the same. When a worker leaves owing subtrees,
 * `reassign` hands them to others, cut only ever finer (so a subtree's chunks
 * are never counted twice); a stream whose subtree was taken away is refused.
 *
 * One stream per (worker, subtree) is read at a time (`claim`): a retry racing
 * its first attempt replaces it before reading a chunk, so none is buffered twice.
 *
 * Each chunk is checked for NaN and ±Infinity as it lands (cheap: ~0.1 ms per
 * MiB); the first non-finite value of each upload is kept as a PartialFault
 * and handed over with the reduced gradient, so the non-finite guard can name
 * the worker and micro-batches behind a non-finite step. The round itself
 * sums on regardless: the decision is taken on the reduced bytes by every replica.
 *
 * Knows nothing of gRPC; the service feeds it checked chunks.
 */
import { Deferred } from '../shared/async/deferred.js';
import { Waiters } from '../shared/async/waiters.js';
import { AlreadyReceivedError, ProtocolError } from '../shared/errors.js';
import type { MicroStats } from '../shared/training/gradients.js';
import type { TrainPhase } from '../shared/training/phase-settings.js';
import { addInto, splitPoint, type Range } from '../shared/training/tree-sum.js';
import type { IndexedStats } from '../shared/cluster/stats-json.js';
import { allFinite, firstNonFinite, type PartialFault } from '../shared/training/non-finite.js';
import { crc32 } from '../shared/wire/crc32.js';
import type { ChunkPool } from './chunk-pool.js';
import type { Block } from './partition.js';
import type { ReducedSource } from './reduced-store.js';
import { UploadClaims, type UploadClaim } from './upload-claims.js';

export interface ReducedStep {
  grad: Float32Array;
  stats: MicroStats[];
  /** The first non-finite value of each upload that had one, in arrival order. */
  faults: PartialFault[];
}

/** An upload in progress: who sends which subtree. */
export interface Upload {
  workerId: string;
  range: Range;
  chunks: number;
  /** Its first non-finite value, once one has been seen. */
  fault?: PartialFault;
}

const key = (r: Range): string => `${r.lo}:${r.hi}`;
const fmt = (r: Range): string => `[${r.lo}, ${r.hi})`;
const within = (inner: Range, outer: Range): boolean => outer.lo <= inner.lo && inner.hi <= outer.hi;

export class StepRound implements ReducedSource {
  /** The reduced gradient; chunk i is final once `whenReady(i)` resolves. */
  readonly grad: Float32Array;
  readonly chunkCount: number;
  /** Subtree -> its current owner, for every subtree still expected or received. */
  private readonly owner = new Map<string, { range: Range; workerId: string }>();
  private readonly delivered = new Map<string, string>();
  /** Per chunk: subtrees whose chunk is in the sum (received, or formed by adding two). */
  private covered: Range[][];
  /** Per chunk: summed subtrees waiting for their sibling, by range. */
  private pending: Map<string, Float32Array>[];
  private readonly readyFlags: Uint8Array;
  private readyCount = 0;
  private readonly crcs: (number | undefined)[];
  private readonly chunkArrived = new Waiters();
  private readonly stats: (MicroStats | undefined)[];
  private readonly faults: PartialFault[] = [];
  private readonly claims = new UploadClaims();
  private readonly result = new Deferred<ReducedStep>();
  /** Resolves with the reduced gradient once its last chunk is summed. */
  readonly done: Promise<ReducedStep> = this.result.promise;

  constructor(
    readonly phase: TrainPhase,
    readonly step: number,
    readonly microBatches: number,
    blocks: readonly Block[],
    paramCount: number,
    private readonly pool: ChunkPool,
    /** Where this round's slice starts in the whole flat gradient (a reducer of `--reducers K` sums one slice). */
    private readonly sliceLo = 0,
  ) {
    for (const b of blocks) for (const r of b.subtrees) this.owner.set(key(r), { range: r, workerId: b.workerId });
    this.grad = new Float32Array(paramCount);
    this.chunkCount = Math.ceil(paramCount / pool.chunkFloats);
    this.covered = Array.from({ length: this.chunkCount }, () => []);
    this.pending = Array.from({ length: this.chunkCount }, () => new Map());
    this.readyFlags = new Uint8Array(this.chunkCount);
    this.crcs = new Array<number | undefined>(this.chunkCount);
    this.stats = new Array<MicroStats | undefined>(microBatches).fill(undefined);
  }

  get chunkBytes(): number {
    return this.pool.chunkFloats * 4;
  }

  /** Upload streams being read now (one per worker and subtree at most). */
  get openUploads(): number {
    return this.claims.size;
  }

  get complete(): boolean {
    return this.result.settled;
  }

  /** Workers that still owe a partial sum. */
  pendingWorkers(): Set<string> {
    const out = new Set<string>();
    for (const [k, o] of this.owner) if (!this.delivered.has(k)) out.add(o.workerId);
    return out;
  }

  /** The subtrees `workerId` owes and has not delivered, in index order. */
  owedBy(workerId: string): Range[] {
    return [...this.owner].filter(([k, o]) => o.workerId === workerId && !this.delivered.has(k)).map(([, o]) => o.range).sort((a, b) => a.lo - b.lo);
  }

  /**
   * Hands what `from` owes to `blocks` (cut from exactly those ranges by
   * partition(), each subtree inside one of them); returns the micro-batches moved.
   */
  reassign(from: string, blocks: readonly Block[]): number {
    const owed = this.owedBy(from);
    const moved = owed.reduce((n, r) => n + r.hi - r.lo, 0);
    const given = blocks.flatMap((b) => b.subtrees);
    const count = given.reduce((n, r) => n + r.hi - r.lo, 0);
    if (count !== moved) throw new RangeError(`step ${this.step}: reassigning ${moved} micro-batches of ${from}, but the blocks cover ${count}`);
    for (const r of given) {
      if (!owed.some((o) => within(r, o))) throw new RangeError(`step ${this.step}: reassigned subtree ${fmt(r)} is not inside one owed by ${from}: ${owed.map(fmt).join(' ')}`);
    }
    for (const r of owed) this.owner.delete(key(r));
    for (const b of blocks) for (const r of b.subtrees) this.owner.set(key(r), { range: r, workerId: b.workerId });
    return moved;
  }

  /**
   * Throws unless `workerId` owes `range` now: AlreadyReceivedError for a
   * repeat of its own delivered upload (a retry whose first attempt landed) or
   * once the step is reduced, ProtocolError otherwise.
   */
  checkUpload(workerId: string, range: Range | null): Range {
    const what = `upload of step ${this.step} (${this.phase}) from ${workerId}`;
    if (range === null) throw new ProtocolError(`${what}: expected a subtree range, got none`);
    const k = key(range);
    if (this.delivered.get(k) === workerId) throw new AlreadyReceivedError(`${what}: range ${fmt(range)} was already received`);
    if (this.complete) throw new AlreadyReceivedError(`${what}: step ${this.step} is already reduced`);
    const o = this.owner.get(k);
    if (o === undefined || o.workerId !== workerId) {
      const mine = this.owedBy(workerId).map(fmt);
      throw new ProtocolError(`${what}: range ${fmt(range)} is not assigned to it: expected one of ${mine.length > 0 ? mine.join(' ') : '(none)'}`);
    }
    if (this.delivered.has(k)) throw new ProtocolError(`${what}: range ${fmt(range)} was already received from ${this.delivered.get(k)}`);
    return range;
  }

  /**
   * Claims `range` for one upload stream of `workerId` (checked as
   * `checkUpload`), before any of its chunks is read: an older stream of the
   * same worker and range (a retry racing its first attempt) is stopped and
   * waited out first, so no two buffer at once (upload-claims.ts).
   */
  async claim(workerId: string, range: Range | null, stop: AbortController): Promise<UploadClaim> {
    const r = this.checkUpload(workerId, range);
    const what = `upload of step ${this.step} (${this.phase}) from ${workerId} ${fmt(r)}`;
    return this.claims.claim(`${workerId}|${key(r)}`, what, stop, () => this.checkUpload(workerId, range));
  }

  /** Starts an upload of `range` (checked as `checkUpload`) with the stats of its micro-batches. */
  begin(workerId: string, range: Range | null, stats: readonly IndexedStats[]): Upload {
    const r = this.checkUpload(workerId, range);
    const indices = stats.map((s) => s.index).sort((a, b) => a - b);
    const expected = Array.from({ length: r.hi - r.lo }, (_, i) => r.lo + i);
    if (indices.join(',') !== expected.join(',')) {
      throw new ProtocolError(`upload of step ${this.step} from ${workerId} ${fmt(r)}: stats expected for micro-batches [${expected}], got [${indices}]`);
    }
    for (const s of stats) this.stats[s.index] = s.stats;
    return { workerId, range: r, chunks: 0 };
  }

  /** Sums chunk `index` of an upload (its bytes already checked against their CRC). */
  addChunk(up: Upload, index: number, bytes: Uint8Array): void {
    if (this.complete) return;
    const o = this.owner.get(key(up.range));
    if (o?.workerId !== up.workerId) {
      throw new ProtocolError(`upload of step ${this.step} from ${up.workerId} ${fmt(up.range)}: the range was reassigned to ${o?.workerId ?? 'others'} (the worker was taken for gone)`);
    }
    if (index !== up.chunks) throw new ProtocolError(`upload of step ${this.step} from ${up.workerId} ${fmt(up.range)}: expected chunk ${up.chunks}, got ${index}`);
    up.chunks++;
    this.insert(up, index, bytes);
  }

  /** The upload sent every chunk: its subtree is delivered. */
  end(up: Upload): void {
    if (up.chunks !== this.chunkCount && !this.complete) {
      throw new ProtocolError(`upload of step ${this.step} from ${up.workerId} ${fmt(up.range)}: expected ${this.chunkCount} chunks, got ${up.chunks}`);
    }
    this.delivered.set(key(up.range), up.workerId);
  }

  fail(err: unknown): void {
    this.result.reject(err);
    this.chunkArrived.wake();
  }

  // ------------------------------------------------------------ ReducedSource

  /** Resolves once chunk `i` of the reduced gradient is final; rejects if the round fails. */
  async whenReady(i: number, signal?: AbortSignal): Promise<void> {
    while (this.readyFlags[i] !== 1) {
      if (this.result.settled) await this.done; // rethrows a failure
      await this.chunkArrived.next(60_000, signal);
    }
  }

  /** CRC-32 of final chunk `i` (computed once). */
  chunkCrc(i: number): number {
    const cached = this.crcs[i];
    if (cached !== undefined) return cached;
    const c = crc32(this.chunkBytesOf(i));
    this.crcs[i] = c;
    return c;
  }

  /** The bytes of chunk `i` of the reduced gradient. */
  chunkBytesOf(i: number): Uint8Array {
    const lo = i * this.pool.chunkFloats;
    const hi = Math.min(this.grad.length, lo + this.pool.chunkFloats);
    return new Uint8Array(this.grad.buffer, this.grad.byteOffset + lo * 4, (hi - lo) * 4);
  }

  // ------------------------------------------------------------ internals

  /** Puts chunk `i` of the upload's subtree into the sum and climbs while siblings are in. */
  private insert(up: Upload, i: number, bytes: Uint8Array): void {
    const r = up.range;
    const covered = this.covered[i]!;
    for (const c of covered) {
      if (within(r, c)) return; // already in the sum
      if (c.lo < r.hi && r.lo < c.hi) throw new ProtocolError(`step ${this.step}, chunk ${i}: subtree ${fmt(r)} overlaps ${fmt(c)}, already summed`);
    }
    const lo = i * this.pool.chunkFloats;
    const floats = Math.min(this.grad.length, lo + this.pool.chunkFloats) - lo;
    const target = r.lo === 0 ? this.grad.subarray(lo, lo + floats) : this.pool.take(floats);
    new Uint8Array(target.buffer, target.byteOffset, floats * 4).set(bytes);
    if (up.fault === undefined && !allFinite(target)) this.noteFault(up, target, lo);
    covered.push(r);
    const pending = this.pending[i]!;
    let node = r;
    let sum = target;
    for (;;) {
      const parent = parentOf(node, this.microBatches);
      if (parent === null) {
        this.chunkDone(i);
        return;
      }
      const mid = splitPoint(parent.lo, parent.hi);
      const isLeft = node.lo === parent.lo;
      const sibling = isLeft ? { lo: mid, hi: parent.hi } : { lo: parent.lo, hi: mid };
      const other = pending.get(key(sibling));
      if (other === undefined) {
        pending.set(key(node), sum);
        return;
      }
      pending.delete(key(sibling));
      // left + right, in that order, into the left buffer; the right one (never the spine) goes back to the pool.
      const [left, right] = isLeft ? [sum, other] : [other, sum];
      addInto(left, right);
      this.pool.give(right);
      node = parent;
      sum = left;
      covered.push(parent);
    }
  }

  private noteFault(up: Upload, chunk: Float32Array, chunkLo: number): void {
    const k = firstNonFinite(chunk);
    up.fault = { workerId: up.workerId, range: up.range, flatIndex: this.sliceLo + chunkLo + k, value: chunk[k]! };
    this.faults.push(up.fault);
  }

  private chunkDone(i: number): void {
    this.readyFlags[i] = 1;
    this.readyCount++;
    this.chunkArrived.wake();
    if (this.readyCount < this.chunkCount) return;
    const missing = this.stats.findIndex((s) => s === undefined);
    if (missing >= 0) {
      this.result.reject(new ProtocolError(`step ${this.step}: every chunk is summed but the stats of micro-batch ${missing} never came`));
      return;
    }
    this.covered = [];
    this.pending = [];
    this.result.resolve({ grad: this.grad, stats: this.stats as MicroStats[], faults: this.faults });
  }
}

/** The node of the reduction tree over [0, total) whose child is `r`; null for the root. */
export function parentOf(r: Range, total: number): Range | null {
  let node: Range = { lo: 0, hi: total };
  let parent: Range | null = null;
  while (node.lo !== r.lo || node.hi !== r.hi) {
    if (node.hi - node.lo <= 1 || r.lo < node.lo || r.hi > node.hi) throw new RangeError(`[${r.lo}, ${r.hi}) is not a subtree of the reduction tree over [0, ${total})`);
    const mid = splitPoint(node.lo, node.hi);
    parent = node;
    node = r.hi <= mid ? { lo: node.lo, hi: mid } : { lo: mid, hi: node.hi };
  }
  return parent;
}

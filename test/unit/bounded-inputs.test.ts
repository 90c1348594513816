/**
 * Bounded inputs, without a network: what a peer announces or sends never
 * sizes an allocation or a structure beyond what the run allows. A state
 * header is checked against the layout before its payload buffer exists; a
 * retry racing its own first upload is settled before either takes a pooled
 * chunk; evaluation results naming a chunk twice (or outside the evaluation,
 * or too many) are refused whole, naming the worker, the task and the index,
 * and the chunks are then redone by another worker; the member list is capped
 * (cluster.maxWorkers) and forgets old departures; worker ids, hostnames,
 * checksums, audit digests, stats and timings reports are bounded.
 */
import { describe, expect, it } from 'vitest';
import { AuditBook, DIGEST_LIMITS } from '../../coordinator/audit-book.js';
import { ChecksumBook, MAX_WAITING_STEPS } from '../../coordinator/checksum-book.js';
import { ChunkPool, MAX_CHUNK_BYTES } from '../../coordinator/chunk-pool.js';
import { EvalCollection, type ChunkResult } from '../../coordinator/eval-collection.js';
import { Membership } from '../../coordinator/membership.js';
import { partition } from '../../coordinator/partition.js';
import { StepRound } from '../../coordinator/step-round.js';
import type { EvalTask } from '../../coordinator/task-log.js';
import { WorkerSpeeds } from '../../coordinator/worker-speeds.js';
import { MAX_TIMINGS_JSON_CHARS, parseWorkerTimings } from '../../coordinator/worker-timings.js';
import { parseRunConfig } from '../../shared/config/run-config.js';
import { RESUME_MAY_CHANGE } from '../../shared/config/resume-policy.js';
import { AlreadyReceivedError, LimitExceededError, ProtocolError } from '../../shared/errors.js';
import { silentLogger } from '../../shared/log.js';
import { treeSum } from '../../shared/training/tree-sum.js';
import type { StateHeader } from '../../shared/wire/messages.js';
import { checkStateHeader, collectState, packTensors, stateChunks } from '../../shared/wire/state-payload.js';
import { stateBytes } from '../../worker/fetch-state.js';

const STATS = { sequences: 4, lossSum: 1.5, nspLossSum: 0.25, correct: 2, nspCorrect: 3, maskedTokens: 7 };

function header(total: number, tensors = [{ name: 'params', shape: [total / 4], dtype: 'float32', offset: 0, byte_length: total }]): StateHeader {
  return { run_id: 'r', step: 3, phase: 'pretrain', tensors, optimizer_json: '{}', seq: 7, total_bytes: total, crc32: 0 };
}

describe('state payload: the announced size is checked before allocating', () => {
  it('refuses a 4 GiB header when the layout gives 3 x P floats, expected vs got', () => {
    expect(() => checkStateHeader(header(2 ** 32), 'state', { expectedBytes: stateBytes(1000) })).toThrow(
      new ProtocolError('state: expected 12000 bytes, got a header announcing 4294967296 bytes'),
    );
  });

  it('refuses a tensor table that does not add up to the announced size', () => {
    const h = header(12000, [{ name: 'params', shape: [1], dtype: 'float32', offset: 0, byte_length: 4 }]);
    expect(() => checkStateHeader(h, 'state', { expectedBytes: 12000 })).toThrow(/expected the tensor table to add up to the announced 12000 bytes, got 4 bytes/);
  });

  it('refuses a stream whose header is wrong before reading any data chunk', async () => {
    let dataRead = 0;
    function* chunks() {
      yield { header: header(2 ** 32) };
      for (;;) {
        dataRead++;
        yield { data: new Uint8Array(16) };
      }
    }
    await expect(collectState(chunks(), { expectedBytes: () => stateBytes(10) })).rejects.toThrow(/expected 120 bytes, got a header announcing 4294967296 bytes/);
    expect(dataRead).toBe(0);
  });

  it('accepts a state of exactly the expected size', async () => {
    const P = 10;
    const t = (name: string, v: number) => ({ name, shape: [P], values: new Float32Array(P).fill(v) });
    const { tensors, payload } = packTensors([t('params', 1), t('adamw.m', 2), t('adamw.v', 3)]);
    const got = await collectState(stateChunks({ run_id: 'r', step: 1, phase: 'pretrain', tensors, optimizer_json: '{}', seq: 2 }, payload, 16), { expectedBytes: stateBytes(P) });
    expect([...got.tensors.keys()]).toEqual(['params', 'adamw.m', 'adamw.v']);
  });
});

describe('chunk sizes', () => {
  it('refuses a pool of chunks beyond 8 MiB, the bound of cluster.chunkBytes', () => {
    expect(() => new ChunkPool((MAX_CHUNK_BYTES + 4) / 4)).toThrow(/chunk size must be 4 .. 8388608 bytes/);
    expect(new ChunkPool(MAX_CHUNK_BYTES / 4).chunkFloats * 4).toBe(MAX_CHUNK_BYTES);
    expect(() => parseRunConfig({ cluster: { chunkBytes: MAX_CHUNK_BYTES + 4 } })).toThrow(/chunkBytes/);
  });
});

/** A pool that counts the buffers it hands out. */
class CountingPool extends ChunkPool {
  taken = 0;
  override take(floats: number): Float32Array {
    this.taken++;
    return super.take(floats);
  }
}

describe('duplicate uploads: one stream per worker and subtree', () => {
  const M = 2;
  const n = 64; // 4 chunks of 16 floats
  const leaves = [Float32Array.from({ length: n }, (_, i) => i / 7), Float32Array.from({ length: n }, (_, i) => 1 - i / 5)];
  const stats = (lo: number) => [{ index: lo, stats: STATS }];
  const chunk = (v: Float32Array, i: number) => new Uint8Array(v.slice(i * 16, (i + 1) * 16).buffer);

  it('stops the older stream and takes no pooled chunk for the newer until the older has let go', async () => {
    const pool = new CountingPool(16);
    const r = new StepRound('pretrain', 0, M, partition(M, ['a', 'b']), n, pool);
    // b's subtree [1, 2) is off the spine: each of its chunks waits in a pooled buffer for a's.
    const firstStop = new AbortController();
    const first = await r.claim('b', { lo: 1, hi: 2 }, firstStop);
    const up1 = r.begin('b', { lo: 1, hi: 2 }, stats(1));
    r.addChunk(up1, 0, chunk(leaves[1]!, 0));
    expect(pool.taken).toBe(1);

    // The retry's header is read: the first stream is told to stop, the retry waits without reading.
    let claimed = false;
    const second = r.claim('b', { lo: 1, hi: 2 }, new AbortController()).then((c) => {
      claimed = true;
      return c;
    });
    await Promise.resolve();
    expect(firstStop.signal.aborted).toBe(true);
    expect((firstStop.signal.reason as Error).message).toBe('upload of step 0 (pretrain) from b [1, 2): superseded by a newer upload of the same range (a retry)');
    expect(claimed).toBe(false);
    expect(pool.taken).toBe(1);
    // A third stream of the same subtree while one waits is refused at once.
    await expect(r.claim('b', { lo: 1, hi: 2 }, new AbortController())).rejects.toThrow(/two uploads of this range are already open/);

    first.release(); // the first handler ended (its stream failed)
    const claim2 = await second;
    const up2 = r.begin('b', { lo: 1, hi: 2 }, stats(1));
    for (let i = 0; i < 4; i++) r.addChunk(up2, i, chunk(leaves[1]!, i)); // chunk 0 is already in: skipped
    r.end(up2);
    claim2.release();
    expect(pool.taken).toBe(4); // one per chunk, as for a single upload

    const upA = r.begin('a', { lo: 0, hi: 1 }, stats(0));
    for (let i = 0; i < 4; i++) r.addChunk(upA, i, chunk(leaves[0]!, i));
    r.end(upA);
    const done = await r.done;
    expect(Buffer.from(done.grad.buffer).equals(Buffer.from(treeSum({ lo: 0, hi: 2 }, (i) => leaves[i]!).buffer))).toBe(true);
  });

  it('answers a retry whose first attempt landed while it waited: already received', async () => {
    const r = new StepRound('pretrain', 0, M, partition(M, ['a', 'b']), n, new ChunkPool(16));
    const first = await r.claim('b', { lo: 1, hi: 2 }, new AbortController());
    const up = r.begin('b', { lo: 1, hi: 2 }, stats(1));
    for (let i = 0; i < 4; i++) r.addChunk(up, i, chunk(leaves[1]!, i));
    const second = r.claim('b', { lo: 1, hi: 2 }, new AbortController());
    r.end(up);
    first.release();
    await expect(second).rejects.toBeInstanceOf(AlreadyReceivedError);
  });

  it('lets another worker that now owes the same subtree upload without waiting for a stale stream', async () => {
    const r = new StepRound('pretrain', 0, M, partition(M, ['a', 'b']), n, new ChunkPool(16));
    await r.claim('b', { lo: 1, hi: 2 }, new AbortController()); // b's stream stalls, never released
    r.reassign('b', [{ workerId: 'c', ranges: [{ lo: 1, hi: 2 }], subtrees: [{ lo: 1, hi: 2 }] }]);
    await expect(r.claim('c', { lo: 1, hi: 2 }, new AbortController())).resolves.toBeDefined();
  });
});

describe('evaluation results: each chunk once, from its owner', () => {
  const chunks = [[0, 1], [2, 3], [4], [5, 6]];
  function evalRun(): EvalCollection {
    const task: EvalTask = {
      kind: 'eval', seq: 5, phase: 'finetune', step: 6, dataset: 'classify-validation', chunks, blocks: partition(4, ['a', 'b']), membershipVersion: 1, recovery: false,
    };
    return new EvalCollection(task);
  }
  const result = (index: number): ChunkResult => ({ index, stats: STATS, predictions: new Int32Array(chunks[index]!.length) });

  it('refuses results that repeat an index, naming the worker, the task and the index, and keeps none of them', async () => {
    const run = evalRun();
    expect(() => run.accept('a', 5, [result(0), result(1), result(0)])).toThrow(
      new ProtocolError('eval results of task 5 from a: chunk 0 is repeated in the results (index 0 appears twice)'),
    );
    expect(run.owedBy('a')).toEqual([{ lo: 0, hi: 2 }]);
    // a is taken for gone (the refusal failed it): its chunks go to b, which delivers them.
    run.reassign(6, partition(4, ['b'], { items: run.owedBy('a') }));
    expect(run.accept('b', 6, [result(1), result(0)])).toBe(2);
    expect(run.accept('b', 5, [result(2), result(3)])).toBe(2);
    const out = await run.done;
    expect(out.predictions.map((p) => p.length)).toEqual([2, 2, 1, 2]);
  });

  it('refuses an index outside the evaluation and more results than chunks', () => {
    const run = evalRun();
    expect(() => run.accept('a', 5, [result(0), { ...result(1), index: 4 }])).toThrow('eval results of task 5 from a: chunk index 4 is outside the evaluation\'s chunks [0, 4)');
    expect(() => run.accept('a', 5, [{ ...result(0), index: -1 }])).toThrow(/chunk index -1 is outside/);
    expect(() => run.accept('a', 5, [{ ...result(0), index: 0.5 }])).toThrow(/chunk index 0.5 is outside/);
    expect(() => run.accept('a', 5, [0, 1, 2, 3, 0].map((i) => result(i)))).toThrow('eval results of task 5 from a: expected at most 4 results (the evaluation\'s chunks), got 5');
    expect(run.accept('a', 5, [result(0), result(1)])).toBe(2);
    expect(() => run.accept('a', 5, [result(0)])).toThrow(AlreadyReceivedError);
  });
});

describe('membership: bounded', () => {
  it('refuses a registration beyond cluster.maxWorkers live members, and takes one once a member leaves', () => {
    const m = new Membership({ maxWorkers: 2 });
    m.register('w1', 'h', 1, 0);
    m.register('w2', 'h', 2, 0);
    const err = (() => {
      try {
        m.register('w3', 'h', 3, 0);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(LimitExceededError);
    expect((err as Error).message).toBe('registration of worker w3 refused: the run already has 2 live workers, its maximum (cluster.maxWorkers 2); expected one to leave first');
    m.register('w2', 'h', 22, 1); // a restart of a member replaces it: allowed
    m.markLeft('w1', 'drained', 'bye');
    m.register('w3', 'h', 3, 2);
    expect(m.active().map((x) => x.id)).toEqual(['w2', 'w3']);
  });

  it('forgets the oldest departures beyond maxWorkers', () => {
    const m = new Membership({ maxWorkers: 2 });
    for (let i = 0; i < 50; i++) {
      m.register(`w${i}`, 'h', i, i);
      m.markLeft(`w${i}`, 'error', 'gone');
    }
    expect(m.size).toBe(2);
    expect(m.get('w49')?.status).toBe('left');
    expect(m.get('w0')).toBeUndefined();
  });

  it('refuses a worker id that is not a PEER_ID, a long hostname, and clips a long leave detail', () => {
    const m = new Membership();
    expect(() => m.register('a/b', 'h', 1, 0)).toThrow('registration refused: worker_id expected 1-128 characters of [A-Za-z0-9_.-], got "a/b"');
    expect(() => m.register('x'.repeat(129), 'h', 1, 0)).toThrow(/worker_id expected 1-128 characters/);
    expect(() => m.register('x'.repeat(100_000), 'h', 1, 0)).toThrow(/got "x{130}"\.\.\. \(100000 characters\)$/);
    expect(() => m.register('w1', 'h'.repeat(256), 1, 0)).toThrow('registration of worker w1 refused: hostname expected at most 255 characters, got 256');
    expect(() => m.touch('y'.repeat(1_000_000), 0)).toThrow(/is not registered/);
    const details: string[] = [];
    m.onChange((c) => c.kind === 'left' && details.push(c.detail));
    m.register('w1', 'h', 1, 0);
    m.markLeft('w1', 'error', 'z'.repeat(100_000));
    expect(details[0]!.length).toBeLessThan(1100);
    expect(details[0]).toMatch(/\.\.\. \(100000 characters\)$/);
  });

  it('has cluster.maxWorkers in the run config (default 256), changeable on resume', () => {
    expect(parseRunConfig({}).cluster.maxWorkers).toBe(256);
    expect(() => parseRunConfig({ cluster: { maxWorkers: 0 } })).toThrow(/maxWorkers/);
    expect(RESUME_MAY_CHANGE).toContain('cluster.maxWorkers');
  });
});

describe('books and reports: bounded whatever a worker sends', () => {
  it('refuses checksum reports for more steps than can wait, and checksums longer than a digest', () => {
    const book = new ChecksumBook(() => undefined);
    for (let s = 1; s <= MAX_WAITING_STEPS; s++) expect(book.report('w1', 'pretrain', s * 10, 'ab')).toEqual({ match: true, reference: '' });
    expect(() => book.report('w1', 'pretrain', 10_000_000, 'ab')).toThrow(/reports for 8 steps already wait for its checksum/);
    book.recordOwn('pretrain', 10, 'ab');
    expect(book.report('w1', 'pretrain', 999, 'ab')).toEqual({ match: true, reference: '' });
    expect(() => book.report('w1', 'pretrain', 20, 'f'.repeat(129))).toThrow('checksum of worker w1 after pretrain step 20: expected a digest of at most 128 characters, got 129');
  });

  it('refuses an audit digest beyond the size bounds', () => {
    const book = new AuditBook({ log: silentLogger(), onMismatch: () => undefined });
    book.expect('pretrain', 0, { index: 1, owner: 'a', auditor: 'b' });
    const tensors = Array.from({ length: DIGEST_LIMITS.tensors + 1 }, (_, i) => ({ name: `t${i}`, crc32: i }));
    expect(() => book.report('a', 'pretrain', 0, 1, { sha256: 'x', tensors, statsJson: '{}', fingerprint: 'f' })).toThrow(
      'audit digest of pretrain step 0 from a: tensors expected at most 4096, got 4097',
    );
    expect(book.report('a', 'pretrain', 0, 1, { sha256: 'x', tensors: [], statsJson: '{}', fingerprint: 'f' })).toBe('waiting');
  });

  it('tracks the speeds of at most maxTracked workers, and forgets a departed one', () => {
    const speeds = new WorkerSpeeds({ log: silentLogger(), maxTracked: 3 });
    for (let i = 0; i < 10; i++) speeds.record(`w${i}`, 1, 10);
    expect(speeds.size).toBe(3);
    speeds.forget('w9');
    expect(speeds.size).toBe(2);
  });

  it('refuses a timings report beyond 16 KiB or with fields that are not short values', () => {
    expect(parseWorkerTimings('w1', JSON.stringify({ phase: 'pretrain', stepMs: 12, steps: 10 }))).toEqual({ phase: 'pretrain', stepMs: 12, steps: 10 });
    expect(() => parseWorkerTimings('w1', `{"a":"${'x'.repeat(MAX_TIMINGS_JSON_CHARS)}"}`)).toThrow(/ReportMetrics from w1: expected at most 16384 characters of JSON, got 16392/);
    expect(() => parseWorkerTimings('w1', JSON.stringify({ nested: { deep: 1 } }))).toThrow(/field "nested": expected a number, a boolean or a string/);
    expect(() => parseWorkerTimings('w1', JSON.stringify(Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, i]))))).toThrow(/expected at most 64 fields, got 65/);
  });
});

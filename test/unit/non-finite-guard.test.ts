/**
 * The non-finite guard's parts, on real buffers: the finiteness scan and the
 * flat-index-to-tensor mapping; a replica that is given a real BERT gradient
 * with one NaN or Infinity applies nothing (parameters and AdamW moments keep
 * their bytes) and names the element; a reduction round notes the first
 * non-finite value of each upload with its worker and micro-batches (also in
 * a reducer's slice); stats with a NaN loss cross the wire; a checkpoint with
 * a non-finite weight is refused; skipped steps are counted from steps.jsonl.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChunkPool } from '../../coordinator/chunk-pool.js';
import { countSkippedSteps } from '../../coordinator/skipped-steps.js';
import { StepRound } from '../../coordinator/step-round.js';
import { initBackend } from '../../shared/backend/select.js';
import { decodeIndexedStats, decodeStats, encodeIndexedStats, encodeStats } from '../../shared/cluster/stats-json.js';
import { NonFiniteGradientError, NonFiniteWeightsError, ProtocolError, RUN_STOPPED_EXIT, stopsRunForGood } from '../../shared/errors.js';
import { parseBertConfig } from '../../shared/model/config.js';
import { numElements, paramSpecs } from '../../shared/model/params.js';
import { microBatchGradient } from '../../shared/training/gradients.js';
import { initParams } from '../../shared/training/init.js';
import { allFinite, assertFinite, firstNonFinite, locate } from '../../shared/training/non-finite.js';
import { Replica, type UpdateSettings } from '../../shared/training/replica.js';
import { randomPretrainBatch } from '../../shared/training/synthetic-batches.js';

const bert = parseBertConfig({ vocab_size: 300, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64, max_position_embeddings: 64 });
const specs = paramSpecs(bert, { heads: 'pretraining' });
const update: UpdateSettings = { adamW: { beta1: 0.9, beta2: 0.999, epsilon: 1e-6, weightDecay: 0.01 }, clipNorm: 1, schedule: { peakLr: 1e-3, warmupSteps: 2, totalSteps: 50 } };
const TARGET = 'bert.encoder.layer.1.output.dense.weight';

const bytes = (v: Float32Array): Buffer => Buffer.from(v.buffer, v.byteOffset, v.byteLength);

describe('finiteness scan', () => {
  it('finds NaN, +Infinity and -Infinity anywhere, including the tail after the last group of four', () => {
    for (const n of [1, 4, 7, 1001]) {
      for (const bad of [Number.NaN, Infinity, -Infinity]) {
        for (const at of [0, Math.floor(n / 2), n - 1]) {
          const x = new Float32Array(n).fill(0.5);
          x[at] = bad;
          if (at > 0) x[at - 1] = -3.4e38; // the largest finite values are finite
          expect(allFinite(x)).toBe(false);
          expect(firstNonFinite(x)).toBe(at);
        }
      }
    }
  });

  it('calls finite vectors finite, with extremes and negative zero', () => {
    const x = Float32Array.from([3.4028234663852886e38, -3.4028234663852886e38, -0, 1.4e-45, 0]);
    expect(allFinite(x)).toBe(true);
    expect(firstNonFinite(x)).toBe(-1);
    expect(allFinite(new Float32Array(0))).toBe(true);
  });
});

describe('locate', () => {
  const replica = Replica.fromValues(specs, initParams(bert, specs, 3));
  it('maps flat indices to the parameter and the element inside it, at both edges of every tensor', () => {
    const { offsets } = replica.layout;
    specs.forEach((s, i) => {
      expect(locate(offsets[i]!, replica.layout)).toEqual({ tensor: s.name, index: 0 });
      const last = offsets[i]! + numElements(s.shape) - 1;
      expect(locate(last, replica.layout)).toEqual({ tensor: s.name, index: numElements(s.shape) - 1 });
    });
  });

  it('refuses indices outside the table', () => {
    expect(() => locate(replica.layout.total, replica.layout)).toThrow(RangeError);
    expect(() => locate(-1, replica.layout)).toThrow(RangeError);
  });
});

describe('Replica.applyGradient', () => {
  let grad: Float32Array;
  beforeAll(async () => {
    await initBackend({ name: 'wasm-blas', blasThreads: 1 });
    const replica = Replica.fromValues(specs, initParams(bert, specs, 3));
    const batch = randomPretrainBatch(bert.vocab_size, 4, 16, 3, 20);
    grad = microBatchGradient(bert, replica.layout, replica.paramTensors(), batch, { sequences: 4, maskedTokens: 10 }, 1).grad;
    replica.releaseTensors();
    expect(allFinite(grad)).toBe(true);
  });

  /** A replica one step in (so the moments are not zero), and a copy of its bytes. */
  function steppedReplica(): { replica: Replica; before: { params: Buffer; m: Buffer; v: Buffer } } {
    const replica = Replica.fromValues(specs, initParams(bert, specs, 3));
    expect(replica.applyGradient(grad.slice(), 0, update).skipped).toBe(false);
    return { replica, before: { params: Buffer.from(bytes(replica.params)), m: Buffer.from(bytes(replica.opt.m)), v: Buffer.from(bytes(replica.opt.v)) } };
  }

  for (const bad of [Number.NaN, Infinity, -Infinity]) {
    it(`applies nothing to a real gradient holding ${bad} and names the element`, () => {
      const { replica, before } = steppedReplica();
      const g = grad.slice();
      const view = replica.layout.view(g, TARGET);
      view[37] = bad;
      view[40] = Number.NaN; // only the first is named
      const given = Buffer.from(bytes(g));
      const r = replica.applyGradient(g, 1, update);
      expect(r.skipped).toBe(true);
      expect(r.firstBad).toEqual({ tensor: TARGET, index: 37, value: bad });
      expect(Number.isFinite(r.gradNorm)).toBe(false);
      expect(bytes(replica.params).equals(before.params)).toBe(true);
      expect(bytes(replica.opt.m).equals(before.m)).toBe(true);
      expect(bytes(replica.opt.v).equals(before.v)).toBe(true);
      expect(bytes(g).equals(given)).toBe(true); // not clipped either: an infinite norm would scale everything to 0 or NaN
    });
  }

  it('applies a finite gradient as before (clipped, one AdamW step)', () => {
    const { replica, before } = steppedReplica();
    const r = replica.applyGradient(grad.slice(), 1, update);
    expect(r).toMatchObject({ skipped: false, firstBad: null, lr: 1e-3 });
    expect(Number.isFinite(r.gradNorm)).toBe(true);
    expect(bytes(replica.params).equals(before.params)).toBe(false);
  });
});

describe('StepRound', () => {
  const STATS = { sequences: 4, lossSum: 1.5, nspLossSum: 0.25, correct: 2, nspCorrect: 3, maskedTokens: 7 };
  const stats = (lo: number, hi: number) => Array.from({ length: hi - lo }, (_, k) => ({ index: lo + k, stats: STATS }));
  const blocks = [
    { workerId: 'w-a', ranges: [{ lo: 0, hi: 2 }], subtrees: [{ lo: 0, hi: 2 }] },
    { workerId: 'w-b', ranges: [{ lo: 2, hi: 4 }], subtrees: [{ lo: 2, hi: 4 }] },
  ];

  function upload(r: StepRound, w: string, lo: number, hi: number, g: Float32Array): void {
    const up = r.begin(w, { lo, hi }, stats(lo, hi));
    const per = r.chunkBytes / 4;
    for (let i = 0; i < r.chunkCount; i++) r.addChunk(up, i, new Uint8Array(g.slice(i * per, (i + 1) * per).buffer));
    r.end(up);
  }

  it('notes the first non-finite value of each upload with its worker and micro-batches, and still sums', async () => {
    const r = new StepRound('pretrain', 3, 4, blocks, 100, new ChunkPool(16));
    const a = new Float32Array(100).fill(1);
    const b = new Float32Array(100).fill(2);
    b[50] = Infinity;
    b[90] = Number.NaN;
    upload(r, 'w-b', 2, 4, b); // arrival order does not matter
    upload(r, 'w-a', 0, 2, a);
    const out = await r.done;
    expect(out.faults).toEqual([{ workerId: 'w-b', range: { lo: 2, hi: 4 }, flatIndex: 50, value: Infinity }]);
    expect(out.grad[50]).toBe(Infinity);
    expect(out.grad[90]).toBeNaN();
    expect(out.grad[0]).toBe(3);
  });

  it('gives indices into the whole gradient on a reducer that sums a slice', async () => {
    const r = new StepRound('finetune', 0, 4, blocks, 64, new ChunkPool(16), 1000);
    const a = new Float32Array(64);
    a[20] = Number.NaN;
    upload(r, 'w-a', 0, 2, a);
    upload(r, 'w-b', 2, 4, new Float32Array(64));
    const out = await r.done;
    expect(out.faults).toEqual([{ workerId: 'w-a', range: { lo: 0, hi: 2 }, flatIndex: 1020, value: Number.NaN }]);
  });

  it('notes nothing for finite uploads', async () => {
    const r = new StepRound('pretrain', 0, 4, blocks, 40, new ChunkPool(16));
    upload(r, 'w-a', 0, 2, new Float32Array(40).fill(-3.4e38));
    upload(r, 'w-b', 2, 4, new Float32Array(40).fill(3.4e38));
    expect((await r.done).faults).toEqual([]);
  });
});

describe('stats JSON', () => {
  it('carries NaN and infinite loss sums (a diverged step) instead of refusing them', () => {
    for (const v of [Number.NaN, Infinity, -Infinity]) {
      const s = { sequences: 4, lossSum: v, nspLossSum: v, correct: 2, nspCorrect: 3, maskedTokens: 7 };
      expect(decodeStats(encodeStats(s), 'eval')).toEqual(s);
      expect(decodeIndexedStats(encodeIndexedStats([{ index: 1, stats: s }]), 'upload')).toEqual([{ index: 1, stats: s }]);
    }
  });

  it('still refuses a non-finite count', () => {
    expect(() => decodeStats('{"sequences":4,"lossSum":1,"nspLossSum":0,"correct":"NaN","nspCorrect":0,"maskedTokens":0}', 'eval')).toThrow(ProtocolError);
  });
});

describe('assertFinite', () => {
  it('refuses weights with a non-finite value, naming the tensor and element', () => {
    const replica = Replica.fromValues(specs, initParams(bert, specs, 3));
    expect(() => assertFinite('trainer state', replica.params, replica.layout)).not.toThrow();
    replica.layout.view(replica.params, 'cls.predictions.bias')[12] = -Infinity;
    const err = (() => {
      try {
        assertFinite('trainer state of pretrain step 4', replica.params, replica.layout);
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(NonFiniteWeightsError);
    expect((err as Error).message).toBe('trainer state of pretrain step 4: expected finite weights, got -Infinity at cls.predictions.bias[12]; nothing was written');
    expect(stopsRunForGood(err)).toBe(true);
  });
});

describe('NonFiniteGradientError', () => {
  it('names the step, the worker, its micro-batches and the first tensor', () => {
    const err = new NonFiniteGradientError({
      phase: 'finetune', step: 7, reduced: { tensor: 'classifier.weight', index: 3, value: Number.NaN },
      partial: { workerId: 'worker-2', range: { lo: 4, hi: 6 }, tensor: 'classifier.weight', index: 3, value: Infinity },
    });
    expect(err.message).toMatch(/^finetune step 7: expected a finite gradient, got NaN at classifier\.weight\[3\] in the reduced gradient; it came from worker worker-2, in the partial sum of micro-batches \[4, 6\) \(Infinity at classifier\.weight\[3\]\)/);
    expect(stopsRunForGood(err)).toBe(true);
    expect(stopsRunForGood(new ProtocolError('x'))).toBe(false);
    expect(RUN_STOPPED_EXIT).not.toBe(1);
  });
});

describe('countSkippedSteps', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bertfleet-skipped-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('counts the skipped lines of each phase', () => {
    const file = join(dir, 'steps.jsonl');
    const lines = [
      { phase: 'pretrain', step: 0, loss: 1 },
      { phase: 'pretrain', step: 1, loss: null, skipped: true, reason: 'x' },
      { phase: 'finetune', step: 0, loss: null, skipped: true, reason: 'x' },
      { phase: 'finetune', step: 1, loss: null, skipped: true, reason: 'x' },
    ];
    writeFileSync(file, lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
    expect(countSkippedSteps(file)).toEqual({ pretrain: 1, finetune: 2 });
    expect(countSkippedSteps(join(dir, 'none.jsonl'))).toEqual({ pretrain: 0, finetune: 0 });
  });

  it('names the file and line of a damaged record', () => {
    const file = join(dir, 'bad.jsonl');
    writeFileSync(file, '{"phase":"pretrain","step":0}\n{"phase":"pre');
    expect(() => countSkippedSteps(file)).toThrow(/bad\.jsonl:2: expected a JSON step record/);
  });
});

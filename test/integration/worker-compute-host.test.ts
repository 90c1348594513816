/**
 * A worker's compute thread (ComputeHost) on the pipeline fixtures and the
 * wasm-blas backend (its native addon loaded inside the thread): the
 * gradients, updates, checksums and evaluations it returns are byte-identical
 * to the same calls made in-process with WorkerCompute and Replica; the main
 * thread's event loop keeps turning while it computes; errors thrown in the
 * thread arrive as the same classes; close() ends it.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, type BackendInfo } from '../../shared/backend/select.js';
import { runFingerprints } from '../../shared/cluster/fingerprints.js';
import { parseRunConfig, type RunConfig } from '../../shared/config/run-config.js';
import type { RunData } from '../../shared/data/run-data.js';
import { BackendError, BertfleetError, InputError, ProtocolError, ShapeError } from '../../shared/errors.js';
import { silentLogger } from '../../shared/log.js';
import type { BertConfig } from '../../shared/model/config.js';
import type { GlobalCounts } from '../../shared/model/losses.js';
import { prepareRun } from '../../shared/run-setup.js';
import { maskedTokenCount, sourceOf, type PretrainArrays } from '../../shared/training/batches.js';
import { DataPlan, dropoutSeed } from '../../shared/training/data-plan.js';
import { FlatLayout } from '../../shared/training/flat.js';
import { initParams } from '../../shared/training/init.js';
import { phaseSpecs, updateSettings } from '../../shared/training/phase-settings.js';
import { Replica } from '../../shared/training/replica.js';
import { microBatchGradient } from '../../shared/training/gradients.js';
import { treeSum, type Range } from '../../shared/training/tree-sum.js';
import { WorkerCompute, type MicroInput, type ReadyPartial } from '../../worker/compute.js';
import { ComputeHost } from '../../worker/compute-host.js';
import { PIPELINE_FIXTURES } from '../helpers/pipeline.js';

const work = mkdtempSync(join(tmpdir(), 'bertfleet-compute-host-'));

function fixtureConfig(): RunConfig {
  const run = JSON.parse(readFileSync(join(PIPELINE_FIXTURES, 'run.json'), 'utf8')) as { data: Record<string, unknown> };
  return parseRunConfig({
    ...run,
    seed: 7,
    backend: 'wasm-blas',
    model: join(PIPELINE_FIXTURES, 'micro-bert.json'),
    data: {
      ...run.data,
      corpus: [join(PIPELINE_FIXTURES, 'corpus.txt')],
      classification: join(PIPELINE_FIXTURES, 'sentiment.csv'),
      cacheDir: join(work, 'cache'),
    },
  });
}

const bytes = (a: Float32Array | Int32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** Micro-batches of a pretraining step as the coordinator builds them, with the step's global counts. */
function pretrainStep(config: RunConfig, data: RunData, step: number): { micro: MicroInput[]; counts: GlobalCounts } {
  const p = config.pretrain;
  const source = sourceOf(data.datasets, 'pretrain');
  const plan = new DataPlan({ stream: 'pretrain', seed: config.seed, numExamples: source.size, globalBatch: p.globalBatch, microBatch: p.microBatch });
  const micro = Array.from({ length: plan.microPerStep }, (_, j) => ({ index: j, examples: plan.examples(step, j), dropoutSeed: dropoutSeed(config.seed, 'pretrain', step, j) }));
  const counts = { sequences: p.globalBatch, maskedTokens: maskedTokenCount(source.batch(micro.flatMap((m) => m.examples)) as PretrainArrays) };
  return { micro, counts };
}

/** Any fixed combination of the partial sums will do: both replicas get the same bytes. */
function combine(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts[0]!.length);
  for (const p of parts) for (let i = 0; i < out.length; i++) out[i]! += p[i]!;
  return out;
}

describe('ComputeHost', () => {
  const config = fixtureConfig();
  const hostOptions = { config, backend: { name: 'wasm-blas' as const, blasThreads: 1 }, logLevel: 'silent', logBindings: { workerId: 'test' } };
  let backend: BackendInfo;
  let bert: BertConfig;
  let data: RunData;

  beforeAll(async () => {
    // In-process first: it builds the data cache the threads then only read.
    backend = await initBackend({ name: 'wasm-blas', blasThreads: 1 });
    ({ bert, data } = await prepareRun(config, silentLogger(), false));
  });

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('computes, applies and evaluates byte-identically to WorkerCompute and Replica in-process', async () => {
    const host = await ComputeHost.start(hostOptions);
    try {
      expect(host.fingerprints).toEqual(runFingerprints(bert, data, backend));
      expect(host.backend.name).toBe('wasm-blas');
      expect(host.bert).toEqual(bert);
      expect(host.numLabels).toBe(data.datasets.labels.length);

      const specs = phaseSpecs(bert, 'pretrain', data.datasets.labels.length);
      const ref = Replica.fromValues(specs, initParams(bert, specs, config.seed));
      await host.load({ phase: 'pretrain', step: 0, params: ref.params.slice(), m: ref.opt.m.slice(), v: ref.opt.v.slice() });
      expect(await host.checksum()).toBe(ref.checksum());

      const compute = new WorkerCompute(bert, data.datasets);
      const update = updateSettings(config, 'pretrain');
      const trees: Range[][] = [[{ lo: 0, hi: 3 }], [{ lo: 0, hi: 2 }, { lo: 2, hi: 3 }], [{ lo: 0, hi: 1 }, { lo: 1, hi: 3 }]];
      for (let step = 0; step < trees.length; step++) {
        const { micro, counts } = pretrainStep(config, data, step);
        const subtrees = trees[step]!;
        const want = compute.gradients(ref, 'pretrain', micro, subtrees, counts);
        // Independently: each micro-batch's gradient, then treeSum per subtree.
        const batch = sourceOf(data.datasets, 'pretrain');
        const leaves = new Map(micro.map((m) => [m.index, microBatchGradient(bert, ref.layout, ref.paramTensors(), batch.batch(m.examples), counts, m.dropoutSeed).grad]));
        want.partials.forEach((p, k) => expect(bytes(p.grad).equals(bytes(treeSum(subtrees[k]!, (i) => leaves.get(i)!))), `in-place sum of subtree ${k}`).toBe(true));
        // In the thread, each subtree's sum is handed over the moment it is complete.
        const streamed: ReadyPartial[] = [];
        const got = await host.gradients({ dataset: 'pretrain', micro, subtrees, counts }, (p) => streamed.push(p));
        expect(got.partials).toEqual([]);
        expect(streamed.map((p) => p.range)).toEqual(subtrees);
        streamed.forEach((p, k) => {
          expect(bytes(p.grad).equals(bytes(want.partials[k]!.grad)), `step ${step} subtree ${k}`).toBe(true);
          expect(p.stats.map((x) => x.index)).toEqual(Array.from({ length: p.range.hi - p.range.lo }, (_, i) => p.range.lo + i));
          expect(p.computeMs).toBeGreaterThan(0);
        });
        expect(got.stats).toEqual(want.stats);
        expect(got.computeMs).toBeGreaterThan(0);

        const reduced = combine(want.partials.map((p) => p.grad));
        const applied = await host.apply(reduced.slice(), step, { checksum: step === trees.length - 1 });
        const r = ref.applyGradient(reduced, step, update);
        expect(bytes(applied.grad).equals(bytes(reduced)), 'the clipped gradient handed back').toBe(true);
        expect({ gradNorm: applied.gradNorm, lr: applied.lr }).toEqual({ gradNorm: r.gradNorm, lr: r.lr });
        expect(applied.checksum).toBe(step === trees.length - 1 ? ref.checksum() : null);
      }
      expect(await host.checksum()).toBe(ref.checksum());

      const heldOut = sourceOf(data.datasets, 'pretrain-heldout');
      const chunks = [{ index: 0, examples: [0, 1, 2] }, { index: 1, examples: [3, Math.min(4, heldOut.size - 1)] }];
      const evals = await host.evaluate({ dataset: 'pretrain-heldout', chunks });
      expect(evals.map((e) => e.index)).toEqual([0, 1]);
      evals.forEach((e, k) => {
        const want = compute.evaluate(ref, 'pretrain-heldout', chunks[k]!.examples);
        expect(e.stats).toEqual(want.stats);
        expect(bytes(e.predictions).equals(bytes(want.predictions))).toBe(true);
      });
      await host.drop();
      await expect(host.checksum()).rejects.toThrow(ProtocolError);
      ref.releaseTensors();
    } finally {
      await host.close();
    }
  });

  it('keeps the main event loop running while a slow gradient computes, then ends on close()', async () => {
    const host = await ComputeHost.start({ ...hostOptions, delayMsPerMicroBatch: 100 });
    try {
      const specs = phaseSpecs(bert, 'pretrain', data.datasets.labels.length);
      const init = Replica.fromValues(specs, initParams(bert, specs, config.seed));
      await host.load({ phase: 'pretrain', step: 0, params: init.params, m: init.opt.m, v: init.opt.v });
      const micro = Array.from({ length: 8 }, (_, j) => ({ index: j, examples: [j], dropoutSeed: j }));
      let ticks = 0;
      const timer = setInterval(() => ticks++, 10);
      let ticksWhenDone = -1;
      try {
        await host.gradients({ dataset: 'pretrain', micro, subtrees: [{ lo: 0, hi: 8 }], counts: { sequences: 8, maskedTokens: 8 } }).then(() => {
          ticksWhenDone = ticks;
        });
      } finally {
        clearInterval(timer);
      }
      expect(ticksWhenDone).toBeGreaterThan(5);

      const pending = host.gradients({ dataset: 'pretrain', micro, subtrees: [{ lo: 0, hi: 8 }], counts: { sequences: 8 } });
      await host.close();
      await expect(pending).rejects.toThrow(BackendError);
      await expect(host.checksum()).rejects.toThrow(/compute thread closed/);
      await host.close();
    } finally {
      await host.close();
    }
  });

  it('rejects start() with the thread\'s error when the model cannot be loaded', async () => {
    const missing = join(work, 'missing-config.json');
    const started = ComputeHost.start({ ...hostOptions, config: parseRunConfig({ ...config, model: missing }) });
    await expect(started).rejects.toBeInstanceOf(InputError);
    await expect(started).rejects.toThrow(`--model ${missing} is neither a preset`);
  });

  it('returns errors thrown in the thread as the same classes, with their fields', async () => {
    const host = await ComputeHost.start(hostOptions);
    try {
      const noReplica = host.evaluate({ dataset: 'classify-test', chunks: [{ index: 0, examples: [0] }] });
      await expect(noReplica).rejects.toThrow(ProtocolError);
      await expect(noReplica).rejects.toThrow(/expected a loaded replica, got none/);

      const n = new FlatLayout(phaseSpecs(bert, 'pretrain', data.datasets.labels.length)).total;
      const short = host.load({ phase: 'pretrain', step: 0, params: new Float32Array(n - 1), m: new Float32Array(n), v: new Float32Array(n) });
      await expect(short).rejects.toBeInstanceOf(ShapeError);
      const shape = (await short.catch((e: unknown) => e)) as ShapeError;
      expect({ what: shape.what, expected: shape.expected, got: shape.got }).toEqual({ what: 'parameters', expected: `${n} float32 values`, got: `${n - 1}` });

      await host.load({ phase: 'pretrain', step: 2, params: new Float32Array(n), m: new Float32Array(n), v: new Float32Array(n) });
      await expect(host.apply(new Float32Array(n), 0, { checksum: false })).rejects.toThrow(/expected the gradient of pretrain step 2, got step 0/);

      // Not a bertfleet class (a RangeError in WorkerCompute): a BertfleetError that names it.
      const uncovered = host.gradients({ dataset: 'pretrain', micro: [{ index: 0, examples: [0], dropoutSeed: 1 }], subtrees: [{ lo: 0, hi: 2 }], counts: { sequences: 2 } });
      await expect(uncovered).rejects.toBeInstanceOf(BertfleetError);
      await expect(uncovered).rejects.toThrow(/RangeError: subtree \[0, 2\) needs micro-batch 1/);
      expect(await host.checksum()).toMatch(/^[0-9a-f]{64}$/);
    } finally {
      await host.close();
    }
  });
});

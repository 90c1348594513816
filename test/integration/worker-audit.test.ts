/**
 * The gradient audit in a worker's compute thread (ComputeHost.audit), on the
 * pipeline fixtures and wasm-blas: the digest of a micro-batch computed alone
 * is that of the same micro-batch's gradient computed in-process, computing it
 * changes nothing the step then computes, and the test hook `audit-flip`
 * (BERTFLEET_TEST_FAULT_INJECT) makes the digest differ in the last tensor.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../shared/backend/select.js';
import { runFingerprints } from '../../shared/cluster/fingerprints.js';
import { compareDigests, gradientDigest } from '../../shared/cluster/gradient-digest.js';
import { encodeStats } from '../../shared/cluster/stats-json.js';
import { parseRunConfig, type RunConfig } from '../../shared/config/run-config.js';
import type { RunData } from '../../shared/data/run-data.js';
import { silentLogger } from '../../shared/log.js';
import type { BertConfig } from '../../shared/model/config.js';
import { prepareRun } from '../../shared/run-setup.js';
import { maskedTokenCount, sourceOf, type PretrainArrays } from '../../shared/training/batches.js';
import { DataPlan, dropoutSeed } from '../../shared/training/data-plan.js';
import { microBatchGradient } from '../../shared/training/gradients.js';
import { initParams } from '../../shared/training/init.js';
import { phaseSpecs } from '../../shared/training/phase-settings.js';
import { Replica } from '../../shared/training/replica.js';
import { ComputeHost } from '../../worker/compute-host.js';
import type { ReadyPartial } from '../../worker/compute.js';
import { PIPELINE_FIXTURES } from '../helpers/pipeline.js';

const work = mkdtempSync(join(tmpdir(), 'bertfleet-worker-audit-'));
const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

function fixtureConfig(): RunConfig {
  const run = JSON.parse(readFileSync(join(PIPELINE_FIXTURES, 'run.json'), 'utf8')) as { data: Record<string, unknown> };
  return parseRunConfig({
    ...run, seed: 7, backend: 'wasm-blas', model: join(PIPELINE_FIXTURES, 'micro-bert.json'),
    data: { ...run.data, corpus: [join(PIPELINE_FIXTURES, 'corpus.txt')], classification: join(PIPELINE_FIXTURES, 'sentiment.csv'), cacheDir: join(work, 'cache') },
  });
}

describe('ComputeHost.audit', () => {
  const config = fixtureConfig();
  const options = { config, backend: { name: 'wasm-blas' as const, blasThreads: 1 }, logLevel: 'silent', logBindings: { workerId: 'test' } };
  let bert: BertConfig;
  let data: RunData;
  let fingerprint: string;

  beforeAll(async () => {
    const backend = await initBackend({ name: 'wasm-blas', blasThreads: 1 });
    ({ bert, data } = await prepareRun(config, silentLogger(), false));
    fingerprint = runFingerprints(bert, data, backend).backend_fingerprint;
  });

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('digests a micro-batch as computed in-process, changes nothing the step computes, and the fault hook flips the last tensor', async () => {
    const specs = phaseSpecs(bert, 'pretrain', data.datasets.labels.length);
    const ref = Replica.fromValues(specs, initParams(bert, specs, config.seed));
    const source = sourceOf(data.datasets, 'pretrain');
    const p = config.pretrain;
    const plan = new DataPlan({ stream: 'pretrain', seed: config.seed, numExamples: source.size, globalBatch: p.globalBatch, microBatch: p.microBatch });
    const micro = Array.from({ length: plan.microPerStep }, (_, j) => ({ index: j, examples: plan.examples(0, j), dropoutSeed: dropoutSeed(config.seed, 'pretrain', 0, j) }));
    const counts = { sequences: p.globalBatch, maskedTokens: maskedTokenCount(source.batch(micro.flatMap((m) => m.examples)) as PretrainArrays) };
    const leaf = microBatchGradient(bert, ref.layout, ref.paramTensors(), source.batch(micro[1]!.examples), counts, micro[1]!.dropoutSeed);
    const want = gradientDigest(leaf.grad, ref.layout, encodeStats(leaf.stats));

    const [host, faulty] = await Promise.all([ComputeHost.start(options), ComputeHost.start({ ...options, faultInject: 'audit-flip' })]);
    try {
      for (const h of [host, faulty]) await h.load({ phase: 'pretrain', step: 0, params: ref.params.slice(), m: ref.opt.m.slice(), v: ref.opt.v.slice() });
      const got = await host.audit({ dataset: 'pretrain', micro: micro[1]!, counts });
      expect(got).toEqual({ ...want, index: 1, fingerprint });
      expect(compareDigests(got, want)).toBeNull();

      // The step's partials after an audit are those of a host that never audited.
      const partials: ReadyPartial[] = [];
      await host.gradients({ dataset: 'pretrain', micro, subtrees: [{ lo: 0, hi: 3 }], counts }, (x) => partials.push(x));
      const plain: ReadyPartial[] = [];
      await faulty.gradients({ dataset: 'pretrain', micro, subtrees: [{ lo: 0, hi: 3 }], counts }, (x) => plain.push(x));
      expect(bytes(partials[0]!.grad).equals(bytes(plain[0]!.grad))).toBe(true);

      const flipped = await faulty.audit({ dataset: 'pretrain', micro: micro[1]!, counts });
      expect(compareDigests(want, flipped)?.tensor).toBe(specs[specs.length - 1]!.name);
    } finally {
      await Promise.all([host.close(), faulty.close()]);
      ref.releaseTensors();
    }
  });
});

/**
 * What --resume compares: only the settings the user gave, key by key against
 * the saved config; the keys of RESUME_MAY_CHANGE take the given value, every
 * other difference is refused with saved and given values.
 */
import { describe, expect, it } from 'vitest';
import {
  compareForResume, describeDifference, leaves, RESUME_CHANGES_BITS, RESUME_MAY_CHANGE, resumedConfigInput,
} from '../../shared/config/resume-policy.js';
import { parseRunConfig } from '../../shared/config/run-config.js';

const saved = parseRunConfig({ seed: 7, pretrain: { steps: 6 }, finetune: { steps: 6 }, checkpoint: { everySteps: 2 } });

function compare(given: Record<string, unknown>) {
  return compareForResume(saved, given, parseRunConfig(given));
}

describe('compareForResume', () => {
  it('accepts nothing given, and given values equal to the saved ones', () => {
    expect(compare({})).toEqual({ refused: [], changed: [] });
    expect(compare({ seed: 7, finetune: { steps: 6, globalBatch: undefined } })).toEqual({ refused: [], changed: [] });
  });

  it('ignores defaults of keys not given: a saved non-default stays', () => {
    // steps 6 saved, default 300 never given: no difference.
    expect(compare({ logEverySteps: 10 }).refused).toEqual([]);
  });

  it('refuses a changed seed and finetune steps, naming saved and given values', () => {
    const { refused, changed } = compare({ seed: 99, finetune: { steps: 400 } });
    expect(changed).toEqual([]);
    expect(refused).toEqual([
      { key: 'seed', saved: 7, given: 99 },
      { key: 'finetune.steps', saved: 6, given: 400 },
    ]);
    expect(refused.map(describeDifference)).toEqual(['seed: saved 7, given 99', 'finetune.steps: saved 6, given 400']);
  });

  it('refuses changes to data, model, initFrom, optimizer and a longer pretraining', () => {
    const { refused } = compare({
      model: 'mini', initFrom: '/ckpt', data: { corpus: ['a.txt'], maxSeqLength: 128 }, optimizer: { clipNorm: 5 }, pretrain: { steps: 12 },
    });
    expect(refused.map((d) => d.key).sort()).toEqual(['data.corpus', 'data.maxSeqLength', 'initFrom', 'model', 'optimizer.clipNorm', 'pretrain.steps']);
    expect(refused.find((d) => d.key === 'data.corpus')).toEqual({ key: 'data.corpus', saved: 'embedded', given: ['a.txt'] });
  });

  it('lets checkpoint, logging, backend and cluster settings change, and uses the given values', () => {
    const given = { backend: 'cpu', checkpoint: { everySteps: 3, keep: 4 }, logEverySteps: 1, cluster: { chunkBytes: 8192, heartbeatTimeoutMs: 9000 } };
    const { refused, changed } = compare(given);
    expect(refused).toEqual([]);
    expect(changed.map((d) => d.key).sort()).toEqual(['backend', 'checkpoint.everySteps', 'checkpoint.keep', 'cluster.chunkBytes', 'cluster.heartbeatTimeoutMs', 'logEverySteps']);
    const resumed = parseRunConfig(resumedConfigInput(saved, changed));
    expect(resumed).toMatchObject({ backend: 'cpu', checkpoint: { everySteps: 3, keep: 4 }, logEverySteps: 1, seed: 7, finetune: { steps: 6 } });
    expect(resumed.cluster).toEqual({ ...saved.cluster, chunkBytes: 8192, heartbeatTimeoutMs: 9000 });
    // The saved config itself is not touched.
    expect(saved.checkpoint.everySteps).toBe(2);
  });

  it('lists only keys that exist in the run config', () => {
    const all = [...leaves(parseRunConfig({}) as unknown as Record<string, unknown>).keys()];
    for (const key of [...RESUME_MAY_CHANGE, ...RESUME_CHANGES_BITS]) expect(all, key).toContain(key);
    for (const key of RESUME_CHANGES_BITS) expect(RESUME_MAY_CHANGE).toContain(key);
  });

  it('compares every setting that decides the bits (none of them may change)', () => {
    const all = [...leaves(parseRunConfig({}) as unknown as Record<string, unknown>).keys()];
    const compared = all.filter((k) => !RESUME_MAY_CHANGE.includes(k));
    for (const k of ['seed', 'model', 'initFrom', 'data.corpus', 'data.vocab', 'data.maskedLmProb', 'pretrain.steps', 'pretrain.peakLr', 'finetune.steps', 'finetune.globalBatch', 'optimizer.beta2']) {
      expect(compared, k).toContain(k);
    }
  });
});

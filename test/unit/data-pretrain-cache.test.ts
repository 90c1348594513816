/**
 * The binary sharded cache: build, reopen without tokenizing, byte-identical
 * from the same seed, atomic (a stray tmp file or a missing manifest is never
 * taken for a cache), held-out parts disjoint. Small inputs: the first 40 Brown
 * documents plus a fixture corpus file.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../../shared/errors.js';
import type { CorpusSource } from '../../shared/data/corpora.js';
import { locatePretrainCache, prepareOrOpenPretrainCache } from '../../shared/data/pretrain-cache.js';
import { openPretrainCache, openPretrainCacheByKey } from '../../shared/data/pretrain-dataset.js';
import { selectHeldOutPart } from '../../shared/data/held-out.js';
import { loadDefaultVocab } from '../../shared/data/vocab.js';
import { fixture, recordingLogger, removeTempDirs, tempDir } from '../fixtures/data/helpers.js';

const vocab = loadDefaultVocab();
const sources: CorpusSource[] = [
  { kind: 'embedded', name: 'brown', maxDocuments: 40 },
  { kind: 'file', path: fixture('corpus-small.txt') },
];
const settings = { dupe_factor: 2, max_seq_length: 64, max_predictions_per_seq: 10 };

async function build(cacheDir: string, extra: Record<string, unknown> = {}) {
  const { log, lines } = recordingLogger();
  const ds = await prepareOrOpenPretrainCache({ sources, vocab, settings: { ...settings, ...extra }, cacheDir, log, progress: false, examplesPerShard: 500 });
  return { ds, lines };
}

function shardHashes(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.bin'))
    .sort()
    .map((f) => createHash('sha256').update(readFileSync(join(dir, f))).digest('hex'));
}

afterAll(removeTempDirs);

describe('pretraining cache', () => {
  const root = tempDir('pretrain-cache');

  it('builds shards and a manifest, logging counts', async () => {
    const { ds, lines } = await build(root);
    expect(ds.dir).toMatch(/pretrain-[0-9a-f]{20}$/);
    expect(ds.seqLength).toBe(64);
    expect(ds.maxPredictions).toBe(10);
    expect(ds.size).toBeGreaterThan(1000);
    expect(ds.manifest.shards.length).toBe(Math.ceil(ds.size / 500));
    expect(ds.manifest.record.intsPerRecord).toBe(3 * 64 + 3 * 10 + 1);
    expect(ds.manifest.counts.documents).toBe(44);
    const built = lines.find((l) => l.msg === 'pretraining cache built');
    expect(built).toMatchObject({ documents: 44, examples: ds.size });
    expect(built!['unkRate']).toBeLessThan(0.001);
    expect(lines.filter((l) => l.msg === 'corpus read')).toHaveLength(2);
  });

  it('gathers padded fixed-size arrays in the order asked', async () => {
    const ds = openPretrainCache((await build(root)).ds.dir);
    const b = ds.gather([5, 0, ds.size - 1]);
    expect(b.inputIds.length).toBe(3 * 64);
    expect(b.maskedLmWeights).toBeInstanceOf(Float32Array);
    const single = ds.gather([0]);
    expect(Array.from(b.inputIds.subarray(64, 128))).toEqual(Array.from(single.inputIds));
    for (let row = 0; row < 3; row++) {
      const ids = b.inputIds.subarray(row * 64, (row + 1) * 64);
      const maskRow = b.inputMask.subarray(row * 64, (row + 1) * 64);
      const seg = b.segmentIds.subarray(row * 64, (row + 1) * 64);
      const len = maskRow.reduce((s, x) => s + x, 0);
      expect(ids[0]).toBe(101);
      expect(ids[len - 1]).toBe(102);
      expect(Array.from(ids.subarray(len)).every((x) => x === 0)).toBe(true);
      const firstB = seg.indexOf(1);
      expect(ids[firstB - 1]).toBe(102); // [SEP] closes A
      expect(Array.from(seg.subarray(firstB, len)).every((x) => x === 1)).toBe(true);
      expect(Array.from(seg.subarray(len)).every((x) => x === 0)).toBe(true);
      const weights = b.maskedLmWeights.subarray(row * 10, (row + 1) * 10);
      const n = weights.reduce((s, x) => s + x, 0);
      const positions = b.maskedLmPositions.subarray(row * 10, (row + 1) * 10);
      expect(Array.from(positions.subarray(n)).every((x) => x === 0)).toBe(true);
      expect(Array.from(b.maskedLmIds.subarray(row * 10 + n, (row + 1) * 10)).every((x) => x === 0)).toBe(true);
      expect([0, 1]).toContain(b.nextSentenceLabels[row]);
    }
    expect(() => ds.gather([ds.size])).toThrow(RangeError);
    ds.close();
  });

  it('reopens by key without reading or tokenizing the corpus again', async () => {
    const first = await build(root);
    const again = await build(root);
    expect(again.lines.some((l) => l.msg === 'corpus read')).toBe(false);
    expect(again.lines.some((l) => l.msg === 'pretraining cache opened')).toBe(true);
    expect(again.ds.gather([0, 7, 42])).toEqual(first.ds.gather([0, 7, 42]));
    expect(openPretrainCacheByKey(root, first.ds.key).gather([3])).toEqual(first.ds.gather([3]));
  });

  it('writes the same bytes from the same seed, other bytes from another seed', async () => {
    const a = await build(root);
    const b = await build(tempDir('pretrain-cache-b'));
    expect(shardHashes(b.ds.dir)).toEqual(shardHashes(a.ds.dir));
    const c = await build(root, { seed: 777 });
    expect(c.ds.key).not.toBe(a.ds.key);
    expect(shardHashes(c.ds.dir)).not.toEqual(shardHashes(a.ds.dir));
  });

  it('ignores a leftover tmp file and never takes a directory without a manifest for a cache', async () => {
    const dir = tempDir('pretrain-atomic');
    const { dir: cacheDir } = locatePretrainCache({ sources, vocab, settings, cacheDir: dir });
    const first = await build(dir);
    expect(first.ds.dir).toBe(cacheDir);
    writeFileSync(join(cacheDir, 'shard-00000.bin.tmp-999-deadbeef'), 'partial');
    expect(openPretrainCache(cacheDir).size).toBe(first.ds.size);
    rmSync(join(cacheDir, 'manifest.json'));
    expect(() => openPretrainCache(cacheDir)).toThrow(/manifest\.json is missing/);
    const rebuilt = await build(dir);
    expect(rebuilt.lines.some((l) => l.msg === 'pretraining cache built')).toBe(true);
    expect(shardHashes(cacheDir)).toEqual(shardHashes(first.ds.dir));
  });

  it('rejects a damaged shard and rebuilds it', async () => {
    const dir = tempDir('pretrain-damaged');
    const first = await build(dir);
    truncateSync(join(first.ds.dir, 'shard-00000.bin'), 100);
    expect(() => openPretrainCache(first.ds.dir)).toThrow(InputError);
    expect(() => openPretrainCache(first.ds.dir)).toThrow(/shard-00000\.bin has 100 bytes, expected/);
    const again = await build(dir);
    expect(again.lines.some((l) => l.msg === 'pretraining cache unusable, rebuilding')).toBe(true);
    expect(openPretrainCache(again.ds.dir).size).toBe(first.ds.size);
  });

  it('partitions documents into complementary held-out and training parts', () => {
    const docs = Array.from({ length: 50 }, (_, i) => i);
    const held = selectHeldOutPart(docs, { fraction: 0.1, part: 'heldout' }, 12345);
    const train = selectHeldOutPart(docs, { fraction: 0.1, part: 'train' }, 12345);
    expect(held).toHaveLength(5);
    expect([...held, ...train].sort((a, b) => a - b)).toEqual(docs);
    expect(selectHeldOutPart(docs, { fraction: 0.1, part: 'heldout' }, 12345)).toEqual(held);
    expect(() => selectHeldOutPart([1, 2, 3], { fraction: 0.1, part: 'train' }, 1)).toThrow(/cannot give 2 held-out documents/);
  });

  it('keeps held-out documents out of the training part', async () => {
    const dir = tempDir('pretrain-heldout');
    const train = await build(dir, { held_out: { fraction: 0.2, part: 'train' } });
    const held = await build(dir, { held_out: { fraction: 0.2, part: 'heldout' }, dupe_factor: 1 });
    expect(train.ds.key).not.toBe(held.ds.key);
    expect(held.ds.manifest.counts.documents).toBe(Math.round(44 * 0.2));
    expect(train.ds.manifest.counts.documents).toBe(44 - Math.round(44 * 0.2));
    // A sentence-level check: the unmasked 5-grams of A segments never coincide.
    const grams = (ds: typeof train.ds) => {
      const out = new Set<string>();
      const n = Math.min(ds.size, 400);
      const b = ds.gather(Array.from({ length: n }, (_, i) => i));
      for (let r = 0; r < n; r++) {
        const ids = Array.from(b.inputIds.subarray(r * 64, (r + 1) * 64));
        for (let i = 1; i + 5 < ids.length && b.segmentIds[r * 64 + i + 5] === 0; i++) {
          const g = ids.slice(i, i + 5);
          if (!g.some((x) => x === 103 || x === 0 || x === 102)) out.add(g.join(','));
        }
      }
      return out;
    };
    const heldGrams = grams(held.ds);
    const shared = [...grams(train.ds)].filter((g) => heldGrams.has(g));
    expect(shared.length).toBeLessThan(heldGrams.size * 0.02);
  });
});

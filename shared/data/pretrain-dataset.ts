/**
 * Reading a prepared pretraining cache: `openPretrainCache(dir)` checks the
 * manifest and the shards (sizes always, sha256 unless told not to) and
 * returns a dataset whose `gather(indices)` reads those examples, in that
 * order, with positional reads, so every worker can open the same directory
 * without tokenizing again and without holding it all in memory.
 * Knows nothing of how the cache was made.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { MANIFEST_FILE, parseManifest, pretrainCacheDirName, type Manifest } from './pretrain-manifest.js';
import { emptyBatch, readRecordInto, type PretrainBatch } from './pretrain-record.js';

export interface PretrainDataset {
  readonly dir: string;
  readonly key: string;
  readonly manifest: Manifest;
  /** Number of examples. */
  readonly size: number;
  readonly seqLength: number;
  readonly maxPredictions: number;
  /** The examples at `indices` (0 <= i < size), in that order. */
  gather(indices: readonly number[]): PretrainBatch;
  /** Closes the shard files; gather reopens them if called again. */
  close(): void;
}

export interface OpenOptions {
  /** 'sha256' (default) hashes every shard; 'size' only checks lengths. */
  verify?: 'sha256' | 'size';
}

const BIG_ENDIAN_HOST = endianness() === 'BE';

export function openPretrainCache(dir: string, options: OpenOptions = {}): PretrainDataset {
  const manifestPath = join(dir, MANIFEST_FILE);
  if (!existsSync(manifestPath)) {
    throw new InputError(`${dir} is not a pretraining cache: ${MANIFEST_FILE} is missing (never finished, or not prepared yet)`);
  }
  const manifest = parseManifest(readFileSync(manifestPath, 'utf8'), manifestPath);
  for (const shard of manifest.shards) verifyShard(dir, shard, options.verify ?? 'sha256');

  const { seqLength, maxPredictions, intsPerRecord } = manifest.record;
  const recordBytes = intsPerRecord * 4;
  const scratch = Buffer.alloc(recordBytes);
  const record = new Int32Array(scratch.buffer, scratch.byteOffset, intsPerRecord);
  const starts = manifest.shards.map((s) => s.first);
  const fds: Array<number | undefined> = manifest.shards.map(() => undefined);
  const size = manifest.counts.examples;

  const shardOf = (index: number): number => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= index) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };

  return {
    dir,
    key: manifest.key,
    manifest,
    size,
    seqLength,
    maxPredictions,
    gather(indices) {
      const batch = emptyBatch(indices.length, { seqLength, maxPredictions });
      indices.forEach((index, row) => {
        if (!Number.isInteger(index) || index < 0 || index >= size) {
          throw new RangeError(`gather: example index ${index} is outside [0, ${size})`);
        }
        const s = shardOf(index);
        const fd = (fds[s] ??= openSync(join(dir, manifest.shards[s]!.file), 'r'));
        const position = (index - starts[s]!) * recordBytes;
        const got = readSync(fd, scratch, 0, recordBytes, position);
        if (got !== recordBytes) throw new InputError(`${manifest.shards[s]!.file}: short read at example ${index}`);
        if (BIG_ENDIAN_HOST) scratch.swap32();
        readRecordInto(record, batch, row);
      });
      return batch;
    },
    close() {
      fds.forEach((fd, s) => {
        if (fd !== undefined) closeSync(fd);
        fds[s] = undefined;
      });
    },
  };
}

/** Opens `<cacheDir>/pretrain-<key prefix>/` and checks that its manifest carries exactly `key`. */
export function openPretrainCacheByKey(cacheDir: string, key: string, options: OpenOptions = {}): PretrainDataset {
  const dataset = openPretrainCache(join(cacheDir, pretrainCacheDirName(key)), options);
  if (dataset.key !== key) {
    throw new InputError(`pretraining cache ${dataset.dir}: manifest key is ${dataset.key}, expected ${key}`);
  }
  return dataset;
}

function verifyShard(dir: string, shard: Manifest['shards'][number], verify: 'sha256' | 'size'): void {
  const path = join(dir, shard.file);
  const stat = statSync(path, { throwIfNoEntry: false });
  if (!stat) throw new InputError(`pretraining cache ${dir}: shard ${shard.file} listed in the manifest is missing`);
  if (stat.size !== shard.bytes) {
    throw new InputError(`pretraining cache ${dir}: shard ${shard.file} has ${stat.size} bytes, expected ${shard.bytes}`);
  }
  if (verify === 'sha256') {
    const sha = createHash('sha256').update(readFileSync(path)).digest('hex');
    if (sha !== shard.sha256) {
      throw new InputError(`pretraining cache ${dir}: shard ${shard.file} has sha256 ${sha}, expected ${shard.sha256}`);
    }
  }
}

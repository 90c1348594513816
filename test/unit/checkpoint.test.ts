/**
 * Hugging Face checkpoint directories: round trip, legacy and prefix-less names,
 * and every malformed file refused with a message naming what is wrong.
 */
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadHfCheckpoint, saveHfCheckpoint, selectParams } from '../../shared/checkpoint/hf-checkpoint.js';
import { parseSafetensors, serializeSafetensors } from '../../shared/checkpoint/safetensors.js';
import { CheckpointError } from '../../shared/errors.js';
import { paramSpecs } from '../../shared/model/params.js';

const fixture = join(import.meta.dirname, '../fixtures/bert-parity');

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'bertfleet-ckpt-'));
}

/** A checkpoint dir with the fixture's config and the given safetensors bytes. */
function dirWith(bytes: Uint8Array, config?: Record<string, unknown>): string {
  const dir = tmp();
  if (config) writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  else copyFileSync(join(fixture, 'config.json'), join(dir, 'config.json'));
  writeFileSync(join(dir, 'model.safetensors'), bytes);
  return dir;
}

/** Rewrites the fixture's tensors with renamed keys. */
function renamed(rename: (n: string) => string): Uint8Array {
  const { tensors } = parseSafetensors(readFileSync(join(fixture, 'model.safetensors')), 'fixture');
  return serializeSafetensors([...tensors].map(([n, t]) => [rename(n), t]));
}

function rawFile(header: Record<string, unknown>, dataBytes: number): Uint8Array {
  const json = Buffer.from(JSON.stringify(header));
  const out = Buffer.alloc(8 + json.length + dataBytes);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  return out;
}

describe('Hugging Face checkpoints', () => {
  it('saves and reloads byte for byte, atomically', () => {
    const ckpt = loadHfCheckpoint(fixture);
    const specs = paramSpecs(ckpt.config, { heads: 'pretraining' });
    const values = selectParams(ckpt, specs);
    const out = tmp();
    saveHfCheckpoint(out, { config: ckpt.config, specs, values });
    expect(readdirSync(out).sort()).toEqual(['config.json', 'model.safetensors']);
    const again = selectParams(loadHfCheckpoint(out), specs);
    for (const s of specs) expect(Buffer.from(again.get(s.name)!.buffer).equals(Buffer.from(values.get(s.name)!.buffer)), s.name).toBe(true);
  });

  it('stores the label map of a classifier in config.json', () => {
    const ckpt = loadHfCheckpoint(fixture);
    const specs = paramSpecs(ckpt.config, { heads: 'classification', numLabels: 2 });
    const values = new Map(selectParams(ckpt, specs, { optionalPrefixes: ['classifier.'], dropPrefixes: ['cls.'] }));
    values.set('classifier.weight', new Float32Array(2 * 32));
    values.set('classifier.bias', new Float32Array(2));
    const out = tmp();
    saveHfCheckpoint(out, { config: ckpt.config, specs, values, labels: ['negative', 'positive'] });
    const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(cfg.architectures).toEqual(['BertForSequenceClassification']);
    expect(cfg.id2label).toEqual({ 0: 'negative', 1: 'positive' });
    expect(loadHfCheckpoint(out).labels).toEqual(['negative', 'positive']);
  });

  it('loads legacy LayerNorm.gamma/beta names', () => {
    const dir = dirWith(renamed((n) => n.replace(/LayerNorm\.weight$/, 'LayerNorm.gamma').replace(/LayerNorm\.bias$/, 'LayerNorm.beta')));
    const ckpt = loadHfCheckpoint(dir);
    expect(ckpt.tensors.has('bert.embeddings.LayerNorm.weight')).toBe(true);
    expect(() => selectParams(ckpt, paramSpecs(ckpt.config, { heads: 'pretraining' }))).not.toThrow();
  });

  it('loads a checkpoint saved without the bert. prefix', () => {
    const dir = dirWith(renamed((n) => n.replace(/^bert\./, '')));
    const ckpt = loadHfCheckpoint(dir);
    expect(ckpt.tensors.has('bert.encoder.layer.0.attention.self.query.weight')).toBe(true);
  });

  it('names a tensor whose shape does not fit the config, expected vs got', () => {
    const ckpt = loadHfCheckpoint(dirWith(renamed((n) => n), { ...JSON.parse(readFileSync(join(fixture, 'config.json'), 'utf8')), intermediate_size: 48 }));
    expect(() => selectParams(ckpt, paramSpecs(ckpt.config, { heads: 'pretraining' }))).toThrow(
      /bert\.encoder\.layer\.0\.intermediate\.dense\.weight has shape \[64,32\], expected \[48,32\]/,
    );
  });

  it('names a tensor that is not a parameter of the config', () => {
    const ckpt = loadHfCheckpoint(dirWith(renamed((n) => (n === 'bert.pooler.dense.bias' ? 'bert.pooler.extra.bias' : n))));
    const err = () => selectParams(ckpt, paramSpecs(ckpt.config, { heads: 'pretraining' }));
    expect(err).toThrow(/bert\.pooler\.extra\.bias is not a parameter/);
    expect(err).toThrow(/bert\.pooler\.dense\.bias is missing/);
  });

  it('refuses a truncated file', () => {
    const bytes = readFileSync(join(fixture, 'model.safetensors'));
    expect(() => loadHfCheckpoint(dirWith(bytes.subarray(0, bytes.length - 100)))).toThrow(/truncated/);
    expect(() => loadHfCheckpoint(dirWith(bytes.subarray(0, 5)))).toThrow(/truncated/);
  });

  it('refuses a header whose length runs past the end', () => {
    const bytes = Buffer.from(readFileSync(join(fixture, 'model.safetensors')));
    bytes.writeBigUInt64LE(BigInt(bytes.length), 0);
    expect(() => parseSafetensors(bytes, 'x')).toThrow(/header length .* runs past the end/);
  });

  it('refuses overlapping offsets', () => {
    const file = rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12);
    expect(() => parseSafetensors(file, 'x')).toThrow(CheckpointError);
    expect(() => parseSafetensors(file, 'x')).toThrow(/b \(bytes 4\.\.12\) overlaps a/);
  });

  it('refuses offsets past the end of the data', () => {
    const file = rawFile({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 8);
    expect(() => parseSafetensors(file, 'x')).toThrow(/ends at byte 16 .* has 8 bytes/);
  });

  it('refuses an unsupported dtype, naming it', () => {
    const file = rawFile({ a: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, 8);
    expect(() => parseSafetensors(file, 'x')).toThrow(/tensor a has dtype I64, expected one of F32, F16, BF16/);
  });

  it('widens F16 and BF16 to float32', () => {
    const f16 = rawFile({ h: { dtype: 'F16', shape: [2], data_offsets: [0, 4] }, b: { dtype: 'BF16', shape: [1], data_offsets: [4, 6] } }, 6);
    const buf = Buffer.from(f16);
    const start = 8 + Number(buf.readBigUInt64LE(0));
    buf.writeUInt16LE(0x3c00, start); // 1.0
    buf.writeUInt16LE(0xc000, start + 2); // -2.0
    buf.writeUInt16LE(0x4040, start + 4); // bf16 3.0
    const { tensors } = parseSafetensors(buf, 'x');
    expect([...tensors.get('h')!.data]).toEqual([1, -2]);
    expect([...tensors.get('b')!.data]).toEqual([3]);
  });

  it('says which file is missing', () => {
    const dir = tmp();
    copyFileSync(join(fixture, 'config.json'), join(dir, 'config.json'));
    expect(() => loadHfCheckpoint(dir)).toThrow(/has no model\.safetensors/);
    expect(() => loadHfCheckpoint(join(dir, 'nope'))).toThrow(/does not exist/);
    expect(existsSync(join(dir, 'model.safetensors'))).toBe(false);
  });

  it('refuses an invalid config, naming the field', () => {
    const dir = dirWith(readFileSync(join(fixture, 'model.safetensors')), {
      ...JSON.parse(readFileSync(join(fixture, 'config.json'), 'utf8')), num_attention_heads: 5,
    });
    expect(() => loadHfCheckpoint(dir)).toThrow(/hidden_size \(32\) is not a multiple of num_attention_heads \(5\)/);
  });
});

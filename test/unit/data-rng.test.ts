import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/errors.js';
import { Rng } from '../../shared/data/rng.js';

describe('Rng (xoshiro128**)', () => {
  it('is deterministic per seed and differs between seeds and streams', () => {
    const draw = (r: Rng) => Array.from({ length: 8 }, () => r.nextUint32());
    expect(draw(new Rng(12345))).toEqual(draw(new Rng(12345)));
    expect(draw(new Rng(12345))).not.toEqual(draw(new Rng(12346)));
    expect(draw(new Rng(12345, 1))).not.toEqual(draw(new Rng(12345, 0)));
  });

  it('resumes from a serialised state', () => {
    const a = new Rng(7);
    for (let i = 0; i < 100; i++) a.nextUint32();
    const b = Rng.fromState(a.getState());
    expect(Array.from({ length: 5 }, () => b.random())).toEqual(Array.from({ length: 5 }, () => a.random()));
    expect(() => Rng.fromState('zz')).toThrow(ConfigError);
  });

  it('draws random() in [0, 1) and randint inclusive at both ends, uniformly', () => {
    const r = new Rng(1);
    const counts = new Array(6).fill(0);
    const n = 60000;
    let outside = 0;
    for (let i = 0; i < n; i++) {
      const x = r.random();
      if (!(x >= 0 && x < 1)) outside++;
      counts[r.randint(1, 6) - 1]++;
    }
    expect(outside).toBe(0);
    // chi-square, 5 degrees of freedom: 20.5 is the 0.999 quantile
    const chi = counts.reduce((s, c) => s + (c - n / 6) ** 2 / (n / 6), 0);
    expect(chi).toBeLessThan(20.5);
  });

  it('shuffles into a permutation, from the back like Python', () => {
    const items = Array.from({ length: 50 }, (_, i) => i);
    new Rng(3).shuffle(items);
    expect([...items].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(items).not.toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('rejects a seed that is not a non-negative safe integer', () => {
    expect(() => new Rng(-1)).toThrow(ConfigError);
    expect(() => new Rng(1.5)).toThrow(/seed must be a non-negative safe integer, got 1.5/);
  });
});

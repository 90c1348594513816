/**
 * Fresh parameter values, deterministic from a seed: truncated normal with
 * standard deviation `initializer_range` (cut at two standard deviations, as
 * google-research/bert's `create_initializer`), LayerNorm weights one, biases
 * zero. Every parameter draws from its own stream (whole seed, hash of the
 * parameter's name), so adding a head does not change the encoder's initial values.
 */
import { rngFor, type Rng } from '../data/rng.js';
import type { BertConfig } from '../model/config.js';
import { numElements, type ParamSpec } from '../model/params.js';

function truncatedNormal(rng: Rng, n: number, std: number): Float32Array {
  const out = new Float32Array(n);
  let i = 0;
  while (i < n) {
    // Box-Muller; redraw values beyond two standard deviations.
    const u1 = 1 - rng.random();
    const u2 = rng.random();
    const r = Math.sqrt(-2 * Math.log(u1));
    const a = r * Math.cos(2 * Math.PI * u2);
    const b = r * Math.sin(2 * Math.PI * u2);
    if (Math.abs(a) <= 2) out[i++] = a * std;
    if (i < n && Math.abs(b) <= 2) out[i++] = b * std;
  }
  return out;
}

export function initParams(c: BertConfig, specs: readonly ParamSpec[], seed: number, only?: (name: string) => boolean): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  specs.forEach((s) => {
    if (only && !only(s.name)) return;
    const n = numElements(s.shape);
    if (s.init === 'ones') out.set(s.name, new Float32Array(n).fill(1));
    else if (s.init === 'zeros') out.set(s.name, new Float32Array(n));
    // The stream depends on the name, not the position, so heads can be added freely.
    else out.set(s.name, truncatedNormal(rngFor(seed, nameHash(s.name), 20), n, c.initializer_range));
  });
  return out;
}

/** FNV-1a of a parameter name: with the whole run seed, it picks the name's generator (rngFor). */
export function nameHash(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

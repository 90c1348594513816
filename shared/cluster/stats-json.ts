/**
 * Per-micro-batch (and per-eval-chunk) statistics as they travel beside a
 * gradient upload or an eval result: JSON, validated on arrival, so a bad
 * value is a ProtocolError naming the field rather than a NaN in metrics.
 * The numbers are loss sums and counts; JSON round-trips doubles exactly.
 * A loss sum may be NaN or ±Infinity (a diverged step): JSON has no such
 * numbers, so they travel as the strings "NaN", "Infinity", "-Infinity" and
 * come back as numbers, and the step reaches the non-finite guard
 * (coordinator/train-phase.ts) instead of failing here. Counts stay finite.
 *
 * Knows nothing of gRPC; the wire carries the string.
 */
import { z } from 'zod';
import { ProtocolError } from '../errors.js';
import type { MicroStats } from '../training/gradients.js';

/** A finite number, or a non-finite one spelled as encodeStats spells it. */
const lossSum = z.union([z.number(), z.enum(['NaN', 'Infinity', '-Infinity']).transform(Number)]);

const statsSchema = z.strictObject({
  sequences: z.number().int().nonnegative(),
  lossSum,
  nspLossSum: lossSum,
  correct: z.number().nonnegative(),
  nspCorrect: z.number().nonnegative(),
  maskedTokens: z.number().nonnegative(),
});

const indexedSchema = z.array(z.strictObject({ index: z.number().int().nonnegative(), stats: statsSchema }));

export interface IndexedStats {
  index: number;
  stats: MicroStats;
}

/** JSON.stringify would write NaN and ±Infinity as null: they are written as strings instead. */
function nonFiniteAsString(_key: string, v: unknown): unknown {
  return typeof v === 'number' && !Number.isFinite(v) ? String(v) : v;
}

export function encodeStats(stats: MicroStats): string {
  return JSON.stringify(stats, nonFiniteAsString);
}

export function decodeStats(json: string, what: string): MicroStats {
  return parse(statsSchema, json, what);
}

export function encodeIndexedStats(items: readonly IndexedStats[]): string {
  return JSON.stringify(items, nonFiniteAsString);
}

export function decodeIndexedStats(json: string, what: string): IndexedStats[] {
  return parse(indexedSchema, json, what);
}

function parse<T>(schema: z.ZodType<T>, json: string, what: string): T {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new ProtocolError(`${what}: stats are not JSON: ${JSON.stringify(json.slice(0, 80))}`, { cause: err });
  }
  const r = schema.safeParse(raw);
  if (!r.success) throw new ProtocolError(`${what}: stats invalid: ${z.prettifyError(r.error)}`);
  return r.data;
}

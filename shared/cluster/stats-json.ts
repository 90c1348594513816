/**
 * Per-micro-batch (and per-eval-chunk) statistics as they travel beside a
 * gradient upload or an eval result: JSON, validated on arrival, so a bad
 * value is a ProtocolError naming the field rather than a NaN in metrics.
 * The numbers are loss sums and counts; JSON round-trips doubles exactly.
 *
 * Knows nothing of gRPC; the wire carries the string.
 */
import { z } from 'zod';
import { ProtocolError } from '../errors.js';
import type { MicroStats } from '../training/gradients.js';

const statsSchema = z.strictObject({
  sequences: z.number().int().nonnegative(),
  lossSum: z.number(),
  nspLossSum: z.number(),
  correct: z.number().nonnegative(),
  nspCorrect: z.number().nonnegative(),
  maskedTokens: z.number().nonnegative(),
});

const indexedSchema = z.array(z.strictObject({ index: z.number().int().nonnegative(), stats: statsSchema }));

export interface IndexedStats {
  index: number;
  stats: MicroStats;
}

export function encodeStats(stats: MicroStats): string {
  return JSON.stringify(stats);
}

export function decodeStats(json: string, what: string): MicroStats {
  return parse(statsSchema, json, what);
}

export function encodeIndexedStats(items: readonly IndexedStats[]): string {
  return JSON.stringify(items);
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

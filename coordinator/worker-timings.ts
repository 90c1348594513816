/**
 * A worker's timings report (ReportMetrics): a small flat JSON object of
 * numbers (worker-loop.ts `report`), logged by the coordinator as it came.
 * Since it reaches the log, it is bounded before it is parsed and checked
 * after: at most MAX_TIMINGS_JSON_CHARS characters, an object of at most
 * MAX_TIMINGS_FIELDS fields, each a number, a boolean or a short string, so
 * a worker cannot flood the coordinator's log or memory through it.
 *
 * Knows nothing of gRPC or logging.
 */
import { ProtocolError } from '../shared/errors.js';

export const MAX_TIMINGS_JSON_CHARS = 16 * 1024;
export const MAX_TIMINGS_FIELDS = 64;
const MAX_FIELD_CHARS = 128;

/** The report's fields, or ProtocolError saying what was wrong (expected vs got). */
export function parseWorkerTimings(workerId: string, json: string): Record<string, number | boolean | string> {
  const what = `ReportMetrics from ${workerId}`;
  if (json.length > MAX_TIMINGS_JSON_CHARS) throw new ProtocolError(`${what}: expected at most ${MAX_TIMINGS_JSON_CHARS} characters of JSON, got ${json.length}`);
  let fields: unknown;
  try {
    fields = JSON.parse(json);
  } catch (err) {
    throw new ProtocolError(`${what}: expected a JSON object, got ${JSON.stringify(json.slice(0, 80))}`, { cause: err });
  }
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) {
    throw new ProtocolError(`${what}: expected a JSON object, got ${json.slice(0, 80)}`);
  }
  const entries = Object.entries(fields);
  if (entries.length > MAX_TIMINGS_FIELDS) throw new ProtocolError(`${what}: expected at most ${MAX_TIMINGS_FIELDS} fields, got ${entries.length}`);
  for (const [k, v] of entries) {
    const ok = typeof v === 'number' || typeof v === 'boolean' || (typeof v === 'string' && v.length <= MAX_FIELD_CHARS);
    if (!ok || k.length > MAX_FIELD_CHARS) {
      throw new ProtocolError(`${what}: field ${JSON.stringify(k.slice(0, 40))}: expected a number, a boolean or a string of at most ${MAX_FIELD_CHARS} characters, got ${typeof v}`);
    }
  }
  return fields as Record<string, number | boolean | string>;
}

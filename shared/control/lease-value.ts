/**
 * The value of a run lease in bucket `bertfleet_leases` (lease.ts): who holds
 * it, since when, and when it was last renewed; a zod schema (type inferred)
 * and its JSON encoding. A value that does not match is a ProtocolError
 * naming the key and revision.
 *
 * Knows nothing of buckets, TTLs or renewal.
 */
import type { KvEntry } from 'nats';
import { z } from 'zod';
import { ProtocolError } from '../errors.js';

export const LeaseValueSchema = z.strictObject({
  owner_id: z.string().min(1),
  hostname: z.string(),
  pid: z.number().int().nonnegative(),
  run_id: z.string().min(1),
  acquired_at_ms: z.number().int().nonnegative(),
  renewed_at_ms: z.number().int().nonnegative(),
});
export type LeaseValue = z.infer<typeof LeaseValueSchema>;

export function encodeLease(v: LeaseValue): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(LeaseValueSchema.parse(v)));
}

export function decodeLease(e: KvEntry): LeaseValue {
  let raw: unknown;
  try {
    raw = JSON.parse(e.string());
  } catch (err) {
    throw new ProtocolError(`run lease ${e.key} at revision ${e.revision} is not JSON`, { cause: err });
  }
  const parsed = LeaseValueSchema.safeParse(raw);
  if (!parsed.success) throw new ProtocolError(`run lease ${e.key} at revision ${e.revision} is invalid: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

/**
 * The shape of a run state as stored in the KV bucket: a zod schema (its type
 * inferred), and the encode/decode between it and KV entries. A value that
 * does not match is refused on both sides: the writer never stores one, the
 * reader reports one as a ProtocolError naming the run, revision and fields.
 *
 * Knows nothing of NATS connections, buckets or phase transitions.
 */
import type { KvEntry } from 'nats';
import { z } from 'zod';
import { ConfigError, InputError, ProtocolError } from '../errors.js';

/** A run id is also a NATS subject token and a KV key: letters, digits, `_`, `-`. */
export const RunIdSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1-64 characters of [A-Za-z0-9_-]');

/** Returns `runId` if usable as subject token and key; ConfigError naming the value otherwise. */
export function checkRunId(runId: string): string {
  if (!RunIdSchema.safeParse(runId).success) {
    throw new ConfigError([`run_id (${JSON.stringify(runId)}) must be 1-64 characters of [A-Za-z0-9_-]`]);
  }
  return runId;
}

export const RUN_PHASES = ['pretrain', 'finetune', 'evaluate', 'done', 'failed'] as const;
export type RunPhase = (typeof RUN_PHASES)[number];

export const RunStateSchema = z.strictObject({
  run_id: RunIdSchema,
  phase: z.enum(RUN_PHASES),
  /** Optimizer steps completed in the current phase. */
  step: z.number().int().nonnegative(),
  /** Directory of the newest complete checkpoint. */
  last_checkpoint: z.string().min(1).nullable(),
  updated_at_ms: z.number().int().nonnegative(),
  /** The coordinator instance that wrote this revision. */
  coordinator_id: z.string().min(1),
  /** Why the run failed; null unless phase is 'failed'. */
  failure: z.string().nullable(),
});
export type RunState = z.infer<typeof RunStateSchema>;

/** What the coordinator supplies; the writer adds run_id, coordinator_id and the time. */
export type RunStateInput = Omit<RunState, 'run_id' | 'coordinator_id' | 'updated_at_ms'>;

/** A run state and the KV revision it was read at (pass it to the next update). */
export interface VersionedRunState {
  state: RunState;
  revision: number;
}

/** Decodes and validates a KV entry; null for a deleted or purged key. */
export function decodeRunState(e: KvEntry): VersionedRunState | null {
  if (e.operation !== 'PUT') return null;
  let raw: unknown;
  try {
    raw = JSON.parse(e.string());
  } catch (err) {
    throw new ProtocolError(`run state ${e.key} at revision ${e.revision} is not JSON`, { cause: err });
  }
  const parsed = RunStateSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ProtocolError(`run state ${e.key} at revision ${e.revision} is invalid: ${z.prettifyError(parsed.error)}`);
  }
  return { state: parsed.data, revision: e.revision };
}

/** JSON bytes of a state; InputError listing the fields when it does not match the schema. */
export function encodeRunState(state: RunState): Uint8Array {
  const parsed = RunStateSchema.safeParse(state);
  if (!parsed.success) throw new InputError(`run state for ${state.run_id} is invalid: ${z.prettifyError(parsed.error)}`);
  return new TextEncoder().encode(JSON.stringify(parsed.data));
}

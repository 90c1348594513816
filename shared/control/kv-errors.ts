/**
 * Telling JetStream KV failures apart: a revision-checked write refused
 * because the key moved on (another writer, or the entry aged out) is a
 * verdict to act on; anything else (a timeout, no responders while
 * nats-server restarts, a closed connection) may be transient.
 *
 * Knows nothing of which bucket or what the values mean.
 */

/** JetStream's "wrong last sequence" (`Nats-Expected-Last-Subject-Sequence` did not match). */
export const JS_WRONG_LAST_SEQUENCE = 10071;

export function isWrongLastSequence(err: unknown): boolean {
  return (err as { api_error?: { err_code?: number } } | null)?.api_error?.err_code === JS_WRONG_LAST_SEQUENCE;
}

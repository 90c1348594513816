/**
 * Named errors for bertfleet. Every error says what was expected and what came,
 * so a user can act on the message alone. Lifecycle code catches these by class;
 * the gRPC server edge maps them to status codes in one table (see shared/wire).
 * This file knows nothing of I/O, logging or transports.
 */

export class BertfleetError extends Error {
  override readonly name: string = 'BertfleetError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A configuration value is invalid; `problems` lists every one found. */
export class ConfigError extends BertfleetError {
  override readonly name = 'ConfigError';
  constructor(readonly problems: readonly string[], options?: { cause?: unknown }) {
    super(problems.length === 1 ? problems[0]! : `invalid configuration:\n  - ${problems.join('\n  - ')}`, options);
  }
}

/** A tensor or buffer has the wrong shape or length. */
export class ShapeError extends BertfleetError {
  override readonly name = 'ShapeError';
  constructor(
    readonly what: string,
    readonly expected: string,
    readonly got: string,
    options?: { cause?: unknown },
  ) {
    super(`${what}: expected ${expected}, got ${got}`, options);
  }
}

/** User-supplied input (a file, a request, a CLI argument) is unusable. */
export class InputError extends BertfleetError {
  override readonly name = 'InputError';
}

/** A checkpoint directory or safetensors file is malformed or does not fit the config. */
export class CheckpointError extends BertfleetError {
  override readonly name = 'CheckpointError';
}

/** A tensor backend could not be loaded or does not behave as required. */
export class BackendError extends BertfleetError {
  override readonly name = 'BackendError';
}

/** A peer broke the protocol (wrong version, wrong step, wrong length, unknown worker). */
export class ProtocolError extends BertfleetError {
  override readonly name: string = 'ProtocolError';
}

/** Two replicas that must be identical are not. */
export class ReplicaMismatchError extends BertfleetError {
  override readonly name = 'ReplicaMismatchError';
}

/**
 * Two workers computed different gradients for the same micro-batch of the
 * same step (the gradient audit, cluster.auditEverySteps): one of them is not
 * computing what the others do. The message names the step, the micro-batch,
 * both workers with their fingerprints and the first tensor that differs.
 */
export class GradientAuditError extends BertfleetError {
  override readonly name = 'GradientAuditError';
}

/** A required outside service (nats-server, the coordinator) could not be reached in time. */
export class UnreachableError extends BertfleetError {
  override readonly name = 'UnreachableError';
}

/** Renders an error and its causes as one readable message for the CLI. */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; cur != null && depth < 8; depth++) {
    if (cur instanceof Error) {
      parts.push(depth === 0 ? `${cur.name}: ${cur.message}` : `caused by ${cur.name}: ${cur.message}`);
      cur = (cur as { cause?: unknown }).cause;
    } else {
      parts.push(String(cur));
      break;
    }
  }
  return parts.join('\n  ');
}

/** The coordinator does not know the caller (it never registered, left, or the coordinator restarted): register again. */
export class NotRegisteredError extends ProtocolError {
  override readonly name = 'NotRegisteredError';
}

/**
 * The run is finished: the coordinator (kept up by `--when-done stay`) has
 * nothing left to hand out, so every worker call is refused with this
 * (FAILED_PRECONDITION; the message says "run finished"). A worker that gets
 * it ends as if told 'done' and never retries.
 */
export class RunFinishedError extends ProtocolError {
  override readonly name = 'RunFinishedError';
}

/** An upload or result for work the coordinator already has complete: a retry whose first attempt landed. */
export class AlreadyReceivedError extends ProtocolError {
  override readonly name = 'AlreadyReceivedError';
}

/** Where a non-finite value sits: the parameter's name, the element inside it, and the value (NaN, ±Infinity). */
export interface NonFiniteValue {
  tensor: string;
  index: number;
  value: number;
}

/** A step's reduced gradient held NaN or ±Infinity, and where it came from when a reducer saw the partial arrive. */
export interface NonFiniteGradientDetails {
  phase: string;
  step: number;
  /** The first non-finite value of the reduced gradient. */
  reduced: NonFiniteValue;
  /** The uploaded partial sum that carried one (the lowest micro-batch range seen), or null if no partial summed here was non-finite. */
  partial: (NonFiniteValue & { workerId: string; range: { lo: number; hi: number } }) | null;
}

const at = (v: NonFiniteValue): string => `${v.value} at ${v.tensor}[${v.index}]`;

/** What went wrong in a non-finite step, in words: the step, the first value, the worker and micro-batches behind it. */
export function describeNonFiniteGradient(d: NonFiniteGradientDetails): string {
  const source = d.partial === null
    ? 'no partial sum received by the coordinator was non-finite (the value came from a slice summed by another reducer, whose log names the worker, or finite partials overflowed float32 when summed)'
    : `it came from worker ${d.partial.workerId}, in the partial sum of micro-batches [${d.partial.range.lo}, ${d.partial.range.hi}) (${at(d.partial)})`;
  return `${d.phase} step ${d.step}: expected a finite gradient, got ${at(d.reduced)} in the reduced gradient; ${source}`;
}

/**
 * The non-finite guard stopped the run (run config nonFinite: "stop"): no
 * replica applied the step. Names the step, the worker and micro-batch range
 * of the partial that carried the value, and the first tensor affected.
 */
export class NonFiniteGradientError extends BertfleetError {
  override readonly name = 'NonFiniteGradientError';
  constructor(readonly details: NonFiniteGradientDetails, options?: { cause?: unknown }) {
    super(`${describeNonFiniteGradient(details)}. No replica applied the step and the run stops (run config nonFinite: "stop"; "skip" skips such steps instead)`, options);
  }
}

/** A checkpoint was about to be written with NaN or ±Infinity in its weights: it is refused. */
export class NonFiniteWeightsError extends BertfleetError {
  override readonly name = 'NonFiniteWeightsError';
  constructor(readonly what: string, readonly position: { tensor: string; index: number }, readonly value: number) {
    super(`${what}: expected finite weights, got ${value} at ${position.tensor}[${position.index}]; nothing was written`);
  }
}

/**
 * TLS material (a CA, a certificate, a key) is unusable: unreadable, not PEM,
 * the key does not match the certificate, the certificate is not signed by the
 * CA, expired, or does not name the expected role. `file` is the file at fault.
 */
export class TlsConfigError extends BertfleetError {
  override readonly name = 'TlsConfigError';
  constructor(readonly file: string, message: string, options?: { cause?: unknown }) {
    super(`${file}: ${message}`, options);
  }
}

/**
 * Exit status of a process whose run stopped for a reason a resume would meet
 * again (the same state and data give the same bytes): `bertfleet cluster`
 * does not restart its coordinator on it, as it does after a crash (status 1).
 */
export const RUN_STOPPED_EXIT = 3;

/**
 * Whether `err` stops the run for good (exit RUN_STOPPED_EXIT): the non-finite
 * guard's errors, and replicas that disagree (a gradient audit or a parameter
 * checksum) — the same workers would disagree again after a restart.
 */
export function stopsRunForGood(err: unknown): boolean {
  return err instanceof NonFiniteGradientError || err instanceof NonFiniteWeightsError
    || err instanceof GradientAuditError || err instanceof ReplicaMismatchError;
}

/**
 * A call that needs an authenticated peer came without one: no client
 * certificate on a TLS server, or a certificate (signed by the CA) that names
 * no bertfleet identity. Mapped to UNAUTHENTICATED.
 */
export class AuthError extends BertfleetError {
  override readonly name = 'AuthError';
}

/**
 * The peer is authenticated but its certificate does not allow the call: a
 * worker certificate speaking for another worker id, or a worker calling what
 * only the coordinator may (OpenStep). The message names what the certificate
 * says and what the request claims. Mapped to PERMISSION_DENIED.
 */
export class PermissionError extends BertfleetError {
  override readonly name = 'PermissionError';
}

/**
 * A peer asked for more than a bound of the run allows (the member list is
 * full: cluster.maxWorkers). A refusal, not retried by the caller. Mapped to
 * RESOURCE_EXHAUSTED.
 */
export class LimitExceededError extends ProtocolError {
  override readonly name = 'LimitExceededError';
}

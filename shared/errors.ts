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

/** An upload or result for work the coordinator already has complete: a retry whose first attempt landed. */
export class AlreadyReceivedError extends ProtocolError {
  override readonly name = 'AlreadyReceivedError';
}

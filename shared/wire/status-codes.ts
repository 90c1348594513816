/**
 * The one table mapping bertfleet error classes to gRPC status codes, used at
 * the server edge (error -> status) and by the client (status -> the same
 * class). The class name and its fields ride in the `bertfleet-error-bin`
 * trailer as JSON, so a ShapeError thrown in a coordinator handler is a
 * ShapeError with the same message in the worker; the grpc error is kept as
 * `cause`. A status without that trailer (another server, a transport failure)
 * maps by code alone.
 *
 * Status numbers are those of the gRPC spec (doc/statuscodes.md), written out
 * so this file needs no grpc import.
 */
import {
  LimitExceededError,
  AlreadyReceivedError,
  AuthError,
  BackendError,
  BertfleetError,
  CheckpointError,
  ConfigError,
  GradientAuditError,
  InputError,
  NotRegisteredError,
  PermissionError,
  ProtocolError,
  ReplicaMismatchError,
  RunFinishedError,
  ShapeError,
  UnreachableError,
} from '../errors.js';

export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** The trailer key; `-bin` makes grpc carry it as raw bytes. */
export const ERROR_TRAILER_KEY = 'bertfleet-error-bin';

type Fields = Record<string, unknown>;

interface Row {
  ctor: abstract new (...args: never[]) => Error;
  code: number;
  /** The fields beyond `message` needed to rebuild the error. */
  fields: (e: Error) => Fields;
  rebuild: (message: string, fields: Fields, cause: unknown) => Error;
}

const str = (f: Fields, k: string): string => String(f[k] ?? '');
const messageOnly = (Ctor: new (m: string, o?: { cause?: unknown }) => Error) =>
  (message: string, _f: Fields, cause: unknown) => new Ctor(message, { cause });

/** Most specific first: the first `instanceof` match wins. */
const TABLE: readonly Row[] = [
  {
    ctor: ShapeError,
    code: GrpcStatus.INVALID_ARGUMENT,
    fields: (e) => ({ what: (e as ShapeError).what, expected: (e as ShapeError).expected, got: (e as ShapeError).got }),
    rebuild: (_m, f, cause) => new ShapeError(str(f, 'what'), str(f, 'expected'), str(f, 'got'), { cause }),
  },
  {
    ctor: ConfigError,
    code: GrpcStatus.INVALID_ARGUMENT,
    fields: (e) => ({ problems: (e as ConfigError).problems }),
    rebuild: (m, f, cause) => new ConfigError(Array.isArray(f['problems']) ? f['problems'].map(String) : [m], { cause }),
  },
  { ctor: InputError, code: GrpcStatus.INVALID_ARGUMENT, fields: () => ({}), rebuild: messageOnly(InputError) },
  { ctor: AuthError, code: GrpcStatus.UNAUTHENTICATED, fields: () => ({}), rebuild: messageOnly(AuthError) },
  { ctor: PermissionError, code: GrpcStatus.PERMISSION_DENIED, fields: () => ({}), rebuild: messageOnly(PermissionError) },
  { ctor: NotRegisteredError, code: GrpcStatus.FAILED_PRECONDITION, fields: () => ({}), rebuild: messageOnly(NotRegisteredError) },
  { ctor: RunFinishedError, code: GrpcStatus.FAILED_PRECONDITION, fields: () => ({}), rebuild: messageOnly(RunFinishedError) },
  { ctor: AlreadyReceivedError, code: GrpcStatus.ALREADY_EXISTS, fields: () => ({}), rebuild: messageOnly(AlreadyReceivedError) },
  { ctor: LimitExceededError, code: GrpcStatus.RESOURCE_EXHAUSTED, fields: () => ({}), rebuild: messageOnly(LimitExceededError) },
  { ctor: ProtocolError, code: GrpcStatus.FAILED_PRECONDITION, fields: () => ({}), rebuild: messageOnly(ProtocolError) },
  { ctor: ReplicaMismatchError, code: GrpcStatus.DATA_LOSS, fields: () => ({}), rebuild: messageOnly(ReplicaMismatchError) },
  { ctor: GradientAuditError, code: GrpcStatus.DATA_LOSS, fields: () => ({}), rebuild: messageOnly(GradientAuditError) },
  { ctor: CheckpointError, code: GrpcStatus.INTERNAL, fields: () => ({}), rebuild: messageOnly(CheckpointError) },
  { ctor: BackendError, code: GrpcStatus.INTERNAL, fields: () => ({}), rebuild: messageOnly(BackendError) },
  { ctor: UnreachableError, code: GrpcStatus.UNAVAILABLE, fields: () => ({}), rebuild: messageOnly(UnreachableError) },
  { ctor: BertfleetError, code: GrpcStatus.UNKNOWN, fields: () => ({}), rebuild: messageOnly(BertfleetError) },
];

/** A status the server edge sends: code, message, and the trailer bytes. */
export interface WireError {
  code: number;
  details: string;
  trailer: Uint8Array | null;
}

/** Server edge: any thrown value -> status. Non-bertfleet errors are INTERNAL. */
export function toWireError(err: unknown): WireError {
  if (err instanceof Error && err.name === 'AbortError') {
    return { code: GrpcStatus.CANCELLED, details: err.message, trailer: null };
  }
  const row = err instanceof Error ? TABLE.find((r) => err instanceof r.ctor) : undefined;
  if (row === undefined || !(err instanceof Error)) {
    const details = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    return { code: GrpcStatus.INTERNAL, details, trailer: null };
  }
  // The row's class, not err.name: a subclass outside the table travels as its base class.
  const payload = JSON.stringify({ name: row.ctor.name, message: err.message, fields: row.fields(err) });
  return { code: row.code, details: err.message, trailer: Buffer.from(payload, 'utf8') };
}

/** What the client knows about a failed call. */
export interface FailedCall {
  code: number;
  details: string;
  trailer: Uint8Array | null;
  /** e.g. `Register on 127.0.0.1:50051`, for errors that carry no class. */
  call: string;
  timeoutMs: number;
}

/** Client side: status (+ trailer) -> the bertfleet error the server threw. */
export function fromWireError(f: FailedCall, cause: unknown): Error {
  const restored = f.trailer === null ? undefined : restoreFromTrailer(f.trailer, cause);
  if (restored !== undefined) return restored;
  switch (f.code) {
    case GrpcStatus.UNAVAILABLE:
      return new UnreachableError(`${f.call} failed: coordinator unavailable (${f.details})`, { cause });
    case GrpcStatus.DEADLINE_EXCEEDED:
      return new UnreachableError(`${f.call} got no answer within ${f.timeoutMs} ms`, { cause });
    case GrpcStatus.CANCELLED:
      // The client cancels only calls whose result it no longer reads, so this came from the server going down.
      return new UnreachableError(`${f.call} was cancelled by the coordinator (shutting down?): ${f.details}`, { cause });
    case GrpcStatus.UNAUTHENTICATED:
      return new AuthError(`${f.call} refused: not authenticated (${f.details})`, { cause });
    case GrpcStatus.PERMISSION_DENIED:
      return new PermissionError(`${f.call} refused: permission denied (${f.details})`, { cause });
    case GrpcStatus.INVALID_ARGUMENT:
    case GrpcStatus.FAILED_PRECONDITION:
    case GrpcStatus.UNIMPLEMENTED:
      return new ProtocolError(`${f.call} refused: ${f.details}`, { cause });
    default:
      return new BertfleetError(`${f.call} failed with status ${f.code}: ${f.details}`, { cause });
  }
}

function restoreFromTrailer(trailer: Uint8Array, cause: unknown): Error | undefined {
  let parsed: { name?: unknown; message?: unknown; fields?: unknown };
  try {
    parsed = JSON.parse(Buffer.from(trailer).toString('utf8')) as typeof parsed;
  } catch (err) {
    // A malformed trailer is a protocol fault in itself; say so rather than guess.
    return new ProtocolError('coordinator sent a malformed bertfleet-error-bin trailer', { cause: err });
  }
  const row = TABLE.find((r) => r.ctor.name === parsed.name);
  if (row === undefined) return undefined;
  const fields = typeof parsed.fields === 'object' && parsed.fields !== null ? (parsed.fields as Fields) : {};
  return row.rebuild(String(parsed.message ?? ''), fields, cause);
}

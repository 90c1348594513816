/**
 * Binds what a call claims to who its certificate says the caller is: on an
 * mTLS server (CallContext.secure) a worker certificate speaks for its own
 * worker id only, and calls meant for the coordinator or a reducer need
 * theirs. A mismatch is a PermissionError naming both sides (safe to say: the
 * peer was authenticated by the CA); a call without an identity on a TLS
 * server is an AuthError. On a plaintext server (`--insecure`) nobody is
 * authenticated and every check passes: that is the explicit choice made.
 *
 * Used by the coordinator's and the reducers' services; knows nothing of
 * what they do.
 */
import { AuthError, PermissionError } from '../errors.js';
import { describeIdentity, type PeerIdentity, type PeerRole } from '../security/identity.js';
import type { GradientChunk } from './messages.js';
import type { CallContext } from './service.js';

function authenticated(ctx: CallContext, call: string): PeerIdentity | null {
  if (!ctx.secure) return null;
  if (ctx.identity === null) throw new AuthError(`${call}: expected a client certificate naming a bertfleet identity, got none`);
  return ctx.identity;
}

/** The caller must be worker `workerId` (or, when `alsoRoles` lists its role, that role). */
export function requireWorker(ctx: CallContext, workerId: string, call: string, alsoRoles: readonly PeerRole[] = []): void {
  const who = authenticated(ctx, call);
  if (who === null || alsoRoles.includes(who.role)) return;
  if (who.role !== 'worker' || who.id !== workerId) {
    throw new PermissionError(`${call}: the client certificate is for ${describeIdentity(who)}, but the request claims worker ${JSON.stringify(workerId)}`);
  }
}

/** The caller must hold one of `roles` (any id). */
export function requireRole(ctx: CallContext, roles: readonly PeerRole[], call: string): void {
  const who = authenticated(ctx, call);
  if (who === null || roles.includes(who.role)) return;
  throw new PermissionError(`${call}: expected a client certificate for ${roles.join(' or ')}, got one for ${describeIdentity(who)}`);
}

/**
 * An upload whose header must name the caller: the first chunk is checked
 * before it is passed on, so a refused upload is never counted or buffered.
 */
export async function* boundUpload(chunks: AsyncIterable<GradientChunk>, ctx: CallContext, call: string): AsyncIterable<GradientChunk> {
  let first = true;
  for await (const chunk of chunks) {
    if (first && ctx.secure) {
      // A stream that does not open with a header is refused by readGradient; only a header names a worker.
      if (chunk.header !== undefined) requireWorker(ctx, chunk.header.worker_id, call);
      else authenticated(ctx, call);
    }
    first = false;
    yield chunk;
  }
}

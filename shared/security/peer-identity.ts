/**
 * Who is on the other end of a TLS connection, from the certificate it
 * presented: for the coordinator to bind a worker id to the worker's client
 * certificate (a worker cannot speak for another id), and for a client to
 * make sure the server it reached is the role it meant to reach (a reducer's
 * certificate cannot pass for the coordinator's).
 *
 * The inputs are structural, so no transport is imported: grpc-js's
 * `call.getAuthContext().sslPeerCertificate` and Node's `tls` PeerCertificate
 * both carry the DER bytes in `.raw`.
 *
 * Knows nothing of files or of how a refusal is reported.
 */
import { checkServerIdentity as tlsCheckServerIdentity } from 'node:tls';
import { InputError } from '../errors.js';
import { describeIdentity, identityFromUris, type PeerIdentity, type PeerRole } from './identity.js';
import { readCertificate } from './x509.js';

/** A certificate as PEM text, DER bytes, or anything with the DER in `.raw` (Node's PeerCertificate). */
export type CertificateInput = string | Uint8Array | { raw?: Uint8Array | null };

/** The role and id a certificate names (its `bertfleet:` SAN URI); InputError if it names none or several. */
export function peerIdentity(cert: CertificateInput): PeerIdentity {
  const bytes = typeof cert === 'string' || cert instanceof Uint8Array ? cert : cert.raw;
  if (bytes === undefined || bytes === null || bytes.length === 0) throw new InputError('peer certificate: expected a certificate, got none');
  return identityFromUris(readCertificate(bytes).uris, 'peer certificate');
}

/**
 * The identity behind a grpc-js AuthContext (`call.getAuthContext()`), or
 * null when the call came without a client certificate (plaintext, or TLS
 * without client authentication). An unreadable or unnamed certificate
 * throws InputError.
 */
export function identityOfAuthContext(ctx: { sslPeerCertificate?: { raw?: Uint8Array | null } | null } | null | undefined): PeerIdentity | null {
  const raw = ctx?.sslPeerCertificate?.raw;
  if (raw === undefined || raw === null || raw.length === 0) return null;
  return peerIdentity(raw);
}

/** InputError unless `who` is `role` (and, when given, `id`); the message names both. */
export function requireIdentity(who: PeerIdentity, role: PeerRole, id?: string): PeerIdentity {
  const want: PeerIdentity = id === undefined ? { role } : { role, id };
  if (who.role !== role || (id !== undefined && who.id !== id)) {
    throw new InputError(`peer certificate: expected ${describeIdentity(want)}, got ${describeIdentity(who)}`);
  }
  return who;
}

/**
 * A `checkServerIdentity` for a TLS client (grpc-js `createSsl(..., {
 * checkServerIdentity })`, nats.js `tls`): the usual host-name check, then
 * the server certificate must name `role` (e.g. a worker reaching the
 * coordinator refuses a reducer's certificate). Returns an Error to refuse.
 */
export function serverIdentityCheck(role: PeerRole): (hostname: string, cert: { raw?: Uint8Array | null } & Parameters<typeof tlsCheckServerIdentity>[1]) => Error | undefined {
  return (hostname, cert) => {
    const hostErr = tlsCheckServerIdentity(hostname, cert);
    if (hostErr !== undefined) return hostErr;
    try {
      requireIdentity(peerIdentity(cert), role);
      return undefined;
    } catch (err) {
      return err as Error;
    }
  };
}

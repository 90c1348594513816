/**
 * Who a certificate speaks for. Every bertfleet certificate carries exactly
 * one URI in its subjectAltName naming its role, and for a worker or a
 * reducer its id:
 *
 * | role        | SAN URI                          | CN (for people; not checked)  | extended key usage        |
 * | ----------- | -------------------------------- | ----------------------------- | ------------------------- |
 * | coordinator | `bertfleet:coordinator`          | `coordinator`                 | serverAuth, clientAuth    |
 * | reducer     | `bertfleet:reducer:<index>`      | `reducer:<index>`             | serverAuth, clientAuth    |
 * | worker      | `bertfleet:worker:<worker id>`   | `worker:<worker id>`          | clientAuth                |
 * | nats        | `bertfleet:nats`                 | `nats`                        | serverAuth                |
 *
 * The URI is the identity, the CN is only a label: a worker certificate names
 * one worker id and no pattern, so there is no certificate good for every
 * worker. Ids use the characters the coordinator accepts for a worker id.
 *
 * Pure: knows nothing of files, X.509 encoding or transports.
 */
import { InputError } from '../errors.js';

export const PEER_ROLES = ['coordinator', 'reducer', 'worker', 'nats'] as const;
export type PeerRole = (typeof PEER_ROLES)[number];

export interface PeerIdentity {
  role: PeerRole;
  /** The worker id or reducer index; absent for coordinator and nats. */
  id?: string;
}

/** The worker ids the coordinator accepts (coordinator-service.ts). */
export const PEER_ID = /^[A-Za-z0-9_.-]{1,128}$/;
export const IDENTITY_URI_SCHEME = 'bertfleet';

const ROLES_WITH_ID: readonly PeerRole[] = ['reducer', 'worker'];

function checkIdentity(p: PeerIdentity): PeerIdentity {
  const needsId = ROLES_WITH_ID.includes(p.role);
  if (needsId && (p.id === undefined || !PEER_ID.test(p.id))) {
    throw new InputError(`a ${p.role} identity needs an id of 1-128 characters of [A-Za-z0-9_.-], got ${JSON.stringify(p.id)}`);
  }
  if (!needsId && p.id !== undefined) throw new InputError(`a ${p.role} identity has no id, got ${JSON.stringify(p.id)}`);
  return p;
}

/** `bertfleet:worker:w1`, `bertfleet:coordinator`. */
export function identityUri(p: PeerIdentity): string {
  checkIdentity(p);
  return p.id === undefined ? `${IDENTITY_URI_SCHEME}:${p.role}` : `${IDENTITY_URI_SCHEME}:${p.role}:${p.id}`;
}

/** `worker:w1`, `coordinator`: the certificate's CN. */
export function identityCommonName(p: PeerIdentity): string {
  checkIdentity(p);
  return p.id === undefined ? p.role : `${p.role}:${p.id}`;
}

/** The identity a SAN URI names, or null when the URI is not a bertfleet identity at all. Throws InputError for a malformed one. */
export function parseIdentityUri(uri: string): PeerIdentity | null {
  const parts = uri.split(':');
  if (parts[0] !== IDENTITY_URI_SCHEME) return null;
  const role = parts[1] as PeerRole;
  if (parts.length < 2 || parts.length > 3 || !PEER_ROLES.includes(role)) {
    throw new InputError(`expected a SAN URI ${IDENTITY_URI_SCHEME}:<${PEER_ROLES.join('|')}>[:<id>], got ${JSON.stringify(uri)}`);
  }
  return checkIdentity(parts.length === 3 ? { role, id: parts[2]! } : { role });
}

/** The single bertfleet identity among a certificate's SAN URIs; InputError if there is none or more than one. */
export function identityFromUris(uris: readonly string[], what: string): PeerIdentity {
  const found = uris.map(parseIdentityUri).filter((p): p is PeerIdentity => p !== null);
  if (found.length !== 1) {
    throw new InputError(
      `${what}: expected exactly one subjectAltName URI ${IDENTITY_URI_SCHEME}:<role>[:<id>], got ${found.length} (URIs: ${JSON.stringify(uris)})`,
    );
  }
  return found[0]!;
}

export function describeIdentity(p: PeerIdentity): string {
  return p.id === undefined ? p.role : `${p.role} ${p.id}`;
}

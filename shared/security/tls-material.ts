/**
 * Loads a user's own TLS files (`--tls-ca/--tls-cert/--tls-key`) once at
 * start and checks them before any connection is tried, so a mistake is a
 * TlsConfigError naming the file and saying what was expected, not a
 * handshake failure later: each file reads and parses, the key is private
 * (mode 0600) and belongs to the certificate, the certificate chains to the
 * CA (through intermediates placed after it in the cert file), nothing in the
 * chain is expired or not yet valid, and the certificate names one bertfleet
 * identity (identity.ts) of the expected role.
 *
 * Returns the bytes for the transports (grpc-js `createSsl`, nats.js `tls`);
 * knows nothing of either.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { TlsConfigError } from '../errors.js';
import { describeIdentity, identityFromUris, type PeerIdentity, type PeerRole } from './identity.js';
import { checkPrivateFile } from './private-files.js';
import type { TlsFiles } from './throwaway-pki.js';
import { EKU_OID, readCertificate, type KeyUsagePurpose } from './x509.js';

export interface TlsMaterial {
  /** PEM bytes: the CA bundle to trust, this party's certificate (chain) and its key. */
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  identity: PeerIdentity;
  notAfter: Date;
  files: TlsFiles;
}

/** What each role's certificate must be good for (an absent EKU extension allows all). */
const PURPOSES: Record<PeerRole, KeyUsagePurpose[]> = {
  coordinator: ['serverAuth', 'clientAuth'],
  reducer: ['serverAuth'],
  worker: ['clientAuth'],
  nats: ['serverAuth'],
};

const MAX_CHAIN = 6;

function readPem(file: string, what: string): Buffer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new TlsConfigError(file, `cannot read the ${what}: ${(err as Error).message}`, { cause: err });
  }
  if (!bytes.toString('latin1').includes('-----BEGIN ')) throw new TlsConfigError(file, `expected a PEM ${what} (-----BEGIN ...), got ${bytes.length} bytes of something else`);
  return bytes;
}

/** Every certificate of a PEM file, in order. */
function certificatesOf(file: string, pem: Buffer, what: string): X509Certificate[] {
  const blocks = pem.toString('latin1').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new TlsConfigError(file, `expected at least one PEM CERTIFICATE block in the ${what}, got none`);
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (err) {
      throw new TlsConfigError(file, `certificate ${i + 1} of the ${what} does not parse: ${(err as Error).message}`, { cause: err });
    }
  });
}

function checkValidAt(file: string, c: X509Certificate, what: string, nowMs: number): void {
  const { notBefore, notAfter } = readCertificate(c.raw);
  const now = new Date(nowMs).toISOString();
  if (nowMs > notAfter.getTime()) throw new TlsConfigError(file, `${what} (${c.subject.replace(/\n/g, ', ')}) expired: valid until ${notAfter.toISOString()}, now ${now}`);
  if (nowMs < notBefore.getTime()) throw new TlsConfigError(file, `${what} (${c.subject.replace(/\n/g, ', ')}) not valid yet: valid from ${notBefore.toISOString()}, now ${now}`);
}

/** Follows issuers from the leaf through `intermediates` to one of `cas`, checking each signature and validity. */
function checkChain(files: TlsFiles, leaf: X509Certificate, intermediates: X509Certificate[], cas: X509Certificate[], nowMs: number): void {
  let cur = leaf;
  for (let depth = 0; depth < MAX_CHAIN; depth++) {
    const root = cas.find((ca) => cur.checkIssued(ca) && cur.verify(ca.publicKey));
    if (root !== undefined) {
      checkValidAt(files.ca, root, 'the CA certificate', nowMs);
      return;
    }
    const next = intermediates.find((i) => i !== cur && cur.checkIssued(i) && cur.verify(i.publicKey));
    if (next === undefined) break;
    checkValidAt(files.cert, next, 'an intermediate certificate', nowMs);
    cur = next;
  }
  throw new TlsConfigError(
    files.cert,
    `expected a certificate signed by the CA in ${files.ca} (${cas.map((c) => c.subject.replace(/\n/g, ', ')).join('; ')}), ` +
      `got one issued by ${cur.issuer.replace(/\n/g, ', ')}`,
  );
}

function checkPurposes(file: string, leaf: X509Certificate, role: PeerRole): void {
  const ekus = readCertificate(leaf.raw).extendedKeyUsages;
  if (ekus.length === 0) return;
  const missing = PURPOSES[role].filter((p) => !ekus.includes(EKU_OID[p]));
  if (missing.length > 0) {
    throw new TlsConfigError(file, `a ${role} certificate needs extendedKeyUsage ${PURPOSES[role].join(' + ')}, got ${ekus.join(', ')} (missing ${missing.join(', ')})`);
  }
}

/**
 * Reads and checks `files`; `role` (when given) is the role the certificate
 * must name, `workerId` the id a worker's must name.
 */
export function loadTlsMaterial(files: TlsFiles, o: { role?: PeerRole; id?: string; nowMs?: number } = {}): TlsMaterial {
  const nowMs = o.nowMs ?? Date.now();
  const ca = readPem(files.ca, 'CA certificate');
  const cert = readPem(files.cert, 'certificate');
  const key = readPem(files.key, 'private key');
  try {
    checkPrivateFile(files.key, 'TLS private key');
  } catch (err) {
    throw new TlsConfigError(files.key, (err as Error).message, { cause: err });
  }
  const cas = certificatesOf(files.ca, ca, 'CA file');
  const [leaf, ...intermediates] = certificatesOf(files.cert, cert, 'certificate file');
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new TlsConfigError(files.key, `expected an unencrypted PEM private key, got one that does not parse: ${(err as Error).message}`, { cause: err });
  }
  if (!leaf!.checkPrivateKey(privateKey)) {
    throw new TlsConfigError(files.key, `expected the private key of the certificate in ${files.cert} (${leaf!.subject.replace(/\n/g, ', ')}), got the key of another certificate`);
  }
  checkValidAt(files.cert, leaf!, 'the certificate', nowMs);
  checkChain(files, leaf!, intermediates, cas, nowMs);
  let identity: PeerIdentity;
  try {
    identity = identityFromUris(readCertificate(leaf!.raw).uris, 'certificate');
  } catch (err) {
    throw new TlsConfigError(files.cert, (err as Error).message, { cause: err });
  }
  if (o.role !== undefined && (identity.role !== o.role || (o.id !== undefined && identity.id !== o.id))) {
    const want = describeIdentity(o.id === undefined ? { role: o.role } : { role: o.role, id: o.id });
    throw new TlsConfigError(files.cert, `expected a certificate for ${want}, got one for ${describeIdentity(identity)}`);
  }
  checkPurposes(files.cert, leaf!, identity.role);
  return { ca, cert, key, identity, notAfter: readCertificate(leaf!.raw).notAfter, files };
}

/**
 * The adapter over `@peculiar/x509` (pure JS over Node's WebCrypto): makes
 * ECDSA P-256 keys, a self-signed CA, certificates it signs, and reads the
 * fields bertfleet checks (SAN URIs, extended key usages, validity) from a
 * certificate. The only importer of `@peculiar/x509`; its 2.x needs a Reflect
 * metadata polyfill loaded first, hence `reflect-metadata` here and nowhere
 * else.
 *
 * Knows nothing of files, roles or transports: identity.ts names the SANs,
 * throwaway-pki.ts writes the files.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';

const subtle = webcrypto.subtle;
type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
// The library's types name the DOM's Crypto, which this project's lib does not include; Node's webcrypto is that object.
x509.cryptoProvider.set(webcrypto as never);

const KEY_ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN_ALG = { name: 'ECDSA', hash: 'SHA-256' } as const;

export type KeyUsagePurpose = 'serverAuth' | 'clientAuth';

/** A certificate and its private key, both PEM (the key PKCS#8, unencrypted). */
export interface PemPair {
  certPem: string;
  keyPem: string;
}

export interface CertificateRequest {
  commonName: string;
  dns?: readonly string[];
  ips?: readonly string[];
  uris?: readonly string[];
  purposes: readonly KeyUsagePurpose[];
  notBefore: Date;
  notAfter: Date;
}

/** What bertfleet reads from a certificate. */
export interface CertificateFields {
  subject: string;
  issuer: string;
  uris: string[];
  dns: string[];
  ips: string[];
  /** OIDs of the extended key usages; empty when the extension is absent. */
  extendedKeyUsages: string[];
  isCa: boolean;
  notBefore: Date;
  notAfter: Date;
}

export const EKU_OID: Record<KeyUsagePurpose, string> = {
  serverAuth: x509.ExtendedKeyUsage.serverAuth,
  clientAuth: x509.ExtendedKeyUsage.clientAuth,
};

async function newKeys(): Promise<CryptoKeyPair> {
  return subtle.generateKey(KEY_ALG, true, ['sign', 'verify']);
}

async function keyPem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

/** Random positive 16-byte serial (RFC 5280 allows up to 20 bytes; the top bit cleared keeps it positive). */
function serialNumber(): string {
  const b = webcrypto.getRandomValues(new Uint8Array(16));
  b[0] = b[0]! & 0x7f;
  return Buffer.from(b).toString('hex');
}

/** A self-signed CA that may sign end-entity certificates only (pathLen 0). */
export async function createCa(o: { commonName: string; notBefore: Date; notAfter: Date }): Promise<PemPair> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: [{ CN: [o.commonName] }],
    notBefore: o.notBefore,
    notAfter: o.notAfter,
    keys,
    signingAlgorithm: SIGN_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await keyPem(keys.privateKey) };
}

/** A leaf certificate signed by `ca` for a new key. */
export async function issueCertificate(ca: PemPair, req: CertificateRequest): Promise<PemPair> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(ca.keyPem), KEY_ALG, false, ['sign']);
  const keys = await newKeys();
  const names: x509.JsonGeneralName[] = [
    ...(req.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(req.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
    ...(req.uris ?? []).map((value) => ({ type: 'url' as const, value })),
  ];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: [{ CN: [req.commonName] }],
    issuer: caCert.subject,
    notBefore: req.notBefore,
    notAfter: req.notAfter,
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: SIGN_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(req.purposes.map((p) => EKU_OID[p]), false),
      new x509.SubjectAlternativeNameExtension(names, false),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await keyPem(keys.privateKey) };
}

/** Reads the fields bertfleet checks; throws (the library's error) when `cert` is not a certificate. */
export function readCertificate(cert: string | Uint8Array): CertificateFields {
  const c = new x509.X509Certificate(typeof cert === 'string' ? cert : new Uint8Array(cert));
  const san = c.getExtension(x509.SubjectAlternativeNameExtension);
  const items = san?.names.items ?? [];
  const of = (type: string): string[] => items.filter((n) => n.type === type).map((n) => n.value);
  const eku = c.getExtension(x509.ExtendedKeyUsageExtension);
  return {
    subject: c.subject,
    issuer: c.issuer,
    uris: of('url'),
    dns: of('dns'),
    ips: of('ip'),
    extendedKeyUsages: Array.from(eku?.usages ?? [], String),
    isCa: c.getExtension(x509.BasicConstraintsExtension)?.ca === true,
    notBefore: c.notBefore,
    notAfter: c.notAfter,
  };
}

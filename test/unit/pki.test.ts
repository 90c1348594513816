/**
 * The throwaway PKI and the checks on a user's own TLS files: what the local
 * cluster makes (modes, identities, purposes, no worker wildcard), a worker
 * certificate issued during the run, and every refusal of loadTlsMaterial
 * naming the file at fault. Identity parsing is checked against the SAN URIs.
 */
import { X509Certificate } from 'node:crypto';
import { chmodSync, copyFileSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError, TlsConfigError } from '../../shared/errors.js';
import { identityUri, parseIdentityUri } from '../../shared/security/identity.js';
import { identityOfAuthContext, peerIdentity, requireIdentity } from '../../shared/security/peer-identity.js';
import { issueWorkerCert, makeThrowawayPki, type ThrowawayPki } from '../../shared/security/throwaway-pki.js';
import { loadTlsMaterial } from '../../shared/security/tls-material.js';
import { readCertificate } from '../../shared/security/x509.js';

const DAY_MS = 24 * 3600 * 1000;
let pki: ThrowawayPki;
let other: ThrowawayPki;

beforeAll(async () => {
  pki = await makeThrowawayPki({ workerIds: ['w1', 'w2'], reducers: 1, hosts: ['coord.example', '10.1.2.3'] });
  other = await makeThrowawayPki({ workerIds: ['w1'] });
});

afterAll(() => {
  pki?.remove();
  other?.remove();
});

describe('identity URIs', () => {
  it('round-trips each role and refuses malformed ones', () => {
    expect(identityUri({ role: 'worker', id: 'w-1.a' })).toBe('bertfleet:worker:w-1.a');
    expect(parseIdentityUri('bertfleet:worker:w-1.a')).toEqual({ role: 'worker', id: 'w-1.a' });
    expect(parseIdentityUri('bertfleet:coordinator')).toEqual({ role: 'coordinator' });
    expect(parseIdentityUri('spiffe://x/y')).toBeNull();
    expect(() => parseIdentityUri('bertfleet:worker:*')).toThrow(InputError);
    expect(() => parseIdentityUri('bertfleet:worker')).toThrow(InputError);
    expect(() => parseIdentityUri('bertfleet:admin')).toThrow(InputError);
    expect(() => parseIdentityUri('bertfleet:coordinator:x')).toThrow(InputError);
  });
});

describe('makeThrowawayPki', () => {
  it('writes every file 0600 in a 0700 folder', () => {
    expect(statSync(pki.dir).mode & 0o777).toBe(0o700);
    const files = readdirSync(pki.dir);
    expect(files.sort()).toEqual(
      ['ca.key', 'ca.pem', 'coordinator.key', 'coordinator.pem', 'nats.key', 'nats.pem', 'reducer-1.key', 'reducer-1.pem', 'worker-w1.key', 'worker-w1.pem', 'worker-w2.key', 'worker-w2.pem'].sort(),
    );
    for (const f of files) expect(statSync(join(pki.dir, f)).mode & 0o777, f).toBe(0o600);
  });

  it('makes certificates that load for their role and name their identity', () => {
    expect(loadTlsMaterial(pki.coordinator, { role: 'coordinator' }).identity).toEqual({ role: 'coordinator' });
    expect(loadTlsMaterial(pki.nats, { role: 'nats' }).identity).toEqual({ role: 'nats' });
    expect(loadTlsMaterial(pki.reducers[0]!, { role: 'reducer' }).identity).toEqual({ role: 'reducer', id: '1' });
    expect(loadTlsMaterial(pki.workers.get('w2')!, { role: 'worker', id: 'w2' }).identity).toEqual({ role: 'worker', id: 'w2' });
  });

  it('names loopback and the given hosts on server certificates, none on worker ones', () => {
    const server = readCertificate(readFileSync(pki.coordinator.cert, 'utf8'));
    expect(server.dns).toEqual(['localhost', 'coord.example']);
    expect(server.ips).toEqual(['127.0.0.1', '::1', '10.1.2.3']);
    expect(server.extendedKeyUsages.sort()).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    const worker = readCertificate(readFileSync(pki.workers.get('w1')!.cert, 'utf8'));
    expect(worker).toMatchObject({ dns: [], ips: [], uris: ['bertfleet:worker:w1'], extendedKeyUsages: ['1.3.6.1.5.5.7.3.2'], isCa: false });
    expect(new X509Certificate(readFileSync(pki.workers.get('w1')!.cert)).subject).toBe('CN=worker:w1');
  });

  it('issues no certificate that speaks for every worker', () => {
    for (const f of readdirSync(pki.dir).filter((n) => n.endsWith('.pem') && n !== 'ca.pem')) {
      const uris = readCertificate(readFileSync(join(pki.dir, f), 'utf8')).uris;
      expect(uris, f).toHaveLength(1);
      expect(uris[0], f).not.toMatch(/[*>]/);
    }
  });

  it('makes a CA valid about 7 days that signs end-entity certificates only', () => {
    const ca = readCertificate(readFileSync(join(pki.dir, 'ca.pem'), 'utf8'));
    expect(ca.isCa).toBe(true);
    const days = (ca.notAfter.getTime() - Date.now()) / DAY_MS;
    expect(days).toBeGreaterThan(6.9);
    expect(days).toBeLessThanOrEqual(7);
  });
});

describe('issueWorkerCert', () => {
  it('signs a certificate for a worker added during the run, never outliving the CA', async () => {
    const files = await issueWorkerCert(pki.dir, 'late-3', { nowMs: Date.now() + 3 * DAY_MS });
    expect(statSync(files.key).mode & 0o777).toBe(0o600);
    const m = loadTlsMaterial(files, { role: 'worker', id: 'late-3', nowMs: Date.now() + 3 * DAY_MS });
    expect(m.identity).toEqual({ role: 'worker', id: 'late-3' });
    expect(m.notAfter.getTime()).toBe(readCertificate(readFileSync(join(pki.dir, 'ca.pem'), 'utf8')).notAfter.getTime());
  });

  it('refuses an id the coordinator would not accept', async () => {
    await expect(issueWorkerCert(pki.dir, 'a/b')).rejects.toThrow(InputError);
  });
});

describe('loadTlsMaterial refusals', () => {
  const tryLoad = (fn: () => unknown): TlsConfigError => {
    try {
      fn();
    } catch (err) {
      expect(err).toBeInstanceOf(TlsConfigError);
      return err as TlsConfigError;
    }
    throw new Error('expected a TlsConfigError');
  };

  it('refuses a key that belongs to another certificate, naming the key file', () => {
    const w1 = pki.workers.get('w1')!;
    const err = tryLoad(() => loadTlsMaterial({ ...w1, key: pki.workers.get('w2')!.key }));
    expect(err.file).toBe(pki.workers.get('w2')!.key);
    expect(err.message).toMatch(/expected the private key of the certificate in .*worker-w1\.pem.*got the key of another certificate/);
  });

  it('refuses a certificate from another CA, naming both', () => {
    const err = tryLoad(() => loadTlsMaterial({ ...other.workers.get('w1')!, ca: pki.coordinator.ca }));
    expect(err.file).toBe(other.workers.get('w1')!.cert);
    expect(err.message).toMatch(/expected a certificate signed by the CA in .*got one issued by CN=bertfleet throwaway CA/);
  });

  it('refuses an expired certificate and one not valid yet', () => {
    const w1 = pki.workers.get('w1')!;
    expect(tryLoad(() => loadTlsMaterial(w1, { nowMs: Date.now() + 8 * DAY_MS })).message).toMatch(/expired: valid until .* now /);
    expect(tryLoad(() => loadTlsMaterial(w1, { nowMs: Date.now() - DAY_MS })).message).toMatch(/not valid yet/);
  });

  it('refuses a certificate for another role or another worker id', () => {
    expect(tryLoad(() => loadTlsMaterial(pki.workers.get('w1')!, { role: 'coordinator' })).message).toMatch(/expected a certificate for coordinator, got one for worker w1/);
    expect(tryLoad(() => loadTlsMaterial(pki.workers.get('w1')!, { role: 'worker', id: 'w2' })).message).toMatch(/expected a certificate for worker w2, got one for worker w1/);
  });

  it('refuses a key others may read, a missing file and a file that is not PEM', () => {
    const w1 = pki.workers.get('w1')!;
    const loose = join(pki.dir, 'loose.key');
    copyFileSync(w1.key, loose);
    chmodSync(loose, 0o644);
    expect(tryLoad(() => loadTlsMaterial({ ...w1, key: loose })).message).toMatch(/expected mode 0600 .* got 0644/);
    expect(tryLoad(() => loadTlsMaterial({ ...w1, ca: join(pki.dir, 'nope.pem') })).message).toMatch(/cannot read the CA certificate/);
    const junk = join(pki.dir, 'junk.pem');
    writeFileSync(junk, 'hello');
    expect(tryLoad(() => loadTlsMaterial({ ...w1, cert: junk })).message).toMatch(/expected a PEM certificate/);
  });
});

describe('peerIdentity', () => {
  it('reads the identity from PEM, DER and a PeerCertificate-like object', () => {
    const pem = readFileSync(pki.workers.get('w1')!.cert, 'utf8');
    const der = new X509Certificate(pem).raw;
    expect(peerIdentity(pem)).toEqual({ role: 'worker', id: 'w1' });
    expect(peerIdentity(der)).toEqual({ role: 'worker', id: 'w1' });
    expect(identityOfAuthContext({ sslPeerCertificate: { raw: der } })).toEqual({ role: 'worker', id: 'w1' });
    expect(identityOfAuthContext({})).toBeNull();
  });

  it('refuses a certificate for another id than expected', () => {
    const who = peerIdentity(readFileSync(pki.workers.get('w1')!.cert, 'utf8'));
    expect(() => requireIdentity(who, 'worker', 'w2')).toThrow(/expected worker w2, got worker w1/);
    expect(requireIdentity(who, 'worker', 'w1')).toEqual(who);
  });
});

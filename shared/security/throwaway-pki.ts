/**
 * A throwaway PKI for one local cluster (`bertfleet cluster` given no
 * certificates): a CA (ECDSA P-256, valid 7 days by default), a coordinator
 * certificate (serverAuth + clientAuth, since it is also a client of the
 * reducers), one per reducer and one for nats-server (serverAuth +
 * clientAuth), and one client certificate per worker id naming that id
 * (identity.ts). The CA key stays in the folder so that `issueWorkerCert`
 * can sign for a worker added during the run; there is no certificate good
 * for every worker.
 *
 * Layout of the private folder (mode 0700, every file 0600):
 *
 *     ca.pem ca.key
 *     coordinator.pem coordinator.key
 *     nats.pem nats.key
 *     reducer-<index>.pem reducer-<index>.key
 *     worker-<id>.pem worker-<id>.key
 *
 * Server certificates name localhost, 127.0.0.1, ::1 and the given hosts.
 * Knows nothing of gRPC or NATS: callers read the paths it returns.
 */
import { readFileSync, rmSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { identityCommonName, identityUri, type PeerIdentity } from './identity.js';
import { makePrivateDir, writePrivateFile } from './private-files.js';
import { createCa, issueCertificate, readCertificate, type KeyUsagePurpose, type PemPair } from './x509.js';

export const DEFAULT_PKI_VALIDITY_MS = 7 * 24 * 3600 * 1000;
const LOOPBACK = ['localhost', '127.0.0.1', '::1'];
/** Leaves start a little in the past, so a peer whose clock is slightly behind still accepts them. */
const BACKDATE_MS = 5 * 60 * 1000;

/** Paths of one party's TLS files: the CA to trust, its certificate and key. */
export interface TlsFiles {
  ca: string;
  cert: string;
  key: string;
}

export interface ThrowawayPki {
  /** The private folder (0700); holds the CA key. */
  readonly dir: string;
  readonly coordinator: TlsFiles;
  readonly nats: TlsFiles;
  readonly reducers: readonly TlsFiles[];
  readonly workers: ReadonlyMap<string, TlsFiles>;
  /** Deletes the folder and every key in it. */
  remove(): void;
}

export interface ThrowawayPkiOptions {
  /** Extra names (DNS or IP) the coordinator, reducers and nats-server are reached by. */
  hosts?: readonly string[];
  workerIds?: readonly string[];
  /** Reducer processes of `--reducers K` besides the coordinator: K-1, named 1 .. K-1. */
  reducers?: number;
  validityMs?: number;
  /** Parent of the private folder (default: the OS temp dir). */
  parentDir?: string;
  nowMs?: number;
}

interface Window {
  notBefore: Date;
  notAfter: Date;
}

function windowFrom(nowMs: number, validityMs: number): Window {
  if (!(Number.isInteger(validityMs) && validityMs >= 60_000)) throw new InputError(`PKI validityMs must be an integer >= 60000, got ${validityMs}`);
  return { notBefore: new Date(nowMs - BACKDATE_MS), notAfter: new Date(nowMs + validityMs) };
}

function serverNames(hosts: readonly string[]): { dns: string[]; ips: string[] } {
  const all = [...new Set([...LOOPBACK, ...hosts])];
  return { dns: all.filter((h) => isIP(h) === 0), ips: all.filter((h) => isIP(h) !== 0) };
}

function filesOf(dir: string, name: string): TlsFiles {
  return { ca: join(dir, 'ca.pem'), cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
}

async function issueInto(
  dir: string,
  name: string,
  ca: PemPair,
  who: PeerIdentity,
  purposes: KeyUsagePurpose[],
  names: { dns: string[]; ips: string[] },
  window: Window,
): Promise<TlsFiles> {
  const pair = await issueCertificate(ca, { commonName: identityCommonName(who), uris: [identityUri(who)], ...names, purposes, ...window });
  const files = filesOf(dir, name);
  writePrivateFile(files.key, pair.keyPem);
  writePrivateFile(files.cert, pair.certPem);
  return files;
}

/** Makes the CA and every certificate in a new private folder. */
export async function makeThrowawayPki(o: ThrowawayPkiOptions = {}): Promise<ThrowawayPki> {
  const window = windowFrom(o.nowMs ?? Date.now(), o.validityMs ?? DEFAULT_PKI_VALIDITY_MS);
  const dir = makePrivateDir('bertfleet-pki-', o.parentDir);
  try {
    const ca = await createCa({ commonName: `bertfleet throwaway CA ${new Date(window.notBefore.getTime() + BACKDATE_MS).toISOString()}`, ...window });
    writePrivateFile(join(dir, 'ca.key'), ca.keyPem);
    writePrivateFile(join(dir, 'ca.pem'), ca.certPem);
    const names = serverNames(o.hosts ?? []);
    const both: KeyUsagePurpose[] = ['serverAuth', 'clientAuth'];
    const coordinator = await issueInto(dir, 'coordinator', ca, { role: 'coordinator' }, both, names, window);
    const nats = await issueInto(dir, 'nats', ca, { role: 'nats' }, both, names, window);
    const reducers: TlsFiles[] = [];
    for (let i = 1; i <= (o.reducers ?? 0); i++) reducers.push(await issueInto(dir, `reducer-${i}`, ca, { role: 'reducer', id: String(i) }, both, names, window));
    const workers = new Map<string, TlsFiles>();
    for (const id of o.workerIds ?? []) workers.set(id, await issueInto(dir, `worker-${id}`, ca, { role: 'worker', id }, ['clientAuth'], { dns: [], ips: [] }, window));
    return { dir, coordinator, nats, reducers, workers, remove: () => rmSync(dir, { recursive: true, force: true }) };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

function caOf(pkiDir: string): PemPair {
  return { certPem: readFileSync(join(pkiDir, 'ca.pem'), 'utf8'), keyPem: readFileSync(join(pkiDir, 'ca.key'), 'utf8') };
}

/** A leaf's window from now, ending no later than its CA. */
function leafWindow(ca: PemPair, o: { validityMs?: number; nowMs?: number }): Window {
  const w = windowFrom(o.nowMs ?? Date.now(), o.validityMs ?? DEFAULT_PKI_VALIDITY_MS);
  const caEnd = readCertificate(ca.certPem).notAfter;
  return { notBefore: w.notBefore, notAfter: w.notAfter > caEnd ? caEnd : w.notAfter };
}

/**
 * Signs a client certificate for worker `workerId` with the CA kept in
 * `pkiDir` (a worker that joins during the run); replaces an earlier one.
 * Valid from now for `validityMs` (default 7 days), never past the CA.
 */
export async function issueWorkerCert(pkiDir: string, workerId: string, o: { validityMs?: number; nowMs?: number } = {}): Promise<TlsFiles> {
  const ca = caOf(pkiDir);
  return issueInto(pkiDir, `worker-${workerId}`, ca, { role: 'worker', id: workerId }, ['clientAuth'], { dns: [], ips: [] }, leafWindow(ca, o));
}

/** Signs a reducer's certificate (serverAuth + clientAuth) naming `hosts` besides loopback. */
export async function issueReducerCert(pkiDir: string, index: number, o: { hosts?: readonly string[]; validityMs?: number; nowMs?: number } = {}): Promise<TlsFiles> {
  const ca = caOf(pkiDir);
  return issueInto(pkiDir, `reducer-${index}`, ca, { role: 'reducer', id: String(index) }, ['serverAuth', 'clientAuth'], serverNames(o.hosts ?? []), leafWindow(ca, o));
}

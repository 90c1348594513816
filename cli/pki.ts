/**
 * `bertfleet pki init` and `bertfleet pki add-worker`: the certificates and
 * NATS credentials a deployment needs (Kubernetes Secrets, your own
 * machines), made the way `bertfleet cluster` makes its throwaway ones
 * (shared/security/throwaway-pki.ts, shared/control/nats-auth.ts), written
 * into a new private folder (0700, files 0600). The CA key stays there, for
 * `add-worker`; keep the folder offline and put only the other files into
 * Secrets.
 */
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { writeNatsAuth } from '../shared/control/nats-auth.js';
import { PEER_ID } from '../shared/security/identity.js';
import { issueWorkerCert, makeThrowawayPki } from '../shared/security/throwaway-pki.js';
import { intFlag, parseFlags, requiredString, UsageError } from './args.js';

const HELP = `usage: bertfleet pki init --out DIR [--workers N | --worker-ids ID,...] [options]
       bertfleet pki add-worker --pki DIR --worker-id ID [--validity-days D]

init: makes, in the new folder DIR (mode 0700, every file 0600), a CA (ca.pem, ca.key),
certificates for the coordinator, nats-server, each reducer and each worker, a nats-server
config with one user per role (nats.conf) and a NATS credentials file per role.

  --out DIR              the folder to create (must not exist)
  --workers N            worker certificates for ids <prefix>0 .. <prefix>N-1 (default 2):
                         the pod names of the worker StatefulSet
  --worker-prefix P      (default bertfleet-worker-)
  --worker-ids ID,...    explicit worker ids instead of --workers
  --reducers K           as the coordinator's --reducers: K-1 reducer certificates (default 1: none)
  --hosts NAME,...       DNS names or IPs the coordinator, reducers and nats-server are reached
                         by, besides localhost (default: the k8s/ service names)
  --nats-tls-dir DIR     where nats-server will find nats.pem, nats.key and ca.pem; written into
                         nats.conf (default /etc/nats/tls, the k8s/ mount; give DIR for local use)
  --validity-days D      certificate lifetime (default 30)

add-worker: signs one more worker certificate (worker-<ID>.pem, .key) with the CA in DIR.`;

/** The k8s/ services: the coordinator, nats and every reducer pod of up to 8. */
const K8S_HOSTS = [
  'bertfleet-coordinator',
  'bertfleet-nats',
  ...Array.from({ length: 8 }, (_, i) => `bertfleet-reducer-${i}.bertfleet-reducer`),
];

function list(raw: unknown): string[] | undefined {
  return typeof raw === 'string' ? raw.split(',').map((s) => s.trim()).filter((s) => s !== '') : undefined;
}

function validityMs(values: Record<string, unknown>): number {
  return (intFlag(values, 'validity-days', { min: 1, max: 3650 }) ?? 30) * 24 * 3600 * 1000;
}

function workerIdsOf(values: Record<string, unknown>): string[] {
  const ids = list(values['worker-ids']) ?? Array.from({ length: intFlag(values, 'workers', { min: 0 }) ?? 2 }, (_, i) => `${(values['worker-prefix'] as string | undefined) ?? 'bertfleet-worker-'}${i}`);
  for (const id of ids) if (!PEER_ID.test(id)) throw new UsageError(`worker ids must be 1-128 characters of [A-Za-z0-9_.-], got "${id}"`);
  return ids;
}

async function init(values: Record<string, unknown>): Promise<number> {
  const out = resolve(requiredString(values, 'out'));
  if (existsSync(out)) throw new UsageError(`--out ${out} exists; give a new folder`);
  const reducers = intFlag(values, 'reducers', { min: 1, max: 64 }) ?? 1;
  const natsDir = (values['nats-tls-dir'] as string | undefined) ?? '/etc/nats/tls';
  mkdirSync(dirname(out), { recursive: true });
  const pki = await makeThrowawayPki({
    parentDir: dirname(out), workerIds: workerIdsOf(values), reducers: reducers - 1, hosts: list(values['hosts']) ?? K8S_HOSTS, validityMs: validityMs(values),
  });
  try {
    renameSync(pki.dir, out);
  } catch (err) {
    pki.remove();
    throw err;
  }
  try {
    writeNatsAuth(out, { tls: { certFile: join(natsDir, 'nats.pem'), keyFile: join(natsDir, 'nats.key'), caFile: join(natsDir, 'ca.pem') } });
  } catch (err) {
    rmSync(out, { recursive: true, force: true });
    throw err;
  }
  process.stdout.write(
    `wrote ${out}: ca.pem ca.key (keep offline), coordinator, nats, ${pki.reducers.length} reducer and ${pki.workers.size} worker certificates, ` +
      `nats.conf, nats-coordinator.creds.json, nats-worker.creds.json\n`,
  );
  return 0;
}

async function addWorker(values: Record<string, unknown>): Promise<number> {
  const dir = resolve(requiredString(values, 'pki'));
  const id = requiredString(values, 'worker-id');
  if (!PEER_ID.test(id)) throw new UsageError(`--worker-id must be 1-128 characters of [A-Za-z0-9_.-], got "${id}"`);
  if (!existsSync(join(dir, 'ca.key'))) throw new UsageError(`--pki ${dir}: no ca.key there; give the folder \`bertfleet pki init\` made`);
  const files = await issueWorkerCert(dir, id, { validityMs: validityMs(values) });
  process.stdout.write(`wrote ${files.cert} and ${files.key}\n`);
  return 0;
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const values = parseFlags(rest, {
    out: { type: 'string' }, workers: { type: 'string' }, 'worker-prefix': { type: 'string' }, 'worker-ids': { type: 'string' },
    reducers: { type: 'string' }, hosts: { type: 'string' }, 'nats-tls-dir': { type: 'string' }, 'validity-days': { type: 'string' },
    pki: { type: 'string' }, 'worker-id': { type: 'string' },
  }, HELP);
  if (!values) return 0;
  if (sub === 'init') return init(values);
  if (sub === 'add-worker') return addWorker(values);
  if (sub === undefined || sub === '--help' || sub === '-h') {
    process.stdout.write(`${HELP}\n`);
    return sub === undefined ? 2 : 0;
  }
  throw new UsageError(`bertfleet pki: expected init or add-worker, got "${sub}"\n\n${HELP}`);
}

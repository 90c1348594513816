/**
 * Authentication and per-role permissions for the control plane's
 * nats-server: one nkey user per role in one JetStream-enabled account, a
 * generated server config (`nats-server -c`), and a credentials file per role
 * for connect.ts. The server config holds only public keys; each credentials
 * file (JSON, mode 0600) holds one role's seed.
 *
 * What each role may do (subject permissions; everything else is refused):
 *
 * - coordinator, publish: `$JS.API.INFO`; for buckets `bertfleet_runs` and
 *   `bertfleet_leases`: STREAM.INFO and STREAM.CREATE (open or create the
 *   bucket), DIRECT.GET and STREAM.MSG.GET (get), CONSUMER.CREATE and
 *   `$JS.FC` (watch), `$KV.<bucket>.>` (put, create, update, delete);
 *   events `bertfleet.*.events.>`. Subscribe: `_INBOX_coordinator.>`, events.
 * - worker, publish: `$JS.API.INFO`; for bucket `bertfleet_runs` only:
 *   STREAM.INFO, DIRECT.GET, STREAM.MSG.GET, CONSUMER.CREATE, `$JS.FC`.
 *   Subscribe: `_INBOX_worker.>`, events.
 *
 * A worker cannot write a key (`$KV.…`), create, change, purge or delete a
 * stream, or publish an event; it cannot read the lease bucket. Each role
 * has its own reply-inbox prefix and may subscribe only there, so a worker
 * cannot read (or guess the subjects of) the coordinator's JetStream replies.
 * These are exactly the subjects nats.js 2.29's KV client sends for what
 * run-state.ts, run-state-watch.ts, lease.ts and subjects.ts do (found by
 * tracing a server, checked by test/integration/nats-auth.test.ts). A worker
 * must start after the coordinator created the run-state bucket: it may not
 * create it.
 *
 * Left open, by nats-server 2.9's design: CONSUMER.CREATE (needed to watch)
 * lets a worker choose a consumer's delivery subject, so it can have the run
 * state's own entries delivered to a subject others listen on (say an event
 * subject, where they fail validation and are skipped); the server refuses a
 * delivery into the bucket's own subjects. Workers share one user, so one
 * worker could read another's replies, which hold only the run state.
 *
 * Knows nothing of processes: nats-server.ts runs the config, connect.ts
 * reads the credentials.
 */
import { nkeys } from 'nats';
import { join } from 'node:path';
import { writePrivateFile } from '../security/private-files.js';
import type { NatsCredentialsFile } from './connect.js';
import { LEASE_BUCKET } from './lease.js';
import { RUN_STATE_BUCKET } from './run-state.js';

export const NATS_ROLES = ['coordinator', 'worker'] as const;
export type NatsRole = (typeof NATS_ROLES)[number];
export const NATS_ACCOUNT = 'BERTFLEET';

/** The credentials file's content (connect.ts reads it): how one role connects; `nkey_seed` is the secret. */
export interface NatsCredentials extends NatsCredentialsFile {
  role: NatsRole;
}

export interface NatsPermissions {
  publish: string[];
  subscribe: string[];
}

export interface NatsBuckets {
  runs: string;
  leases: string;
}

const DEFAULT_BUCKETS: NatsBuckets = { runs: RUN_STATE_BUCKET, leases: LEASE_BUCKET };
export const EVENTS_SUBJECTS = 'bertfleet.*.events.>';

export function inboxPrefixOf(role: NatsRole): string {
  return `_INBOX_${role}`;
}

/** Reading one KV bucket: open it (stream info), get (direct or by message), watch (ordered push consumer). */
function kvRead(bucket: string): string[] {
  const stream = `KV_${bucket}`;
  return [
    `$JS.API.STREAM.INFO.${stream}`,
    `$JS.API.DIRECT.GET.${stream}`,
    `$JS.API.DIRECT.GET.${stream}.>`,
    `$JS.API.STREAM.MSG.GET.${stream}`,
    `$JS.API.CONSUMER.CREATE.${stream}`,
    `$JS.API.CONSUMER.CREATE.${stream}.>`,
    `$JS.FC.${stream}.>`,
  ];
}

/** Writing one KV bucket: create it if absent, put/update/delete its keys. */
function kvWrite(bucket: string): string[] {
  return [`$JS.API.STREAM.CREATE.KV_${bucket}`, `$KV.${bucket}.>`];
}

export function natsPermissions(role: NatsRole, buckets: NatsBuckets = DEFAULT_BUCKETS): NatsPermissions {
  const inbox = `${inboxPrefixOf(role)}.>`;
  if (role === 'worker') return { publish: ['$JS.API.INFO', ...kvRead(buckets.runs)], subscribe: [inbox, EVENTS_SUBJECTS] };
  return {
    publish: ['$JS.API.INFO', ...kvRead(buckets.runs), ...kvWrite(buckets.runs), ...kvRead(buckets.leases), ...kvWrite(buckets.leases), EVENTS_SUBJECTS],
    subscribe: [inbox, EVENTS_SUBJECTS],
  };
}

/** TLS for client connections to nats-server: its certificate and key, and the CA whose client certificates it requires. */
export interface NatsServerTls {
  certFile: string;
  keyFile: string;
  caFile: string;
}

const q = (s: string): string => JSON.stringify(s);
const list = (xs: readonly string[]): string => `[${xs.map(q).join(', ')}]`;

/**
 * The nats-server config text: one account with JetStream enabled holding
 * one nkey user per role with its permissions, and (when given) TLS with
 * client certificates required. No anonymous user: a client without
 * credentials is refused. JetStream itself and its store directory come from
 * nats-server.ts's flags (`-js -sd`; the server refuses a store_dir given
 * twice).
 */
export function natsServerConfig(o: { users: readonly { nkey: string; permissions: NatsPermissions }[]; tls?: NatsServerTls }): string {
  const users = o.users.map(
    (u) => `      { nkey: ${q(u.nkey)}, permissions: { publish: { allow: ${list(u.permissions.publish)} }, subscribe: { allow: ${list(u.permissions.subscribe)} } } }`,
  );
  const lines = [
    '# Generated by bertfleet (shared/control/nats-auth.ts); holds public keys only.',
    'accounts {',
    `  ${NATS_ACCOUNT} {`,
    '    jetstream: enabled',
    '    users: [',
    users.join(',\n'),
    '    ]',
    '  }',
    '}',
  ];
  if (o.tls !== undefined) {
    lines.push(`tls { cert_file: ${q(o.tls.certFile)}, key_file: ${q(o.tls.keyFile)}, ca_file: ${q(o.tls.caFile)}, verify: true, timeout: 5 }`);
  }
  return `${lines.join('\n')}\n`;
}

export interface NatsAuthFiles {
  /** The server config (mode 0600): pass to startNatsServer's `configFile`. */
  configFile: string;
  /** One credentials file (mode 0600) per role: pass to connectControl's `credentialsFile`. */
  credentials: Record<NatsRole, string>;
}

/**
 * Makes a fresh nkey per role and writes, in `dir` (a private folder, e.g.
 * the throwaway PKI's), `nats.conf` and `nats-<role>.creds.json`.
 */
export function writeNatsAuth(dir: string, o: { tls?: NatsServerTls; buckets?: NatsBuckets } = {}): NatsAuthFiles {
  const users: { nkey: string; permissions: NatsPermissions }[] = [];
  const credentials = {} as Record<NatsRole, string>;
  for (const role of NATS_ROLES) {
    const kp = nkeys.createUser();
    users.push({ nkey: kp.getPublicKey(), permissions: natsPermissions(role, o.buckets) });
    const creds: NatsCredentials = { role, nkey_seed: new TextDecoder().decode(kp.getSeed()), inbox_prefix: inboxPrefixOf(role) };
    credentials[role] = join(dir, `nats-${role}.creds.json`);
    writePrivateFile(credentials[role], `${JSON.stringify(creds, null, 2)}\n`);
    kp.clear();
  }
  const configFile = join(dir, 'nats.conf');
  writePrivateFile(configFile, natsServerConfig({ users, ...(o.tls !== undefined && { tls: o.tls }) }));
  return { configFile, credentials };
}

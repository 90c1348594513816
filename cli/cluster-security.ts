/**
 * The security of one `bertfleet cluster`: a throwaway PKI (a CA, a
 * certificate for the coordinator, nats-server, each reducer and each worker
 * it starts; shared/security/throwaway-pki.ts) and nats-server's generated
 * users (shared/control/nats-auth.ts), all in one private folder (0700, files
 * 0600) that the cluster removes when it stops. Its children get paths as
 * flags, never a secret. `--insecure` clusters have none of it.
 *
 * The CA key stays in the folder so that `bertfleet worker --join OUTPUT`
 * can sign a certificate for a worker that joins later: whoever can read the
 * folder (the user who started the cluster, and root) can add workers.
 */
import { writeNatsAuth, type NatsAuthFiles } from '../shared/control/nats-auth.js';
import { makeThrowawayPki, type ThrowawayPki, type TlsFiles } from '../shared/security/throwaway-pki.js';

export interface ClusterSecurity {
  pki: ThrowawayPki;
  nats: NatsAuthFiles;
}

/** The PKI and NATS users for `workerIds` and `reducers` reducer processes, in a private folder under `parentDir` (default: the OS temp dir). */
export async function makeClusterSecurity(o: { parentDir?: string; workerIds: readonly string[]; reducers: number }): Promise<ClusterSecurity> {
  const pki = await makeThrowawayPki({ ...(o.parentDir !== undefined && { parentDir: o.parentDir }), workerIds: o.workerIds, reducers: o.reducers, hosts: ['localhost', '127.0.0.1'] });
  try {
    const nats = writeNatsAuth(pki.dir, { tls: { certFile: pki.nats.cert, keyFile: pki.nats.key, caFile: pki.nats.ca } });
    return { pki, nats };
  } catch (err) {
    pki.remove();
    throw err;
  }
}

export function tlsArgs(files: TlsFiles): string[] {
  return ['--tls-ca', files.ca, '--tls-cert', files.cert, '--tls-key', files.key];
}

/** The flags of the coordinator: its certificate and NATS credentials, or --insecure. */
export function coordinatorSecurityArgs(s: ClusterSecurity | null): string[] {
  return s === null ? ['--insecure'] : [...tlsArgs(s.pki.coordinator), '--nats-creds', s.nats.credentials.coordinator];
}

/** The flags of reducer `index` (1 .. K-1). */
export function reducerSecurityArgs(s: ClusterSecurity | null, index: number): string[] {
  if (s === null) return ['--insecure'];
  const files = s.pki.reducers[index - 1];
  if (files === undefined) throw new Error(`no certificate for reducer ${index}: the PKI was made for ${s.pki.reducers.length} reducers`);
  return tlsArgs(files);
}

/** The flags of worker `workerId`, one of those the PKI was made for. */
export function workerSecurityArgs(s: ClusterSecurity | null, workerId: string): string[] {
  if (s === null) return ['--insecure'];
  const files = s.pki.workers.get(workerId);
  if (files === undefined) throw new Error(`no certificate for worker ${workerId}: the PKI was made for ${[...s.pki.workers.keys()].join(', ')}`);
  return [...tlsArgs(files), '--nats-creds', s.nats.credentials.worker];
}

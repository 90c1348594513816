/**
 * Security on for tests that start `bertfleet coordinator`, `worker` and
 * `reducer` processes themselves: a throwaway PKI with a certificate per
 * worker id and reducer, nats-server users, and the flags that hand each
 * process its files (cli/cluster-security.ts, as `bertfleet cluster` does).
 * `startNats()` runs nats-server with the generated config (TLS and users);
 * pass `storeDir` and `port` to restart it in place. `remove()` deletes the
 * keys.
 */
import { coordinatorSecurityArgs, makeClusterSecurity, reducerSecurityArgs, workerSecurityArgs, type ClusterSecurity } from '../../cli/cluster-security.js';
import { startNats, type TestNats } from './nats.js';

export interface TestSecurity {
  readonly security: ClusterSecurity;
  /** --tls-* and --nats-creds of the coordinator. */
  readonly coordinator: string[];
  worker(id: string): string[];
  /** Reducer 1 .. K-1. */
  reducer(index: number): string[];
  startNats(opts?: { storeDir?: string; port?: number }): Promise<TestNats>;
  remove(): void;
}

export async function makeTestSecurity(o: { workerIds: readonly string[]; reducers?: number }): Promise<TestSecurity> {
  const security = await makeClusterSecurity({ workerIds: o.workerIds, reducers: o.reducers ?? 0 });
  return {
    security,
    coordinator: coordinatorSecurityArgs(security),
    worker: (id) => workerSecurityArgs(security, id),
    reducer: (index) => reducerSecurityArgs(security, index),
    startNats: (opts = {}) => startNats({ ...opts, configFile: security.nats.configFile }),
    remove: () => security.pki.remove(),
  };
}

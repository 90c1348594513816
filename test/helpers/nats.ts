/**
 * A real nats-server with JetStream for integration tests, on loopback, in a
 * fresh store directory. `stop()` ends it and removes the directory unless
 * asked to keep it (to restart on the same store). As a last resort, a test
 * process that exits without stopping it SIGKILLs it, so no run leaves orphans.
 */
import { rmSync } from 'node:fs';
import { writeNatsAuth, type NatsAuthFiles, type NatsServerTls } from '../../shared/control/nats-auth.js';
import { startNatsServer, type NatsServerHandle } from '../../shared/control/nats-server.js';
import { silentLogger, type Logger } from '../../shared/log.js';
import { makePrivateDir } from '../../shared/security/private-files.js';
import { makeTempDir } from './tmp.js';

export interface TestNats extends NatsServerHandle {
  /** Stops the server; the store directory is removed unless `keepStore`. */
  stop(opts?: { graceMs?: number; keepStore?: boolean }): Promise<void>;
}

const live = new Set<number>();
process.on('exit', () => {
  for (const pid of live) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone: nothing left to clean up.
    }
  }
});

/** Starts nats-server; pass `storeDir` and `port` to restart a stopped one in place. */
export async function startNats(opts: { storeDir?: string; port?: number; log?: Logger; configFile?: string } = {}): Promise<TestNats> {
  const tmp = opts.storeDir === undefined ? await makeTempDir('nats') : undefined;
  const storeDir = opts.storeDir ?? tmp!.dir;
  const server = await startNatsServer({
    storeDir,
    port: opts.port ?? 0,
    log: opts.log ?? silentLogger(),
    ...(opts.configFile !== undefined && { configFile: opts.configFile }),
  });
  live.add(server.pid);
  return {
    ...server,
    stop: async ({ graceMs, keepStore = false } = {}) => {
      await server.stop(graceMs === undefined ? {} : { graceMs });
      live.delete(server.pid);
      if (!keepStore && tmp !== undefined) await tmp.remove();
    },
  };
}

export interface TestNatsWithAuth extends TestNats {
  /** The generated server config and one credentials file per role (in a private folder removed by `stop`). */
  auth: NatsAuthFiles;
}

/**
 * Starts nats-server with nats-auth.ts's generated users and permissions
 * (and TLS requiring client certificates when `tls` is given).
 */
export async function startNatsWithAuth(opts: { tls?: NatsServerTls; log?: Logger } = {}): Promise<TestNatsWithAuth> {
  const store = await makeTempDir('nats');
  const secrets = makePrivateDir('bertfleet-nats-auth-');
  const auth = writeNatsAuth(secrets, opts.tls !== undefined ? { tls: opts.tls } : {});
  let server: TestNats;
  try {
    server = await startNats({ storeDir: store.dir, configFile: auth.configFile, ...(opts.log !== undefined && { log: opts.log }) });
  } catch (err) {
    rmSync(secrets, { recursive: true, force: true });
    await store.remove();
    throw err;
  }
  return {
    ...server,
    auth,
    stop: async (o = {}) => {
      await server.stop(o);
      if (o.keepStore !== true) {
        await store.remove();
        rmSync(secrets, { recursive: true, force: true });
      }
    },
  };
}

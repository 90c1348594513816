/**
 * Runs a real `nats-server` with JetStream as a child process: for tests, for
 * `bertfleet cluster` on one machine, and anywhere no NATS is provided. Finds
 * the binary, starts it on loopback (a chosen port, or one it picks itself),
 * resolves once its log says it is ready, and stops it with SIGTERM, then
 * SIGKILL after a grace period (shared/process/kill-with-grace.ts). On request
 * it runs in a process group of its own (a terminal's Ctrl-C reaches only the
 * parent, which stops it last) and under a parent-death signal (it ends when
 * its parent is killed). `launchNatsServer` hands out the process before it
 * is ready, for a supervisor (shared/process/supervisor.ts) to watch.
 *
 * With `configFile` it runs a generated config (users, permissions, TLS:
 * nats-auth.ts); without, it accepts anyone (tests, `--insecure`).
 *
 * Knows nothing of bertfleet's subjects or run state, nor of the environment:
 * the caller passes the PATH to search if it wants one searched.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';
import { BertfleetError, ConfigError, UnreachableError } from '../errors.js';
import type { Logger } from '../log.js';
import { exitOf, killNow, killWithGrace, type ChildExit } from '../process/kill-with-grace.js';
import { withParentDeathSignal } from '../process/parent-death.js';

/** Where Debian's package `nats-server` and common manual installs put it. */
export const NATS_SERVER_CANDIDATES = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'];

export interface NatsServerOptions {
  /** JetStream store directory; reuse it across restarts to keep streams and KV. */
  storeDir: string;
  /** 0 or absent: nats-server picks a free port itself (`-p -1`), read back from its log. */
  port?: number;
  host?: string;
  /** Explicit binary; otherwise `searchPath` (a PATH-style list), then NATS_SERVER_CANDIDATES. */
  binaryPath?: string;
  searchPath?: string;
  readyTimeoutMs?: number;
  /** Its own process group, so a Ctrl-C sent to ours does not reach it. */
  detached?: boolean;
  /** SIGTERM it when this process dies, even by SIGKILL (via setpriv, when installed). */
  dieWithParent?: boolean;
  /**
   * A config file (`nats-server -c`), e.g. nats-auth.ts's users, permissions
   * and TLS. The flags for store, host and port still apply and win over it.
   */
  configFile?: string;
  log: Logger;
}

export interface NatsServerHandle {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly pid: number;
  readonly storeDir: string;
  /** How the process ended, once it has. */
  readonly exited: Promise<ChildExit>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. Idempotent. */
  stop(opts?: { graceMs?: number }): Promise<void>;
}

/** The nats-server binary to run; throws ConfigError naming where it looked. */
export function findNatsServerBinary(opts: { binaryPath?: string; searchPath?: string } = {}): string {
  const candidates = opts.binaryPath !== undefined
    ? [opts.binaryPath]
    : [...(opts.searchPath ?? '').split(delimiter).filter((d) => d !== '').map((d) => join(d, 'nats-server')), ...NATS_SERVER_CANDIDATES];
  for (const c of candidates) {
    try {
      accessSync(c, fsConstants.X_OK);
      return c;
    } catch {
      // Not there or not executable: try the next candidate; all are named below if none fits.
    }
  }
  throw new ConfigError([
    `nats-server not found (looked in ${candidates.join(', ')}); install Debian package nats-server (apt-get install nats-server) or pass its path`,
  ]);
}

export async function startNatsServer(opts: NatsServerOptions): Promise<NatsServerHandle> {
  return launchNatsServer(opts).ready;
}

/** Spawns nats-server; `ready` resolves with its handle, or rejects (the process killed) when it cannot start. */
export function launchNatsServer(opts: NatsServerOptions): { child: ChildProcess; ready: Promise<NatsServerHandle> } {
  const binary = findNatsServerBinary(opts);
  const host = opts.host ?? '127.0.0.1';
  const portArg = opts.port === undefined || opts.port === 0 ? '-1' : String(opts.port);
  const log = opts.log.child({ component: 'nats-server' });
  const args = [...(opts.configFile !== undefined ? ['-c', opts.configFile] : []), '-js', '-sd', opts.storeDir, '-a', host, '-p', portArg];
  const cmd = opts.dieWithParent === true ? withParentDeathSignal(binary, args, { ...(opts.searchPath !== undefined && { searchPath: opts.searchPath }) }) : { command: binary, args };
  const child = spawn(cmd.command, cmd.args, { stdio: ['ignore', 'ignore', 'pipe'], detached: opts.detached === true });
  const exited = exitOf(child);
  const ready = waitUntilReady(child, opts.readyTimeoutMs ?? 10_000).then(
    (port): NatsServerHandle => {
      const pid = child.pid!;
      log.info({ pid, host, port, storeDir: opts.storeDir, configFile: opts.configFile ?? null }, 'nats-server ready');
      return {
        url: `nats://${host}:${port}`, host, port, pid, storeDir: opts.storeDir, exited,
        stop: async ({ graceMs = 5_000 } = {}) => {
          await killWithGrace(child, { graceMs });
          log.info({ pid }, 'nats-server stopped');
        },
      };
    },
    async (err: unknown) => {
      killNow(child);
      await exited;
      throw err;
    },
  );
  return { child, ready };
}

/**
 * Reads the server's log (stderr) until it has printed its client port and
 * "Server is ready"; rejects with the last lines when it exits or times out.
 */
function waitUntilReady(child: ChildProcess, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const tail: string[] = [];
    let port: number | undefined;
    const lines = createInterface({ input: child.stderr! });
    const finish = (err: Error | undefined): void => {
      clearTimeout(timer);
      child.off('exit', onExit);
      child.off('error', onError);
      lines.off('line', onLine);
      // Keep draining the pipe so a chatty server never blocks on a full stderr.
      child.stderr!.resume();
      if (err) reject(err);
      else resolve(port!);
    };
    const onLine = (line: string): void => {
      tail.push(line);
      if (tail.length > 20) tail.shift();
      const m = /Listening for client connections on .*:(\d+)\s*$/.exec(line);
      if (m) port = Number(m[1]);
      if (/Server is ready/.test(line) && port !== undefined) finish(undefined);
    };
    const onExit = (code: number | null, signal: string | null): void =>
      finish(new BertfleetError(`nats-server exited before it was ready (code ${code}, signal ${signal}):\n${tail.join('\n')}`));
    const onError = (err: Error): void => finish(new BertfleetError(`nats-server could not be started: ${err.message}`, { cause: err }));
    const timer = setTimeout(
      () => finish(new UnreachableError(`nats-server not ready within ${timeoutMs} ms:\n${tail.join('\n')}`)),
      timeoutMs,
    );
    lines.on('line', onLine);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}

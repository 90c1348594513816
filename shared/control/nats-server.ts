/**
 * Runs a real `nats-server` with JetStream as a child process: for tests, for
 * `bertfleet cluster` on one machine, and anywhere no NATS is provided. Finds
 * the binary, starts it on loopback (a chosen port, or one it picks itself),
 * resolves once its log says it is ready, and stops it with SIGTERM, then
 * SIGKILL after a grace period. Killing it when the parent exits is the
 * caller's job (an entry point's exit handler calling `stop()`), since only
 * entry points install process handlers.
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
  log: Logger;
}

export interface NatsServerHandle {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly pid: number;
  readonly storeDir: string;
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
  const binary = findNatsServerBinary(opts);
  const host = opts.host ?? '127.0.0.1';
  const portArg = opts.port === undefined || opts.port === 0 ? '-1' : String(opts.port);
  const log = opts.log.child({ component: 'nats-server' });
  const child = spawn(binary, ['-js', '-sd', opts.storeDir, '-a', host, '-p', portArg], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let port: number;
  try {
    port = await waitUntilReady(child, opts.readyTimeoutMs ?? 10_000);
  } catch (err) {
    await killAndWait(child, exited, 0);
    throw err;
  }
  const pid = child.pid!;
  log.info({ pid, host, port, storeDir: opts.storeDir }, 'nats-server ready');
  return {
    url: `nats://${host}:${port}`,
    host,
    port,
    pid,
    storeDir: opts.storeDir,
    stop: async ({ graceMs = 5_000 } = {}) => {
      await killAndWait(child, exited, graceMs);
      log.info({ pid }, 'nats-server stopped');
    },
  };
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

async function killAndWait(child: ChildProcess, exited: Promise<void>, graceMs: number): Promise<void> {
  // No pid: spawn itself failed and there is no process to wait for.
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  child.kill(graceMs > 0 ? 'SIGTERM' : 'SIGKILL');
  let timer: NodeJS.Timeout | undefined;
  const forced = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve();
    }, graceMs);
  });
  await Promise.race([exited, forced]);
  clearTimeout(timer);
  await exited;
}

/**
 * How `bertfleet cluster` starts its node children — `bin/bertfleet
 * coordinator` and `bin/bertfleet worker` — as instances a supervisor
 * (shared/process/supervisor.ts) can watch: each in a process group of its
 * own (a terminal's Ctrl-C reaches only the cluster, which stops them in
 * order), with PARENT_PID_ENV set so it stops when the cluster is gone, and
 * its stdout/stderr shared with ours (the coordinator's summary goes to our
 * stdout as is; every log line keeps its own service and workerId). The
 * coordinator is ready once its gRPC port accepts connections.
 */
import { spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { BertfleetError } from '../shared/errors.js';
import { exitOf, hasExited } from '../shared/process/kill-with-grace.js';
import type { Launched } from '../shared/process/supervisor.js';
import { PARENT_PID_ENV } from './signals.js';

export const BERTFLEET_BIN = fileURLToPath(new URL('../bin/bertfleet', import.meta.url));

/** Spawns `bin/bertfleet <args>` as a supervised child of this process; ready at once. */
export function launchBertfleet(args: readonly string[], env: NodeJS.ProcessEnv): Launched {
  const child = spawn(BERTFLEET_BIN, args, {
    stdio: ['ignore', 'inherit', 'inherit'],
    detached: true,
    env: { ...env, [PARENT_PID_ENV]: String(process.pid) },
  });
  const ready = new Promise<void>((resolve, reject) => {
    child.once('spawn', () => resolve());
    child.once('error', (err) => reject(new BertfleetError(`${BERTFLEET_BIN} could not be started: ${err.message}`, { cause: err })));
  });
  return { child, ready };
}

/** Spawns the coordinator; ready once `host:port` accepts a connection, rejected if it exits first. */
export function launchCoordinator(args: readonly string[], listen: { host: string; port: number }, env: NodeJS.ProcessEnv): Launched {
  return launchListening('coordinator', args, listen, env);
}

/** Spawns a reducer (`bertfleet reducer --listen host:port`); ready once it accepts a connection. */
export function launchReducer(args: readonly string[], listen: { host: string; port: number }, env: NodeJS.ProcessEnv): Launched {
  return launchListening('reducer', ['--listen', `${listen.host}:${listen.port}`, ...args], listen, env);
}

function launchListening(command: string, args: readonly string[], listen: { host: string; port: number }, env: NodeJS.ProcessEnv): Launched {
  const launched = launchBertfleet([command, ...args], env);
  const { child } = launched;
  const ready = launched.ready.then(async () => {
    const exited = exitOf(child);
    for (;;) {
      if (await accepts(listen.host, listen.port)) return;
      if (hasExited(child)) {
        const { code, signal } = await exited;
        throw new BertfleetError(`the ${command} exited (code ${code}, signal ${signal}) before listening on ${listen.host}:${listen.port}`);
      }
      await sleep(100);
    }
  });
  return { child, ready };
}

/** A loopback port nothing listened on a moment ago, for a child to bind (and rebind on restart). */
export function freeLoopbackPort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

/** True when a TCP connection to host:port is accepted (it is closed at once). */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.setTimeout(1_000);
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    // Refused or timed out: not listening yet; the caller polls again.
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}

/**
 * `bertfleet cluster --workers N`: the README's main command. The same
 * pipeline, flags and output folder as `bertfleet train`, on a local cluster:
 * a real nats-server (temporary store), the coordinator in this process and
 * N `bertfleet worker` processes on loopback. Everything it starts is stopped
 * on success, on error and on Ctrl-C/SIGTERM (workers told to stop, then
 * SIGTERM, then SIGKILL; nats-server likewise), and as a last resort killed
 * when this process exits, so no process or port is left behind.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DistributedExecutor } from '../coordinator/distributed-executor.js';
import { startNatsServer, type NatsServerHandle } from '../shared/control/nats-server.js';
import { intFlag, parseFlags } from './args.js';
import { prepareCoordinator, runAndReport } from './coordinator-run.js';
import { RUN_HELP, runOptions } from './run-flags.js';
import { installSignalHandlers } from './signals.js';
import { WorkerProcesses } from './worker-processes.js';

const HELP = `usage: bertfleet cluster [options]

Pretrains BERT (masked LM + next-sentence prediction), finetunes a classifier
and evaluates it on a local cluster: nats-server, a coordinator and N worker
processes on loopback, all stopped at the end. Same flags, outputs and bytes as
\`bertfleet train\`. With no options: the embedded default on 2 workers.

  --workers N           worker processes (default 2)
${RUN_HELP}`;

export async function run(argv: string[]): Promise<number> {
  const values = parseFlags(argv, { ...runOptions, workers: { type: 'string' } }, HELP);
  if (!values) return 0;
  const workers = intFlag(values, 'workers', { min: 1 }) ?? 2;
  const p = await prepareCoordinator(values, 'cluster');
  const log = p.log;
  let executor: DistributedExecutor | null = null;
  const processes = new WorkerProcesses({
    log,
    extraArgs: ['--log-level', p.logLevel],
    // Workers start after the executor exists (onListening), so it is there to fail.
    onUnexpectedExit: (err) => executor?.fail(err),
  });
  let nats: NatsServerHandle | null = null;
  const killAll = (): void => {
    processes.killNow();
    if (nats !== null) killPid(nats.pid);
  };
  const signals = installSignalHandlers(log, { graceMs: 20_000, onForce: killAll });
  process.on('exit', killAll);
  const store = await mkdtemp(join(tmpdir(), 'bertfleet-nats-'));
  try {
    nats = await startNatsServer({ storeDir: store, port: 0, log, ...(process.env['PATH'] !== undefined && { searchPath: process.env['PATH'] }) });
    const natsUrl = nats.url;
    return await runAndReport(p, {
      listen: { host: '127.0.0.1', port: 0 },
      natsServers: natsUrl,
      expectedWorkers: workers,
      signal: signals.signal,
      onListening: (address) => processes.start(workers, address, natsUrl),
      onExecutor: (ex) => {
        executor = ex;
      },
    });
  } catch (err) {
    if (!signals.signal.aborted) throw err;
    process.stderr.write(`bertfleet cluster: ${(signals.signal.reason as Error).message}; stopped ${workers} workers and nats-server\n`);
    return signals.exitCode();
  } finally {
    await processes.stop(5_000);
    await nats?.stop({ graceMs: 3_000 });
    await rm(store, { recursive: true, force: true });
    process.off('exit', killAll);
    signals.dispose();
  }
}

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone: nothing to kill.
  }
}

/**
 * The local cluster's worker processes: `bin/bertfleet worker` N times on
 * loopback, their log lines passed through to our stderr (each already
 * carries its workerId), the last lines of each kept for error messages. A
 * worker that exits before `stop()` is reported through `onUnexpectedExit`.
 * `stop()` waits for workers that were told to stop, then SIGTERMs and
 * finally SIGKILLs the rest, and resolves only when every process is gone;
 * `killNow()` is the synchronous last resort for an exiting parent.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { BertfleetError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';

export const BERTFLEET_BIN = fileURLToPath(new URL('../bin/bertfleet', import.meta.url));

/** A worker process ended while the run still needed it. */
export class WorkerExitError extends BertfleetError {
  override readonly name = 'WorkerExitError';
  constructor(
    readonly workerId: string,
    readonly exitCode: number | null,
    readonly signalName: string | null,
    tail: readonly string[],
  ) {
    super(`worker ${workerId} exited (code ${exitCode}, signal ${signalName}) before the run ended; its last lines:\n${tail.join('\n')}`);
  }
}

interface Child {
  id: string;
  proc: ChildProcess;
  exited: Promise<void>;
  tail: string[];
}

export interface WorkerProcessOptions {
  log: Logger;
  /** Passed to every worker: --log-level, backend flags. */
  extraArgs: readonly string[];
  onUnexpectedExit: (err: WorkerExitError) => void;
  /** Where worker log lines go; default our stderr. */
  output?: NodeJS.WritableStream;
}

export class WorkerProcesses {
  private readonly children: Child[] = [];
  private stopping = false;
  private readonly log: Logger;

  constructor(private readonly o: WorkerProcessOptions) {
    this.log = o.log.child({ component: 'worker-processes' });
  }

  get pids(): number[] {
    return this.children.map((c) => c.proc.pid).filter((p): p is number => p !== undefined);
  }

  start(count: number, coordinator: string, nats: string): void {
    const width = String(count).length;
    for (let i = 1; i <= count; i++) {
      const id = `worker-${String(i).padStart(width, '0')}`;
      const args = ['worker', '--coordinator', coordinator, '--nats', nats, '--worker-id', id, ...this.o.extraArgs];
      const proc = spawn(BERTFLEET_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      // 'error' alone (no 'exit') is how a failed spawn ends.
      const exited = new Promise<void>((resolve) => {
        proc.once('exit', () => resolve());
        proc.once('error', () => resolve());
      });
      const child: Child = { id, proc, exited, tail: [] };
      for (const stream of [proc.stdout!, proc.stderr!]) {
        createInterface({ input: stream }).on('line', (line) => {
          child.tail.push(line);
          if (child.tail.length > 20) child.tail.shift();
          (this.o.output ?? process.stderr).write(`${line}\n`);
        });
      }
      proc.on('error', (err) => this.log.error({ err, workerId: id }, 'worker process could not start'));
      proc.on('exit', (code, signal) => {
        this.log.info({ workerId: id, pid: proc.pid, code, signal }, 'worker process exited');
        // Exit code 0 only follows a 'done' stop order.
        if (!this.stopping && code !== 0) this.o.onUnexpectedExit(new WorkerExitError(id, code, signal, child.tail));
      });
      this.children.push(child);
      this.log.info({ workerId: id, pid: proc.pid }, 'worker process started');
    }
  }

  /** Waits `graceMs` for workers to leave on their own, then SIGTERM, then SIGKILL. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    const alive = (): Child[] => this.children.filter((c) => c.proc.exitCode === null && c.proc.signalCode === null);
    await this.waitAll(alive(), graceMs);
    for (const c of alive()) c.proc.kill('SIGTERM');
    await this.waitAll(alive(), 3_000);
    for (const c of alive()) {
      this.log.warn({ workerId: c.id, pid: c.proc.pid }, 'worker ignored SIGTERM; killing it');
      c.proc.kill('SIGKILL');
    }
    await Promise.all(this.children.map((c) => c.exited));
  }

  killNow(): void {
    this.stopping = true;
    for (const c of this.children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
  }

  private async waitAll(children: Child[], ms: number): Promise<void> {
    if (children.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(children.map((c) => c.exited)), new Promise((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
  }
}

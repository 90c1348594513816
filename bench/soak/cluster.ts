/**
 * The soak's cluster: one nats-server (restartable on its port and store), a
 * coordinator on a fixed loopback address (restartable with `--resume`), and
 * workers with fresh ids (`w1`, `w2`, ...; a slowed one is `wN-slow`). It
 * follows the coordinator's log for the run's progress (`step done` lines)
 * and notes every process exit the soak did not cause. Knows nothing of
 * which faults exist or when they are injected.
 */
import { createServer } from 'node:net';
import { join } from 'node:path';
import { startNatsServer, type NatsServerHandle } from '../../shared/control/nats-server.js';
import { silentLogger } from '../../shared/log.js';
import { Child, fields } from './child.js';

export const DELAY_ENV = 'BERTFLEET_TEST_DELAY_MS_PER_MICRO_BATCH';

export interface ClusterOptions {
  bin: string;
  /** cwd of every process (its data cache goes to `.cache/` there). */
  cwd: string;
  logDir: string;
  output: string;
  /** Flags describing the run (model, data, steps, seed), without --output. */
  runArgs: string[];
  workers: number;
  pretrainSteps: number;
  stragglerDelayMs: number;
  /** --log-level for the coordinator and the workers (default: theirs, info). */
  logLevel?: string;
}

export interface Progress {
  phase: string;
  step: number;
  /** Steps done over both phases: pretraining steps, then pretrainSteps + finetuning steps. */
  global: number;
  atMs: number;
}

/** Thrown by `whileAlive` when the coordinator exits in a way the soak did not cause. */
export class RunFailedError extends Error {
  override readonly name = 'RunFailedError';
}

export class SoakCluster {
  nats!: NatsServerHandle;
  coordinator!: Child;
  readonly coordinators: Child[] = [];
  readonly workers = new Map<string, Child>();
  readonly allWorkers: Child[] = [];
  readonly unexpectedExits: string[] = [];
  /** Odd but harmless: reported, not failures. */
  readonly notes: string[] = [];
  progress: Progress = { phase: 'starting', step: 0, global: 0, atMs: Date.now() };
  /** When the current coordinator last logged anything. */
  lastLineAtMs = Date.now();
  address = '';
  private nextWorker = 1;
  private natsPort = 0;
  private failRun!: (err: Error) => void;
  private readonly failed: Promise<never>;

  constructor(private readonly o: ClusterOptions) {
    this.failed = new Promise<never>((_, reject) => (this.failRun = reject));
    // Observed through whileAlive; never left unhandled.
    this.failed.catch(() => undefined);
  }

  get natsUrl(): string {
    return `nats://127.0.0.1:${this.natsPort}`;
  }

  get storeDir(): string {
    return join(this.o.cwd, 'nats-store');
  }

  async start(): Promise<void> {
    await this.startNats();
    this.address = `127.0.0.1:${await freePort()}`;
    this.startCoordinator(false);
    for (let i = 0; i < this.o.workers; i++) this.startWorker();
  }

  async startNats(): Promise<void> {
    this.nats = await startNatsServer({ storeDir: this.storeDir, port: this.natsPort, log: silentLogger() });
    this.natsPort = this.nats.port;
  }

  /** A first start, or a restart that resumes from the latest trainer state in the output. */
  startCoordinator(resume: boolean): Child {
    const common = ['coordinator', '--listen', this.address, '--nats', this.natsUrl, ...this.logLevelArgs()];
    const args = resume
      ? [...common, '--workers', '1', '--output', this.o.output, '--resume', '--no-progress']
      : [...common, '--workers', String(this.o.workers), '--output', this.o.output, ...this.o.runArgs];
    const c = this.spawn(`coordinator-${this.coordinators.length + 1}`, args);
    this.coordinator = c;
    this.lastLineAtMs = Date.now();
    this.coordinators.push(c);
    c.onEachLine((line) => this.follow(line));
    void c.exited.then((e) => {
      if (c.sentSignal !== null || e.code === 0) return;
      const what = `${c.name} exited with code ${e.code}, signal ${e.signal}`;
      this.unexpectedExits.push(what);
      this.failRun(new RunFailedError(what));
    });
    return c;
  }

  /** Starts a worker with a fresh id; `slow` ones are delayed per micro-batch (a straggler). */
  startWorker(opts: { slow?: boolean } = {}): string {
    const id = `w${this.nextWorker++}${opts.slow ? '-slow' : ''}`;
    const env = opts.slow ? { [DELAY_ENV]: String(this.o.stragglerDelayMs) } : {};
    const w = this.spawn(id, ['worker', '--coordinator', this.address, '--nats', this.natsUrl, '--worker-id', id, ...this.logLevelArgs()], env);
    this.workers.set(id, w);
    this.allWorkers.push(w);
    void w.exited.then((e) => {
      this.workers.delete(id);
      if (w.sentSignal !== null || e.code === 0) return;
      const what = `worker ${id} exited with code ${e.code}, signal ${e.signal}`;
      // Started as the run ended: it never got to register, and retried the gone coordinator until it gave up.
      if (this.finished && !w.lines.some(isRegistered)) this.notes.push(`${what}; it never registered: the run finished first`);
      else this.unexpectedExits.push(what);
    });
    return id;
  }

  /** Live workers that have registered at least once, in start order. */
  registeredWorkers(): string[] {
    return [...this.workers].filter(([, w]) => w.running && w.sentSignal === null && w.lines.some(isRegistered)).map(([id]) => id);
  }

  hasRegistered(id: string): boolean {
    return this.allWorkers.some((w) => w.name === id && w.lines.some(isRegistered));
  }

  liveWorkerCount(): number {
    return [...this.workers.values()].filter((w) => w.running && w.sentSignal === null).length;
  }

  /** Races `p` against the coordinator failing on its own. */
  whileAlive<T>(p: Promise<T>): Promise<T> {
    return Promise.race([p, this.failed]);
  }

  /** The coordinator has ended the run: it exited 0, or exited (killed) after logging "run finished". */
  get finished(): boolean {
    const exit = this.coordinator.exit;
    return exit !== null && (exit.code === 0 || this.runFinishedLogged());
  }

  /** The current coordinator has logged "run finished" (its outputs are written). */
  runFinishedLogged(): boolean {
    return this.coordinator.lines.some((l) => l.includes('"msg":"run finished"'));
  }

  /** SIGKILLs everything still running, nats-server included; resolves once all have exited. */
  async killAll(): Promise<void> {
    const children = [...this.coordinators, ...this.allWorkers];
    for (const c of children) c.kill('SIGKILL');
    await Promise.all(children.map((c) => c.exited));
    await this.nats?.stop({ graceMs: 2_000 });
  }

  /** --log-level, and --insecure: the soak measures recovery from faults, not security (test/integration/security.test.ts covers that). */
  private logLevelArgs(): string[] {
    return [...(this.o.logLevel === undefined ? [] : ['--log-level', this.o.logLevel]), '--insecure'];
  }

  private spawn(name: string, args: string[], env: NodeJS.ProcessEnv = {}): Child {
    return new Child(name, { bin: this.o.bin, args, cwd: this.o.cwd, logDir: this.o.logDir, env });
  }

  private follow(line: string): void {
    this.lastLineAtMs = Date.now();
    if (!line.includes('"msg":"step done"')) return;
    const f = fields(line);
    if (f === null || typeof f['step'] !== 'number') return;
    const phase = String(f['phase']);
    const global = phase === 'pretrain' ? f['step'] : this.o.pretrainSteps + f['step'];
    this.progress = { phase, step: f['step'], global, atMs: Date.now() };
  }
}

function isRegistered(line: string): boolean {
  return line.includes('"msg":"registered"');
}

/** A loopback TCP port nothing listened on a moment ago. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

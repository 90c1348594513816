/**
 * One emulated pod: its container as a local process group (restartPolicy
 * Always: an exit, or a kill for a failed startup or liveness probe, starts
 * it again after the kubelet's back-off: at once, then 10 s doubling to
 * 5 min, reset after 10 min of running), its probes (k8s-probes.ts), and
 * deletion as the kubelet does it: not ready at once (out of every Service),
 * SIGTERM to the container's main process, SIGKILL to the whole group after
 * terminationGracePeriodSeconds. Every line the container writes (stdout and
 * stderr) goes to the pod's log file and to `lines`, which `waitFor`
 * searches. What to run comes from the emulator (`PodRuntime.plan`), once per
 * container start, so a restart runs the same spec again.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Probe } from './k8s-manifest.js';
import { Prober } from './k8s-probes.js';

export interface ContainerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** SIGKILLed by the emulator after the grace period. */
  killed: boolean;
  /** Why it ended: it exited on its own, the pod was deleted, or a probe failed. */
  reason: 'exited' | 'deleted' | 'probe';
  ranMs: number;
}

export interface ContainerPlan {
  executable: string;
  argv: string[];
  env: Record<string, string>;
  cwd: string;
}

export interface PodRuntime {
  plan(pod: EmulatedPod): ContainerPlan;
  probes: { startup?: Probe; readiness?: Probe; liveness?: Probe };
  localPort(pod: EmulatedPod, port: number | string): number;
  event(pod: EmulatedPod, message: string): void;
  /** Readiness changed or the pod is gone. */
  changed(pod: EmulatedPod): void;
  /** A container could not be started again (its spec could not be run). */
  failed(pod: EmulatedPod, err: Error): void;
}

const live = new Set<number>();
process.on('exit', () => {
  for (const pid of live) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
});

const BACKOFF_FIRST_MS = 10_000;
const BACKOFF_MAX_MS = 300_000;
const BACKOFF_RESET_AFTER_MS = 600_000;

export class EmulatedPod {
  readonly lines: string[] = [];
  readonly exits: ContainerExit[] = [];
  restarts = 0;
  terminating = false;
  readonly gone: Promise<void>;
  private markGone!: () => void;
  private proc: ChildProcess | undefined;
  private prober: Prober | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private backoffMs = 0;
  private startedAt = 0;
  private killReason: ContainerExit['reason'] | undefined;
  private killedHard = false;
  private readonly exitWaiters: Array<(e: ContainerExit) => void> = [];
  private readonly watchers = new Set<{ match: (line: string) => boolean; resolve: (line: string) => void }>();

  constructor(
    readonly name: string,
    readonly ordinal: number,
    /** `<name>.<incarnation>`: a deleted pod's successor has the same name and another id. */
    readonly id: string,
    readonly dir: string,
    readonly logFile: string,
    readonly labels: Readonly<Record<string, string>>,
    readonly mounted: ReadonlySet<string>,
    readonly ports: ReadonlyMap<number, number>,
    readonly graceSeconds: number,
    private readonly rt: PodRuntime,
  ) {
    this.gone = new Promise((resolve) => (this.markGone = resolve));
  }

  get ready(): boolean {
    return !this.terminating && this.prober?.ready === true;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Starts the container (the pod's first start). */
  start(): void {
    const plan = this.rt.plan(this);
    this.startedAt = Date.now();
    this.killReason = undefined;
    this.killedHard = false;
    appendFileSync(this.logFile, `--- ${new Date().toISOString()} ${this.id} container start ${this.restarts}: ${plan.executable} ${plan.argv.join(' ')} (cwd ${plan.cwd}) ---\n`);
    const proc = spawn(plan.executable, plan.argv, { cwd: plan.cwd, env: plan.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.proc = proc;
    if (proc.pid !== undefined) live.add(proc.pid);
    for (const stream of [proc.stdout!, proc.stderr!]) createInterface({ input: stream }).on('line', (line) => this.line(line));
    proc.once('error', (err) => this.line(`[emulator] spawn failed: ${err.message}`));
    proc.once('close', (code, signal) => this.exited(proc, code, signal));
    this.prober = new Prober({
      ...this.rt.probes,
      localPort: (p) => this.rt.localPort(this, p),
      onReadyChange: (ready) => {
        this.rt.event(this, ready ? 'ready' : 'not ready');
        this.rt.changed(this);
      },
      onKill: (reason) => void this.kill('probe', reason),
      event: (m) => this.rt.event(this, m),
    });
    this.prober.start();
  }

  /** Deletes the pod: resolves with the container's last exit once it is gone (undefined if it was not running). */
  async terminate(why: string): Promise<ContainerExit | undefined> {
    if (this.terminating) {
      await this.gone;
      return this.exits.at(-1);
    }
    this.terminating = true;
    clearTimeout(this.restartTimer);
    this.rt.changed(this);
    const exit = this.proc !== undefined ? await this.kill('deleted', why) : undefined;
    this.rt.event(this, 'gone');
    this.markGone();
    this.rt.changed(this);
    return exit;
  }

  /**
   * The first line of this pod (any container start) matching `pattern`, seen
   * before or after the call; only lines from index `from` on count.
   */
  waitFor(pattern: RegExp | ((line: string) => boolean), timeoutMs = 60_000, from = 0): Promise<string> {
    const match = typeof pattern === 'function' ? pattern : (l: string): boolean => pattern.test(l);
    const seen = this.lines.slice(from).find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w = {
        match,
        resolve: (l: string) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      const timer = setTimeout(() => {
        this.watchers.delete(w);
        reject(new Error(`${this.id}: no log line matching ${pattern} within ${timeoutMs} ms; last lines:\n${this.lines.slice(-15).join('\n')}`));
      }, timeoutMs);
      this.watchers.add(w);
    });
  }

  /** The next exit of the container. */
  nextExit(): Promise<ContainerExit> {
    return new Promise((resolve) => this.exitWaiters.push(resolve));
  }

  /** SIGTERM to the main process, SIGKILL to the group after the grace period; resolves with the exit. */
  private async kill(reason: ContainerExit['reason'], why: string): Promise<ContainerExit | undefined> {
    const proc = this.proc;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return this.exits.at(-1);
    this.killReason = reason;
    this.prober?.stop();
    this.rt.event(this, `killing (${why}): SIGTERM, grace ${this.graceSeconds}s`);
    const exit = this.nextExit();
    proc.kill('SIGTERM');
    const hard = setTimeout(() => {
      this.killedHard = true;
      this.rt.event(this, `grace period over: SIGKILL`);
      killGroup(proc.pid!);
    }, this.graceSeconds * 1000);
    const e = await exit;
    clearTimeout(hard);
    return e;
  }

  private line(line: string): void {
    this.lines.push(line);
    appendFileSync(this.logFile, `${line}\n`);
    for (const w of [...this.watchers]) {
      if (w.match(line)) {
        this.watchers.delete(w);
        w.resolve(line);
      }
    }
  }

  private exited(proc: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (proc.pid !== undefined) {
      killGroup(proc.pid); // the container's other processes go with it
      live.delete(proc.pid);
    }
    this.prober?.stop();
    const exit: ContainerExit = { code, signal, killed: this.killedHard, reason: this.killReason ?? 'exited', ranMs: Date.now() - this.startedAt };
    this.exits.push(exit);
    appendFileSync(this.logFile, `--- ${new Date().toISOString()} ${this.id} container exited: ${JSON.stringify(exit)} ---\n`);
    this.rt.event(this, `container exited: code ${code} signal ${signal}${exit.killed ? ' (SIGKILLed)' : ''}`);
    for (const w of this.exitWaiters.splice(0)) w(exit);
    if (this.terminating) return;
    this.scheduleRestart(exit.ranMs);
  }

  /** restartPolicy Always, with the kubelet's crash-loop back-off. */
  private scheduleRestart(ranMs: number): void {
    const delay = ranMs >= BACKOFF_RESET_AFTER_MS ? 0 : this.backoffMs;
    this.backoffMs = ranMs >= BACKOFF_RESET_AFTER_MS ? BACKOFF_FIRST_MS : Math.min(BACKOFF_MAX_MS, Math.max(BACKOFF_FIRST_MS, this.backoffMs * 2));
    this.rt.event(this, `restarting in ${delay / 1000}s (restartPolicy Always)`);
    this.restartTimer = setTimeout(() => {
      if (this.terminating) return;
      this.restarts++;
      try {
        this.start();
      } catch (err) {
        this.rt.failed(this, err as Error); // the pod stays without a container, as after a failed CreateContainer
      }
    }, delay);
  }
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

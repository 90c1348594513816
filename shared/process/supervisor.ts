/**
 * Supervision of one child program (nats-server, the coordinator, a worker):
 * it is started through `launch`, watched, and — when it ends without being
 * asked to, in a way `restartOn` calls a crash — started again, at most
 * `restartLimit.max` times within `restartLimit.windowMs`. A child that was
 * never ready once is not restarted: its first failure is the caller's
 * error (a bad flag, a busy folder), not a crash. `stop()` ends whatever
 * instance runs (or is starting) with a signal, a grace period and SIGKILL,
 * and no exit after a stop is restarted. `ended` tells how it all ended.
 *
 * Lifecycle: 'starting' → 'running' → ('restarting' → 'starting' → …) → 'ended'.
 * Knows nothing of what the program is; logs restarts and gives up loudly.
 */
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { Deferred } from '../async/deferred.js';
import type { Logger } from '../log.js';
import { exitOf, hasExited, killNow, killWithGrace, type ChildExit } from './kill-with-grace.js';

/** One started instance: the process at once, and when it is ready to serve. */
export interface Launched {
  child: ChildProcess;
  /** Settles once it is ready; rejects when it cannot be (having ended or ending the child). */
  ready: Promise<void>;
}

export interface SupervisorOptions {
  /** For logs: 'nats-server', 'coordinator', 'worker-1'. */
  name: string;
  log: Logger;
  /** Starts instance number `attempt` (0 first, then one per restart). */
  launch: (attempt: number) => Launched;
  /** Whether an exit nobody asked for is restarted; default never. */
  restartOn?: (exit: ChildExit) => boolean;
  restartLimit?: { max: number; windowMs: number };
  /** Pause before a restart, so a crash loop does not spin. */
  restartDelayMs?: number;
  /** Each instance once ready (attempt 0 is the first). */
  onReady?: (child: ChildProcess, attempt: number) => void;
}

export type SupervisedEnd =
  /** Stopped by `stop()`. */
  | { kind: 'stopped'; exit: ChildExit }
  /** Exited on its own and not restarted (a clean exit, or no restart wanted). */
  | { kind: 'exited'; exit: ChildExit }
  /** Crashed more often than the restart limit allows, or before it was ever ready. */
  | { kind: 'gave-up'; exit: ChildExit };

export type SupervisorState = 'starting' | 'running' | 'restarting' | 'ended';

export class Supervisor {
  private child: ChildProcess | null = null;
  private stopRequest: { signal: NodeJS.Signals; graceMs: number } | null = null;
  private readonly wake = new AbortController();
  private readonly restarts: number[] = [];
  private everReady = false;
  private stateValue: SupervisorState = 'starting';
  private readonly first = new Deferred<void>();
  private readonly end = new Deferred<SupervisedEnd>();
  private readonly log: Logger;

  /** Launches the first instance; supervision goes on in the background until `ended`. */
  constructor(private readonly o: SupervisorOptions) {
    this.log = o.log.child({ component: 'supervisor', child: o.name });
    this.run().then(
      (end) => this.end.resolve(end),
      (err: unknown) => {
        // `launch` threw (nothing to spawn, e.g. the binary is missing): nothing runs, and nothing will.
        this.stateValue = 'ended';
        this.first.reject(err);
        this.end.reject(err);
      },
    );
  }

  /** How supervision ended; rejects only when `launch` itself throws. */
  get ended(): Promise<SupervisedEnd> {
    return this.end.promise;
  }

  get state(): SupervisorState {
    return this.stateValue;
  }

  /** The running instance's pid, if one runs. */
  get pid(): number | undefined {
    return this.child !== null && !hasExited(this.child) ? this.child.pid : undefined;
  }

  /** Resolves once the first instance is ready; rejects with its error if it never is. */
  get firstReady(): Promise<void> {
    return this.first.promise;
  }

  /** Ends the running (or starting) instance: `signal`, `graceMs`, SIGKILL; no restart follows. */
  async stop(opts: { signal?: NodeJS.Signals; graceMs: number }): Promise<SupervisedEnd> {
    if (this.stopRequest === null) {
      this.stopRequest = { signal: opts.signal ?? 'SIGTERM', graceMs: opts.graceMs };
      this.wake.abort();
      if (this.child !== null && !hasExited(this.child)) {
        const { pid } = this.child;
        const { forced, code, signal } = await killWithGrace(this.child, this.stopRequest);
        if (forced) this.log.warn({ pid, signal: this.stopRequest.signal, graceMs: opts.graceMs }, 'child ignored its stop signal; killed');
        else this.log.info({ pid, code, signal }, 'child stopped');
      }
    }
    return this.end.promise;
  }

  /** SIGKILL now, synchronously: the last resort of a parent that is exiting. */
  killNow(): void {
    this.stopRequest ??= { signal: 'SIGKILL', graceMs: 0 };
    this.wake.abort();
    if (this.child !== null) killNow(this.child);
  }

  private async run(): Promise<SupervisedEnd> {
    for (let attempt = 0; ; attempt++) {
      this.stateValue = 'starting';
      const { child, ready } = this.o.launch(attempt);
      this.child = child;
      const exited = exitOf(child);
      ready.then(
        () => {
          if (hasExited(child)) return;
          this.everReady = true;
          if (this.stateValue === 'starting') this.stateValue = 'running';
          this.first.resolve();
          this.o.onReady?.(child, attempt);
        },
        (err: unknown) => {
          if (!this.everReady) this.first.reject(err);
          else if (this.stopRequest === null) this.log.warn({ err, attempt }, 'restarted child did not become ready');
        },
      );
      const exit = await exited;
      // Let a ready that settled in the same tick as the exit be counted first (its failure was handled above).
      await ready.catch(() => undefined);
      if (this.stopRequest !== null) return this.finish({ kind: 'stopped', exit });
      const crash = this.o.restartOn?.(exit) ?? false;
      if (!crash) return this.finish({ kind: 'exited', exit });
      const restarting = this.everReady && this.withinLimit();
      if (!restarting) {
        if (this.everReady) this.log.warn({ exit, restarts: this.restarts.length, limit: this.o.restartLimit }, 'child crashed too often; giving up');
        return this.finish({ kind: 'gave-up', exit });
      }
      this.stateValue = 'restarting';
      this.restarts.push(Date.now());
      this.log.warn({ exit, restart: this.restarts.length, limit: this.o.restartLimit }, 'child crashed; restarting it');
      // An AbortError here is stop() waking us early: the check below ends supervision.
      await sleep(this.o.restartDelayMs ?? 500, undefined, { signal: this.wake.signal }).catch(() => undefined);
      if (this.stopRequest !== null) return this.finish({ kind: 'stopped', exit });
    }
  }

  private withinLimit(): boolean {
    const limit = this.o.restartLimit ?? { max: 0, windowMs: 0 };
    const since = Date.now() - limit.windowMs;
    while (this.restarts.length > 0 && this.restarts[0]! < since) this.restarts.shift();
    return this.restarts.length < limit.max;
  }

  private finish(end: SupervisedEnd): SupervisedEnd {
    this.stateValue = 'ended';
    this.first.reject(new Error(`${this.o.name} ended before it was ready (code ${end.exit.code}, signal ${end.exit.signal})`));
    return end;
  }
}

/**
 * The run's view from the command line: `--dashboard-port N`,
 * `--dashboard-host HOST` and `--no-dashboard`, and `RunView` — the run's
 * event hub (coordinator/run-events.ts), the live dashboard serving it
 * (web/dashboard.ts) when asked for, and at the end OUTPUT/report.html
 * (web/report.ts). `train` and `cluster` serve the dashboard by default on
 * 127.0.0.1 and a free port; `coordinator` only with --dashboard-port (like
 * the health port: several processes on one machine never fight over a
 * default, and a pod's port is chosen in its manifest).
 */
import { RunEvents, type RunStartedEvent } from '../coordinator/run-events.js';
import type { RunInputs } from '../coordinator/run-loop.js';
import type { Logger } from '../shared/log.js';
import { startDashboard, type Dashboard } from '../web/dashboard.js';
import { keepRunEvents, writeReport } from '../web/report.js';
import { intFlag, UsageError, type Options } from './args.js';

export const dashboardOptions: Options = {
  'dashboard-port': { type: 'string' },
  'dashboard-host': { type: 'string' },
  'no-dashboard': { type: 'boolean' },
};

export const DASHBOARD_FLAGS = Object.keys(dashboardOptions);

export function dashboardHelp(byDefault: boolean): string {
  return `  --dashboard-port N    serve the live dashboard (loss, accuracy, throughput, workers, evaluation)
                        on port N (0: a free port); the URL is logged at start
                        (default: ${byDefault ? 'a free port' : 'no dashboard'})
  --dashboard-host HOST interface of the dashboard (default 127.0.0.1)
  --no-dashboard        no dashboard (OUTPUT/report.html is written at the end all the same)`;
}

export interface DashboardChoice {
  host: string;
  port: number;
}

/** Where to serve the dashboard, or null for none; `byDefault`: on without --dashboard-port. */
export function dashboardChoice(values: Record<string, unknown>, byDefault: boolean): DashboardChoice | null {
  const port = intFlag(values, 'dashboard-port', { min: 0, max: 65535 });
  const host = values['dashboard-host'] as string | undefined;
  if (values['no-dashboard'] === true) {
    if (port !== undefined || host !== undefined) throw new UsageError('--no-dashboard with --dashboard-port or --dashboard-host: give one or the other');
    return null;
  }
  if (host === '') throw new UsageError('--dashboard-host must name an interface (an address or a hostname), got ""');
  if (port === undefined && !byDefault) {
    if (host !== undefined) throw new UsageError('--dashboard-host needs --dashboard-port');
    return null;
  }
  return { host: host ?? '127.0.0.1', port: port ?? 0 };
}

/** `http://HOST:PORT/` as a browser on this machine reaches it. */
export function dashboardUrl(c: DashboardChoice): string {
  const host = c.host === '0.0.0.0' || c.host === '::' ? '127.0.0.1' : c.host.includes(':') ? `[${c.host}]` : c.host;
  return `http://${host}:${c.port}/`;
}

/** Prints the dashboard's URL as a plain line when stderr is a terminal (the log line says it too). */
export function announceDashboard(url: string): void {
  if (process.stderr.isTTY) process.stderr.write(`dashboard: ${url}\n`);
}

export interface RunViewOptions {
  outputDir: string;
  log: Logger;
  choice: DashboardChoice | null;
  /** The plain URL line on a terminal (`train`; `cluster` prints its own). */
  announce: boolean;
}

/** The hub, the dashboard (if any) and, at `finish`, the report. */
export class RunView {
  /** The run loop began (a phase was published): the folder is this run's to report on. */
  private began = false;
  /** The outcome was published and the report written (once; a later `finish` only closes the dashboard). */
  private reported = false;

  private constructor(
    readonly events: RunEvents,
    private readonly dashboard: Dashboard | null,
    private readonly o: RunViewOptions,
  ) {
    const off = events.subscribe((e) => {
      if (e.type !== 'phase') return;
      this.began = true;
      off();
    });
  }

  static async open(o: RunViewOptions): Promise<RunView> {
    const events = new RunEvents({ log: o.log });
    const dashboard = o.choice === null ? null : await startDashboard({ ...o.choice, events, output: o.outputDir, log: o.log });
    if (dashboard !== null && o.announce) announceDashboard(dashboard.url);
    return new RunView(events, dashboard, o);
  }

  get url(): string | null {
    return this.dashboard?.url ?? null;
  }

  started(run: Omit<RunStartedEvent, 'type'>): void {
    this.events.publish({ type: 'run', ...run });
  }

  /** The in-process run loop's hooks that publish phases, checkpoints, steps and evaluations (`onStep` also calls `alsoOnStep`). */
  runHooks(alsoOnStep?: RunInputs['onStep']): Pick<RunInputs, 'onPhase' | 'onCheckpoint' | 'onEvaluated' | 'onStep'> {
    const ev = this.events;
    return {
      onPhase: async (phase, step) => ev.phase(phase, step),
      onCheckpoint: (phase, step, dir) => ev.checkpoint(phase, step, dir),
      onEvaluated: (split, metrics) => ev.evaluated(split, metrics),
      onStep: (phase, step, total, loss, info) => {
        alsoOnStep?.(phase, step, total, loss, info);
        ev.step(phase, step, total, loss, info);
      },
    };
  }

  /**
   * Ends the run's view: publishes the outcome, keeps the events beside the
   * run (run-events.jsonl), writes report.html, closes the dashboard. A
   * report that cannot be written is logged, never hides the run's outcome.
   * `keepDashboard` (a coordinator staying up after its run, --when-done
   * stay) leaves the dashboard serving; a later `finish` closes it.
   */
  async finish(outcome: 'finished' | 'failed' | 'stopped', err?: unknown, opts: { keepDashboard?: boolean } = {}): Promise<void> {
    const log = this.o.log.child({ component: 'report' });
    if (this.reported) {
      if (opts.keepDashboard !== true) await this.dashboard?.close();
      return;
    }
    this.reported = true;
    this.events.ended(outcome, err);
    try {
      // A run refused before its loop began (a folder locked by another, the lease held) writes nothing there.
      if (this.began) {
        keepRunEvents(this.o.outputDir, this.events.history());
        log.info({ file: writeReport(this.o.outputDir) }, 'report written');
      }
    } catch (reportErr) {
      log.error({ err: reportErr, output: this.o.outputDir }, 'report not written; `bertfleet report OUTPUT` retries it');
    } finally {
      if (opts.keepDashboard !== true) await this.dashboard?.close();
    }
  }
}

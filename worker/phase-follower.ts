/**
 * The worker's view of the run state in NATS: read once at start, then
 * watched (the watch re-reads after every reconnect, run-state-watch.ts), so a
 * worker learns of a phase change even if it connected after the change was
 * written. The worker loop asks `phase` between tasks and drops a replica of
 * a phase that is over; `onChange` is told of each new phase.
 *
 * Knows nothing of gRPC or training.
 */
import type { ControlConnection } from '../shared/control/connect.js';
import { RunStateReader, type RunPhase, type VersionedRunState } from '../shared/control/run-state.js';
import type { RunStateWatch } from '../shared/control/run-state-watch.js';
import type { Logger } from '../shared/log.js';

export class PhaseFollower {
  private current: VersionedRunState | null = null;
  private loop: Promise<void> = Promise.resolve();

  private constructor(
    private readonly watch: RunStateWatch,
    private readonly log: Logger,
    private readonly onChange: (phase: RunPhase, step: number) => void,
  ) {}

  static async start(
    conn: ControlConnection,
    opts: { runId: string; log: Logger; onChange?: (phase: RunPhase, step: number) => void },
  ): Promise<PhaseFollower> {
    const log = opts.log.child({ component: 'phase-follower' });
    const reader = await RunStateReader.open(conn, { runId: opts.runId, log: opts.log });
    const initial = await reader.read();
    const f = new PhaseFollower(await reader.watch(), log, opts.onChange ?? (() => undefined));
    if (initial !== null) f.take(initial);
    f.loop = f.follow();
    return f;
  }

  /** The latest phase written by the coordinator; null before it wrote any. */
  get phase(): RunPhase | null {
    return this.current?.state.phase ?? null;
  }

  get revision(): number {
    return this.current?.revision ?? 0;
  }

  async stop(): Promise<void> {
    await this.watch.stop();
    await this.loop;
  }

  private async follow(): Promise<void> {
    try {
      for await (const v of this.watch) this.take(v);
    } catch (err) {
      // The gRPC assignments still drive the worker; the watch only speeds up phase switches.
      this.log.error({ err }, 'run state watch ended');
    }
  }

  private take(v: VersionedRunState): void {
    if (this.current !== null && v.revision <= this.current.revision) return;
    const from = this.current?.state.phase ?? null;
    this.current = v;
    if (from !== v.state.phase) {
      this.log.info({ from, to: v.state.phase, step: v.state.step, revision: v.revision }, 'phase changed');
      this.onChange(v.state.phase, v.state.step);
    }
  }
}

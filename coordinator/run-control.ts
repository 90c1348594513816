/**
 * The coordinator's side of the NATS control plane: it alone writes the run
 * state (phase, step, last checkpoint) into the KV bucket, each write naming
 * the revision it replaces, and publishes the events of subjects.ts (worker
 * joined/left, checkpoint written, phase changed, step metrics). Writes are
 * queued one after another, so hooks called back to back never race each
 * other's revision; a failed write is logged and kept as `lastError` for the
 * caller to surface (the run itself goes on: the state is a notice, the
 * gradients flow over gRPC).
 *
 * Knows nothing of gRPC or of how the run is computed.
 */
import type { ControlConnection } from '../shared/control/connect.js';
import { RunStateWriter, type RunPhase, type RunStateInput } from '../shared/control/run-state.js';
import { publishEvent, type EventKind, type EventPayload } from '../shared/control/subjects.js';
import type { Logger } from '../shared/log.js';
import type { MembershipEvents } from './distributed-executor.js';
import type { Member } from './membership.js';

export class RunControl implements MembershipEvents {
  private revision: number | null = null;
  private state: RunStateInput | null = null;
  private queue: Promise<void> = Promise.resolve();
  private lastErr: unknown = null;

  private constructor(
    private readonly conn: ControlConnection,
    private readonly writer: RunStateWriter,
    readonly runId: string,
    private readonly log: Logger,
  ) {}

  static async open(conn: ControlConnection, opts: { runId: string; coordinatorId: string; log: Logger }): Promise<RunControl> {
    const writer = await RunStateWriter.open(conn, opts);
    return new RunControl(conn, writer, opts.runId, opts.log.child({ component: 'run-control', runId: opts.runId }));
  }

  get lastError(): unknown {
    return this.lastErr;
  }

  /** A phase starts (or the run ends): written, then announced. */
  phase(phase: RunPhase, step: number, failure: string | null = null): Promise<void> {
    return this.enqueue(async () => {
      const from = this.state?.phase ?? null;
      await this.write({ phase, step, last_checkpoint: this.state?.last_checkpoint ?? null, failure });
      if (from !== phase) this.publish('phase.changed', { from, to: phase, step, at_ms: Date.now() });
    });
  }

  checkpoint(phase: RunPhase, step: number, path: string): Promise<void> {
    return this.enqueue(async () => {
      await this.write({ phase, step, last_checkpoint: path, failure: null });
      this.publish('checkpoint.written', { phase, step, path, at_ms: Date.now() });
    });
  }

  stepMetrics(payload: Omit<EventPayload<'step.metrics'>, 'at_ms'>): void {
    this.publish('step.metrics', { ...payload, at_ms: Date.now() });
  }

  joined(member: Member): void {
    this.publish('worker.joined', { worker_id: member.id, hostname: member.hostname, pid: member.pid, step: this.state?.step ?? 0, at_ms: Date.now() });
  }

  left(member: Member, detail: string): void {
    this.publish('worker.left', { worker_id: member.id, reason: member.leftReason ?? 'error', detail, at_ms: Date.now() });
  }

  /** Waits for queued writes. */
  async flush(): Promise<void> {
    await this.queue;
  }

  private enqueue(fn: () => Promise<void>): Promise<void> {
    this.queue = this.queue.then(fn).catch((err: unknown) => {
      this.lastErr = err;
      this.log.error({ err }, 'run state write failed');
    });
    return this.queue;
  }

  private async write(next: RunStateInput): Promise<void> {
    if (this.revision === null) {
      const created = await this.writer.createIfAbsent(next);
      this.revision = created.revision;
      if (!created.created) this.revision = (await this.writer.update(next, created.revision)).revision;
    } else {
      this.revision = (await this.writer.update(next, this.revision)).revision;
    }
    this.state = next;
  }

  private publish<K extends EventKind>(kind: K, payload: EventPayload<K>): void {
    try {
      publishEvent(this.conn, this.runId, kind, payload);
    } catch (err) {
      // Events are notices; a closed connection at shutdown must not fail the run.
      this.log.warn({ err, kind }, 'event not published');
    }
  }
}

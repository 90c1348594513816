/**
 * The run's compute fingerprint: the backend fingerprint (backend, tfjs
 * version, OpenBLAS threads and core, C library, CPU features;
 * shared/backend/select.ts) every worker of the run must have. The
 * coordinator computes no gradient and loads no tensor backend, so the
 * fingerprint is not its own: the first worker admitted to the run pins it,
 * and a resumed run takes it from its trainer state (the workers that
 * computed the steps so far), so a restart on other hardware is refused, not
 * silently given other bits. A resume that changes `backend` or
 * `blasThreads` on purpose (shared/config/resume-policy.ts allows it, with a
 * warning) starts without a pin.
 *
 * Knows nothing of gRPC, files or membership: it is given the state read,
 * the service asks `check` before admitting a worker and tells `admitted` after.
 */
import type { ResumePoint } from '../shared/checkpoint/trainer-state.js';
import { ProtocolError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';

export interface PinnedCompute {
  fingerprint: string;
  /** Where the pin came from, for messages: `worker w0 (the first admitted)`, `the trainer state in …`. */
  source: string;
}

export class ComputeFingerprint {
  private pin: PinnedCompute | null;
  private readonly log: Logger;

  constructor(saved: PinnedCompute | null, log: Logger) {
    this.pin = saved;
    this.log = log.child({ component: 'compute-fingerprint' });
  }

  /** The pinned fingerprint, or null before the first worker is admitted. */
  get value(): string | null {
    return this.pin?.fingerprint ?? null;
  }

  get pinned(): PinnedCompute | null {
    return this.pin;
  }

  /**
   * Throws ProtocolError `<who>: backend_fingerprint differs: expected X,
   * got Y (...)` when the run is pinned to another fingerprint; nothing
   * when it is the same or nothing is pinned yet.
   */
  check(got: string, who: string): void {
    if (this.pin === null || this.pin.fingerprint === got) return;
    throw new ProtocolError(
      `${who}: backend_fingerprint differs: expected ${this.pin.fingerprint}, got ${got} ` +
        `(the run's compute fingerprint, pinned by ${this.pin.source}: every worker of a run must compute as the first did, ` +
        `so its results stay byte-identical; run this worker on matching hardware and settings, or start a new run in another --output)`,
    );
  }

  /** A worker was admitted: its fingerprint becomes the run's if none is pinned yet. */
  admitted(workerId: string, got: string): void {
    if (this.pin !== null) return;
    this.pin = { fingerprint: got, source: `worker ${workerId} (the first admitted)` };
    this.log.info({ workerId, fingerprint: got }, 'compute fingerprint pinned');
  }
}

/**
 * The pin a resumed run starts with: the compute fingerprint its trainer
 * state saved; null (the first worker admitted pins it) when there is no
 * state, when the state predates the field, or when the resume changed
 * `backend` or `blasThreads` on purpose.
 */
export function pinFromState(point: ResumePoint | null, o: { settingsChanged: boolean }, log: Logger): PinnedCompute | null {
  if (point === null) return null;
  const fingerprint = point.state.meta.computeFingerprint;
  const fields = { dir: point.dir, fingerprint: fingerprint ?? null };
  if (fingerprint === undefined) {
    log.info(fields, 'the trainer state names no compute fingerprint (written before it was kept); the first worker admitted pins it');
    return null;
  }
  if (o.settingsChanged) {
    log.warn(fields, 'resuming with another backend setting: the compute fingerprint of the trainer state is dropped; the first worker admitted pins the new one');
    return null;
  }
  log.info(fields, 'compute fingerprint from the trainer state: every worker must have it');
  return { fingerprint, source: `the trainer state ${point.dir}` };
}

/**
 * Replica checksums by (phase, completed steps): the coordinator's own, taken
 * from the replica its run loop updates, and each worker's report. Whichever
 * arrives second is compared with the first; a difference is a
 * ReplicaMismatchError naming the worker, the step and both digests, kept as
 * the run's fatal error (the first one wins).
 *
 * Bounded, whatever workers report: the coordinator's own checksums are kept
 * for the newest KEEP_OWN steps; reports waiting for the coordinator's may
 * name at most MAX_WAITING_STEPS steps at once (a report for yet another is
 * refused), and a checksum longer than a digest is refused. A departed
 * worker's waiting report is kept until the coordinator's checksum comes (a
 * step later) and still compared: a replica that diverged before it left is
 * still a finding.
 *
 * Knows nothing of gRPC or of how checksums are computed.
 */
import { ProtocolError, ReplicaMismatchError } from '../shared/errors.js';
import type { TrainPhase } from '../shared/training/phase-settings.js';

/** The coordinator's own checksums kept (a worker is never more than a step or two apart). */
export const KEEP_OWN = 64;
/** Distinct steps whose reports may wait for the coordinator's checksum at once. */
export const MAX_WAITING_STEPS = 8;
/** A checksum is a hex digest (sha256: 64 characters). */
export const MAX_CHECKSUM_CHARS = 128;

export class ChecksumBook {
  private readonly own = new Map<string, string>();
  private readonly reports = new Map<string, Map<string, string>>();
  private firstMismatch: ReplicaMismatchError | null = null;

  constructor(private readonly onMismatch: (err: ReplicaMismatchError) => void) {}

  get mismatch(): ReplicaMismatchError | null {
    return this.firstMismatch;
  }

  /** The coordinator's checksum after `completed` steps; compares waiting reports. */
  recordOwn(phase: TrainPhase, completed: number, checksum: string): void {
    const k = `${phase}:${completed}`;
    this.own.set(k, checksum);
    for (const old of this.own.keys()) {
      if (this.own.size <= KEEP_OWN) break;
      this.own.delete(old);
    }
    for (const [workerId, got] of this.reports.get(k) ?? []) this.compare(workerId, phase, completed, checksum, got);
    this.reports.delete(k);
  }

  /** A worker's checksum; `reference` is '' when the coordinator's is not known yet. */
  report(workerId: string, phase: TrainPhase, completed: number, checksum: string): { match: boolean; reference: string } {
    const k = `${phase}:${completed}`;
    const what = `checksum of worker ${workerId} after ${phase} step ${completed}`;
    if (checksum.length > MAX_CHECKSUM_CHARS) throw new ProtocolError(`${what}: expected a digest of at most ${MAX_CHECKSUM_CHARS} characters, got ${checksum.length}`);
    const reference = this.own.get(k);
    if (reference === undefined) {
      if (!this.reports.has(k) && this.reports.size >= MAX_WAITING_STEPS) {
        throw new ProtocolError(`${what}: expected a step the coordinator is about to reach, but reports for ${this.reports.size} steps already wait for its checksum (${[...this.reports.keys()].join(', ')})`);
      }
      const waiting = this.reports.get(k) ?? new Map<string, string>();
      waiting.set(workerId, checksum);
      this.reports.set(k, waiting);
      return { match: true, reference: '' };
    }
    return { match: this.compare(workerId, phase, completed, reference, checksum), reference };
  }

  private compare(workerId: string, phase: TrainPhase, completed: number, expected: string, got: string): boolean {
    if (expected === got) return true;
    const err = new ReplicaMismatchError(
      `replica of worker ${workerId} differs from the coordinator's after ${phase} step ${completed}: expected checksum ${expected}, got ${got}`,
    );
    if (this.firstMismatch === null) {
      this.firstMismatch = err;
      this.onMismatch(err);
    }
    return false;
  }
}

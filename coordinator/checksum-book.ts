/**
 * Replica checksums by (phase, completed steps): the coordinator's own, taken
 * from the replica its run loop updates, and each worker's report. Whichever
 * arrives second is compared with the first; a difference is a
 * ReplicaMismatchError naming the worker, the step and both digests, kept as
 * the run's fatal error (the first one wins).
 *
 * Knows nothing of gRPC or of how checksums are computed.
 */
import { ReplicaMismatchError } from '../shared/errors.js';
import type { TrainPhase } from '../shared/training/phase-settings.js';

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
    for (const [workerId, got] of this.reports.get(k) ?? []) this.compare(workerId, phase, completed, checksum, got);
    this.reports.delete(k);
  }

  /** A worker's checksum; `reference` is '' when the coordinator's is not known yet. */
  report(workerId: string, phase: TrainPhase, completed: number, checksum: string): { match: boolean; reference: string } {
    const k = `${phase}:${completed}`;
    const reference = this.own.get(k);
    if (reference === undefined) {
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

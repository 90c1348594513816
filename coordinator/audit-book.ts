/**
 * The gradient audits in flight, by (phase, step): who computes the audited
 * micro-batch (its owner and an auditor, audit-plan.ts) and the digests they
 * reported (shared/cluster/gradient-digest.ts). When the second digest
 * arrives the two are compared: equal is logged ('gradient audit passed');
 * different is a GradientAuditError naming the step, the micro-batch, both
 * workers, both fingerprints and the first tensor that differs, handed to
 * `onMismatch` (the executor fails the run with it). The comparison never
 * holds up a step: reports may come after the step is reduced. An audit one
 * of whose workers left is dropped (logged), not an error; so is the oldest
 * when more than `keep` are waiting. A digest is kept only from the two
 * workers named, and only within size bounds (DIGEST_LIMITS), so the book's
 * memory is bounded whatever a worker reports.
 *
 * Knows nothing of gRPC or of how digests are computed.
 */
import { Waiters } from '../shared/async/waiters.js';
import { compareDigests, type GradientDigest } from '../shared/cluster/gradient-digest.js';
import { GradientAuditError, ProtocolError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { TrainPhase } from '../shared/training/phase-settings.js';
import type { AuditOutcome } from '../shared/wire/messages.js';
import type { AuditPlan } from './audit-plan.js';

/** A worker's digest of the audited micro-batch, with the fingerprint of what computed it. */
export interface ReportedDigest extends GradientDigest {
  fingerprint: string;
}

interface Pending {
  phase: TrainPhase;
  step: number;
  plan: AuditPlan;
  digests: Map<string, ReportedDigest>;
}

/** The largest digest kept: a BERT has a few hundred tensors; every string is a digest, a name or a short JSON. */
export const DIGEST_LIMITS = { tensors: 4096, nameChars: 256, sha256Chars: 128, statsJsonChars: 4096, fingerprintChars: 1024 } as const;

/** ProtocolError naming the field when a digest exceeds DIGEST_LIMITS. */
export function checkDigestSize(what: string, d: ReportedDigest): void {
  const L = DIGEST_LIMITS;
  const over = (field: string, max: number, got: number): ProtocolError => new ProtocolError(`${what}: ${field} expected at most ${max}, got ${got}`);
  if (d.tensors.length > L.tensors) throw over('tensors', L.tensors, d.tensors.length);
  const long = d.tensors.find((t) => t.name.length > L.nameChars);
  if (long !== undefined) throw over('tensor name characters', L.nameChars, long.name.length);
  if (d.sha256.length > L.sha256Chars) throw over('sha256 characters', L.sha256Chars, d.sha256.length);
  if (d.statsJson.length > L.statsJsonChars) throw over('stats_json characters', L.statsJsonChars, d.statsJson.length);
  if (d.fingerprint.length > L.fingerprintChars) throw over('fingerprint characters', L.fingerprintChars, d.fingerprint.length);
}

export interface AuditBookOptions {
  log: Logger;
  onMismatch: (err: GradientAuditError) => void;
  /** Audits kept waiting for their second digest; the oldest beyond this is dropped. Default 16. */
  keep?: number;
}

export class AuditBook {
  private readonly pending = new Map<string, Pending>();
  private readonly changed = new Waiters();
  private readonly log: Logger;
  private loggedSkip = false;
  passed = 0;
  dropped = 0;

  constructor(private readonly o: AuditBookOptions) {
    this.log = o.log.child({ component: 'audit' });
  }

  get waiting(): number {
    return this.pending.size;
  }

  /** The audit of (phase, step) is out: its two workers were told in the step's task. */
  expect(phase: TrainPhase, step: number, plan: AuditPlan): void {
    this.pending.set(`${phase}:${step}`, { phase, step, plan, digests: new Map() });
    const keep = this.o.keep ?? 16;
    for (const [k, p] of this.pending) {
      if (this.pending.size <= keep) break;
      this.give(k, p, 'too many audits waiting for a digest');
    }
  }

  /** An audit was due with a single live worker: nothing to compare with (logged once per run). */
  skipped(phase: TrainPhase, step: number): void {
    if (this.loggedSkip) return;
    this.loggedSkip = true;
    this.log.info({ phase, step }, 'gradient audits skipped while only one worker is live');
  }

  /** One worker's digest; compared with the other's when both are in. */
  report(workerId: string, phase: TrainPhase, step: number, index: number, digest: ReportedDigest): AuditOutcome {
    const k = `${phase}:${step}`;
    const p = this.pending.get(k);
    if (p === undefined) {
      this.log.debug({ workerId, phase, step, microBatch: index }, 'audit digest for an audit not waiting (dropped or compared); ignored');
      return 'dropped';
    }
    const what = `audit digest of ${phase} step ${step} from ${workerId}`;
    if (workerId !== p.plan.owner && workerId !== p.plan.auditor) {
      throw new ProtocolError(`${what}: expected a report from ${p.plan.owner} or ${p.plan.auditor}, got one from ${workerId}`);
    }
    if (index !== p.plan.index) throw new ProtocolError(`${what}: expected micro-batch ${p.plan.index}, got ${index}`);
    checkDigestSize(what, digest);
    p.digests.set(workerId, digest);
    const a = p.digests.get(p.plan.owner);
    const b = p.digests.get(p.plan.auditor);
    if (a === undefined || b === undefined) return 'waiting';
    this.pending.delete(k);
    this.changed.wake();
    return this.compare(p, a, b);
  }

  /** `workerId` left: its audits cannot complete. */
  drop(workerId: string, why: string): void {
    for (const [k, p] of this.pending) {
      if (p.plan.owner === workerId || p.plan.auditor === workerId) this.give(k, p, `worker ${workerId} ${why}`);
    }
  }

  /** Resolves once no audit waits for a digest, or after `timeoutMs` (the rest are then dropped). */
  async settled(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.pending.size > 0) {
      const left = deadline - performance.now();
      if (left <= 0) {
        for (const [k, p] of this.pending) this.give(k, p, `no digest within ${timeoutMs} ms`);
        return;
      }
      await this.changed.next(left);
    }
  }

  private compare(p: Pending, a: ReportedDigest, b: ReportedDigest): AuditOutcome {
    const { owner, auditor, index } = p.plan;
    const fields = { phase: p.phase, step: p.step, microBatch: index, owner, auditor };
    const diff = compareDigests(a, b);
    if (diff === null) {
      this.passed++;
      this.log.info({ ...fields, sha256: a.sha256 }, 'gradient audit passed');
      return 'match';
    }
    const err = new GradientAuditError(
      `gradient audit of ${p.phase} step ${p.step}, micro-batch ${index}: workers ${owner} and ${auditor} computed different gradients; ${diff.detail}. ` +
        `${owner}: sha256 ${a.sha256}, fingerprint ${a.fingerprint}. ${auditor}: sha256 ${b.sha256}, fingerprint ${b.fingerprint}`,
    );
    this.log.error({ ...fields, tensor: diff.tensor, ownerSha256: a.sha256, auditorSha256: b.sha256, ownerFingerprint: a.fingerprint, auditorFingerprint: b.fingerprint }, 'gradient audit failed');
    this.o.onMismatch(err);
    return 'mismatch';
  }

  private give(k: string, p: Pending, reason: string): void {
    this.pending.delete(k);
    this.dropped++;
    this.changed.wake();
    this.log.info({ phase: p.phase, step: p.step, microBatch: p.plan.index, owner: p.plan.owner, auditor: p.plan.auditor, reason }, 'gradient audit dropped');
  }
}

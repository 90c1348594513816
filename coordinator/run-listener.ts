/**
 * What the coordinator tells whoever watches a run, from the run loop's hooks
 * and membership changes: the Prometheus metrics (metrics.ts) and the
 * dashboard's event hub (run-events.ts) both take it, so main.ts feeds them
 * through one list. Types only.
 */
import type { MembershipChange } from './membership.js';
import type { RunPhaseLabel } from './metrics.js';
import type { StepInfo } from './train-phase.js';

export interface RunListener {
  phase(phase: RunPhaseLabel, step: number): void;
  checkpoint(phase: string, step: number, dir: string): void;
  step(phase: string, step: number, total: number, loss: number, info: StepInfo): void;
  membership(change: MembershipChange, members: number): void;
}

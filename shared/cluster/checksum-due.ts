/**
 * When replicas compare checksums: after every `checksumEverySteps` completed
 * steps of a phase and after its last step. The coordinator and the workers
 * both decide with this function, from the same run config.
 */
import type { RunConfig } from '../config/run-config.js';
import type { TrainPhase } from '../training/phase-settings.js';

/** `completed`: steps done in the phase (the step index just applied, plus one). */
export function checksumDue(config: RunConfig, phase: TrainPhase, completed: number): boolean {
  return completed % config.cluster.checksumEverySteps === 0 || completed === config[phase].steps;
}

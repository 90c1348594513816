/**
 * The in-process executor behind `bertfleet train`: one local worker that owns
 * every micro-batch, sharing the coordinator's replica (so the update is applied
 * once). It goes through the same WorkerCompute and tree sum as a cluster.
 * Its one partial sum is checked for NaN and ±Infinity as a cluster's
 * uploads are, and reported under the worker id 'local' (see step-round.ts).
 */
import type { EvalOutcome, EvalWork, PhaseSetup, StepExecutor, StepOutcome, StepWork } from '../coordinator/executor.js';
import { allFinite, firstNonFinite, type PartialFault } from '../shared/training/non-finite.js';
import type { Replica } from '../shared/training/replica.js';
import { WorkerCompute } from '../worker/compute.js';

export class LocalExecutor implements StepExecutor {
  private replica: Replica | null = null;

  constructor(private readonly compute: WorkerCompute) {}

  async startPhase(setup: PhaseSetup): Promise<void> {
    this.replica = setup.replica;
  }

  private current(): Replica {
    if (!this.replica) throw new Error('no phase started');
    return this.replica;
  }

  async runStep(work: StepWork): Promise<StepOutcome> {
    const all = { lo: 0, hi: work.microBatches.length };
    const { partials, stats } = this.compute.gradients(this.current(), work.dataset, work.microBatches, [all], work.counts);
    const grad = partials[0]!.grad;
    const faults: PartialFault[] = [];
    if (!allFinite(grad)) {
      const i = firstNonFinite(grad);
      faults.push({ workerId: 'local', range: all, flatIndex: i, value: grad[i]! });
    }
    return { grad, stats: work.microBatches.map((m) => stats.get(m.index)!), faults };
  }

  async afterUpdate(): Promise<void> {}

  async evaluate(work: EvalWork): Promise<EvalOutcome> {
    const replica = this.current();
    const results = work.chunks.map((c, i) => {
      const r = this.compute.evaluate(replica, work.dataset, c);
      work.onChunksDone?.(i + 1);
      return r;
    });
    return { stats: results.map((r) => r.stats), predictions: results.map((r) => r.predictions) };
  }

  async close(): Promise<void> {}
}

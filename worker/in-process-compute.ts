/**
 * ReplicaCompute on the calling thread: the same WorkerCompute and Replica
 * the compute thread runs, for tests and tools that want no thread. It blocks
 * the event loop while it computes; `bertfleet worker` uses compute-host.ts.
 */
import { BertfleetError } from '../shared/errors.js';
import type { RunConfig } from '../shared/config/run-config.js';
import { phaseSpecs, updateSettings } from '../shared/training/phase-settings.js';
import { Replica } from '../shared/training/replica.js';
import type { WorkerCompute } from './compute.js';
import type { ApplyResult, ChunkEval, GradientsResult, ReplicaCompute, ReplicaState } from './compute-port.js';

export class InProcessCompute implements ReplicaCompute {
  private replica: Replica | null = null;
  private phase: ReplicaState['phase'] = 'pretrain';

  constructor(
    private readonly compute: WorkerCompute,
    private readonly config: RunConfig,
    private readonly numLabels: number,
  ) {}

  async load(s: ReplicaState): Promise<void> {
    this.replica?.releaseTensors();
    this.replica = new Replica(phaseSpecs(this.compute.bert, s.phase, this.numLabels), s.params, { m: s.m, v: s.v });
    this.phase = s.phase;
  }

  async gradients(r: Parameters<ReplicaCompute['gradients']>[0]): Promise<GradientsResult> {
    const t0 = performance.now();
    const out = this.compute.gradients(this.held(), r.dataset, r.micro, r.subtrees, r.counts);
    return { ...out, computeMs: performance.now() - t0 };
  }

  async apply(grad: Float32Array, step: number, opts: { checksum: boolean }): Promise<ApplyResult> {
    const replica = this.held();
    const { gradNorm, lr } = replica.applyGradient(grad, step, updateSettings(this.config, this.phase));
    return { grad, gradNorm, lr, checksum: opts.checksum ? replica.checksum() : null };
  }

  async evaluate(r: Parameters<ReplicaCompute['evaluate']>[0]): Promise<ChunkEval[]> {
    const replica = this.held();
    return r.chunks.map((c) => ({ index: c.index, ...this.compute.evaluate(replica, r.dataset, c.examples) }));
  }

  async drop(): Promise<void> {
    this.replica?.releaseTensors();
    this.replica = null;
  }

  private held(): Replica {
    if (this.replica === null) throw new BertfleetError('no replica is loaded: expected load() (FetchState) first');
    return this.replica;
  }
}

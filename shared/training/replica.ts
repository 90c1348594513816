/**
 * A model replica for one phase: flat parameters and AdamW moments, and the
 * tensors the model reads. Every replica (the single-process trainer, each
 * worker, the coordinator's own copy) applies the same reduced gradient with
 * the same code, so they stay byte-identical.
 *
 * The non-finite guard: a reduced gradient holding NaN or ±Infinity is never
 * applied. Every replica decides from the reduced bytes alone (their global
 * norm, computed anyway for clipping, is non-finite exactly then), so all
 * skip the same steps without being told; what a skip means for the run
 * (stop, or go on) is the run loop's business (coordinator/train-phase.ts).
 */
import type { Params } from '../model/bert.js';
import { disposeParams, paramsToTensors } from '../model/param-tensors.js';
import type { ParamSpec } from '../model/params.js';
import type { NonFiniteValue } from '../errors.js';
import { clipByGlobalNorm } from './clip.js';
import { checksum, FlatLayout } from './flat.js';
import { firstNonFinite, locate } from './non-finite.js';
import { adamWStep, newAdamWState, type AdamWSettings, type AdamWState } from './optimizer.js';
import { learningRate, type Schedule } from './schedule.js';

export interface UpdateSettings {
  adamW: AdamWSettings;
  clipNorm: number;
  schedule: Schedule;
}

export interface UpdateResult {
  /** The global norm before clipping (NaN or Infinity when skipped). */
  gradNorm: number;
  /** The step's learning rate (unused when skipped: the schedule still moves on with the step). */
  lr: number;
  /** True when the gradient held a non-finite value: parameters and moments are untouched. */
  skipped: boolean;
  /** The first non-finite value of the gradient when skipped, else null. */
  firstBad: NonFiniteValue | null;
}

export class Replica {
  readonly layout: FlatLayout;
  readonly decay: Uint8Array;
  private tensors: Params | null = null;

  constructor(
    specs: readonly ParamSpec[],
    readonly params: Float32Array,
    readonly opt: AdamWState = newAdamWState(params.length),
  ) {
    this.layout = new FlatLayout(specs);
    this.layout.checkLength(params, 'parameters');
    this.layout.checkLength(opt.m, 'AdamW first moment');
    this.layout.checkLength(opt.v, 'AdamW second moment');
    this.decay = this.layout.decayMask();
  }

  static fromValues(specs: readonly ParamSpec[], values: ReadonlyMap<string, Float32Array>): Replica {
    return new Replica(specs, new FlatLayout(specs).pack(values));
  }

  /** The model's view of the current parameters (rebuilt lazily after an update). */
  paramTensors(): Params {
    if (!this.tensors) this.tensors = paramsToTensors(this.layout.specs, this.layout.unpack(this.params));
    return this.tensors;
  }

  /**
   * Clips the reduced gradient (in place), then one AdamW step at the step's
   * learning rate; or, when the gradient holds NaN or ±Infinity, nothing at
   * all (the gradient is left as given) and the result says where the first one is.
   */
  applyGradient(grad: Float32Array, step: number, s: UpdateSettings): UpdateResult {
    this.layout.checkLength(grad, `reduced gradient of step ${step}`);
    const gradNorm = clipByGlobalNorm(grad, s.clipNorm);
    const lr = learningRate(s.schedule, step);
    if (!Number.isFinite(gradNorm)) {
      const i = firstNonFinite(grad);
      return { gradNorm, lr, skipped: true, firstBad: { ...locate(i, this.layout), value: grad[i]! } };
    }
    adamWStep(this.params, grad, this.opt, this.decay, lr, s.adamW);
    this.releaseTensors();
    return { gradNorm, lr, skipped: false, firstBad: null };
  }

  checksum(): string {
    return checksum(this.params);
  }

  values(): Map<string, Float32Array> {
    return this.layout.unpack(this.params);
  }

  releaseTensors(): void {
    if (this.tensors) disposeParams(this.tensors);
    this.tensors = null;
  }
}

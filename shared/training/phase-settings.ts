/**
 * What a training phase needs besides data: its parameter table (pretraining
 * heads, or a classifier with one output per label) and its update settings
 * (AdamW, clipping, the phase's schedule), both derived from the run config
 * alone. The coordinator's run loop and every worker call these, so their
 * replicas have the same layout and apply the same update.
 */
import type { RunConfig } from '../config/run-config.js';
import type { BertConfig } from '../model/config.js';
import { paramSpecs, type ParamSpec } from '../model/params.js';
import type { UpdateSettings } from './replica.js';

export type TrainPhase = 'pretrain' | 'finetune';

export const TRAIN_PHASES: readonly TrainPhase[] = ['pretrain', 'finetune'];

export function isTrainPhase(s: string): s is TrainPhase {
  return (TRAIN_PHASES as readonly string[]).includes(s);
}

export function updateSettings(config: RunConfig, phase: TrainPhase): UpdateSettings {
  const p = config[phase];
  return {
    adamW: { beta1: config.optimizer.beta1, beta2: config.optimizer.beta2, epsilon: config.optimizer.epsilon, weightDecay: config.optimizer.weightDecay },
    clipNorm: config.optimizer.clipNorm,
    schedule: { peakLr: p.peakLr, warmupSteps: p.warmupSteps, totalSteps: p.steps },
  };
}

/** The phase's parameter table; finetuning has a classifier over `numLabels` classes. */
export function phaseSpecs(bert: BertConfig, phase: TrainPhase, numLabels: number): ParamSpec[] {
  return phase === 'pretrain' ? paramSpecs(bert, { heads: 'pretraining' }) : paramSpecs(bert, { heads: 'classification', numLabels });
}

/**
 * The run config: everything about a training run that is not the model's
 * architecture (data, phases, batch sizes, optimizer, checkpoints, backend).
 * One zod schema with defaults and invariants; loaded once at the edge from the
 * CLI flags and an optional `--config FILE`, frozen, and passed down. Invalid
 * values are listed all at once, never repaired.
 */
import { z } from 'zod';
import { ConfigError } from '../errors.js';

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();

const phaseSchema = (d: { steps: number; globalBatch: number; microBatch: number; peakLr: number; warmupSteps: number }) =>
  z
    .object({
      steps: nonNegInt.default(d.steps),
      globalBatch: posInt.default(d.globalBatch),
      microBatch: posInt.default(d.microBatch),
      peakLr: z.number().positive().default(d.peakLr),
      warmupSteps: nonNegInt.default(d.warmupSteps),
    })
    .strict();

export const runConfigSchema = z
  .object({
    seed: nonNegInt.max(2 ** 31 - 1).default(12345),
    /** A preset name (tiny, mini, small, base) or a path to a config.json. */
    model: z.string().min(1).default('tiny'),
    backend: z.enum(['auto', 'tfjs-node-gpu', 'tfjs-node', 'wasm-blas', 'wasm', 'cpu']).default('auto'),
    blasThreads: posInt.default(1),
    /** Hugging Face checkpoint to finetune; skips pretraining. */
    initFrom: z.string().min(1).nullable().default(null),
    data: z
      .object({
        /** 'embedded' or a list of text files in google-research/bert's corpus format. */
        corpus: z.union([z.literal('embedded'), z.array(z.string().min(1)).min(1)]).default('embedded'),
        /** 'embedded' or a CSV / TSV / JSONL file with text, optional text_b, label. */
        classification: z.string().min(1).default('embedded'),
        /** 'embedded' (bert-base-uncased) or a path to a vocab.txt. */
        vocab: z.string().min(1).default('embedded'),
        maxSeqLength: posInt.min(8).default(64),
        maxPredictionsPerSeq: posInt.default(10),
        maskedLmProb: z.number().gt(0).lt(1).default(0.15),
        shortSeqProb: z.number().min(0).max(1).default(0.1),
        dupeFactor: posInt.default(2),
        wholeWordMasking: z.boolean().default(false),
        /** Share of pretraining documents held out for evaluation. */
        heldOutFraction: z.number().gt(0).lt(0.5).default(0.02),
        classifyMaxSeqLength: posInt.min(8).default(48),
        cacheDir: z.string().min(1).default('.cache/bertfleet'),
      })
      .strict()
      .prefault({}),
    pretrain: phaseSchema({ steps: 200, globalBatch: 32, microBatch: 16, peakLr: 1e-4, warmupSteps: 20 }).prefault({}),
    finetune: phaseSchema({ steps: 300, globalBatch: 32, microBatch: 16, peakLr: 3e-4, warmupSteps: 30 })
      .extend({
        /**
         * Class weights of the classification loss: "none", or "balanced" (scikit-learn's
         * n / (k · n_c) from the training split's label counts) for imbalanced data.
         */
        classWeights: z.enum(['none', 'balanced']).default('none'),
      })
      .prefault({}),
    optimizer: z
      .object({
        beta1: z.number().min(0).lt(1).default(0.9),
        beta2: z.number().min(0).lt(1).default(0.999),
        epsilon: z.number().positive().default(1e-6),
        weightDecay: z.number().min(0).default(0.01),
        clipNorm: z.number().positive().default(1.0),
      })
      .strict()
      .prefault({}),
    checkpoint: z
      .object({
        everySteps: posInt.default(50),
        keep: posInt.default(2),
      })
      .strict()
      .prefault({}),
    /**
     * A step whose reduced gradient holds NaN or ±Infinity is never applied
     * (no replica changes). 'stop': the run stops with NonFiniteGradientError
     * naming the worker, its micro-batches and the first tensor affected.
     * 'skip': the step is skipped on every replica and the run goes on (the
     * data and the schedule move on to the next step); the step's line in
     * steps.jsonl says `skipped: true` and metrics.json counts `skippedSteps`.
     * Decides no bits of the steps applied, so it may change on --resume.
     */
    nonFinite: z.enum(['stop', 'skip']).default('stop'),
    /** Log a step line every N steps. */
    logEverySteps: posInt.default(10),
    /** The distributed run (`cluster`, `coordinator`, `worker`); ignored by `train`. */
    cluster: z
      .object({
        /** Workers report their replica's checksum every N steps and at each phase's end. */
        checksumEverySteps: posInt.default(10),
        /**
         * Gradient audit: on every step whose completion brings the phase's
         * step count to a multiple of N, one micro-batch (index step mod M) is
         * also computed by a second worker and the two gradients' digests are
         * compared; a difference stops the run (GradientAuditError). 0 = off.
         * Needs two workers; costs one micro-batch per worker per audit.
         */
        auditEverySteps: nonNegInt.default(50),
        /** Workers beat this often, from their main thread (compute runs in a thread of its own). */
        heartbeatIntervalMs: posInt.default(1_000),
        /** A worker silent this long is marked left and its outstanding work handed to the others (any call counts). */
        heartbeatTimeoutMs: posInt.default(6_000),
        /** With no live worker, the coordinator waits this long for one to join before it fails the run. */
        workerWaitTimeoutMs: posInt.default(600_000),
        /** A worker keeps retrying an unreachable coordinator (restarting, say) this long before it gives up. */
        reconnectTimeoutMs: posInt.default(120_000),
        /** The coordinator's lease on the run in NATS: renewed every third of it; a holder silent this long is replaced. */
        leaseTtlMs: posInt.min(300).default(15_000),
        /** A run-state write still failing after this long (NATS down) stops the run with RunStateWriteError. */
        runStateWriteTimeoutMs: posInt.default(60_000),
        /**
         * Gradients stream in chunks of this many bytes; the coordinator sums
         * chunk i of every partial as soon as it is in and sends it on. A
         * multiple of 4 (float32) from 4 KiB to 8 MiB (half the 16 MiB message limit).
         */
        chunkBytes: posInt
          .min(4096)
          .max(8 << 20)
          .refine((n) => n % 4 === 0, { message: 'must be a multiple of 4 (whole float32 values)' })
          .default(1 << 20),
        /**
         * At most this many workers are members at once (joining or training);
         * a registration beyond it is refused (LimitExceededError), so the
         * member list cannot grow without bound. Decides no bits.
         */
        maxWorkers: posInt.max(65_536).default(256),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    for (const phase of ['pretrain', 'finetune'] as const) {
      const p = c[phase];
      if (p.globalBatch % p.microBatch !== 0) {
        ctx.addIssue({
          code: 'custom',
          path: [phase, 'microBatch'],
          message: `micro-batch (${p.microBatch}) does not divide the global batch (${p.globalBatch})`,
        });
      }
    }
    if (c.cluster.heartbeatTimeoutMs <= c.cluster.heartbeatIntervalMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['cluster', 'heartbeatTimeoutMs'],
        message: `heartbeatTimeoutMs (${c.cluster.heartbeatTimeoutMs}) must exceed heartbeatIntervalMs (${c.cluster.heartbeatIntervalMs})`,
      });
    }
    if (c.data.maxPredictionsPerSeq >= c.data.maxSeqLength) {
      ctx.addIssue({
        code: 'custom',
        path: ['data', 'maxPredictionsPerSeq'],
        message: `maxPredictionsPerSeq (${c.data.maxPredictionsPerSeq}) must be below maxSeqLength (${c.data.maxSeqLength})`,
      });
    }
  });

export type RunConfig = z.infer<typeof runConfigSchema>;
export type RunConfigInput = z.input<typeof runConfigSchema>;

export function parseRunConfig(raw: unknown, source = 'run config'): RunConfig {
  const r = runConfigSchema.safeParse(raw);
  if (!r.success) {
    throw new ConfigError(r.error.issues.map((i) => `${source}: ${i.path.join('.') || '(root)'}: ${i.message}`));
  }
  return deepFreeze(r.data);
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/** Merges partial configs (later wins), objects key by key. */
export function mergeConfig(...parts: Array<Record<string, unknown> | undefined>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const part of parts) {
    if (!part) continue;
    for (const [k, v] of Object.entries(part)) {
      if (v === undefined) continue;
      const prev = out[k];
      out[k] = v && typeof v === 'object' && !Array.isArray(v) && prev && typeof prev === 'object' && !Array.isArray(prev)
        ? mergeConfig(prev as Record<string, unknown>, v as Record<string, unknown>)
        : v;
    }
  }
  return out;
}

/**
 * The gradient exchange at scale, as arithmetic (docs/SCALING.md): bytes per
 * step on each link and the time they take, for N workers exchanging a
 * float32 gradient of G = 4 × P bytes through
 *  - 'coordinator': one process every worker pushes G to and pulls G from
 *    (parameter-server style; its link carries N × G each way);
 *  - 'reducers': K processes, each owning a contiguous 1/K slice of the flat
 *    vector (a worker moves G/K to and from each; a reducer's link N × G/K);
 *  - 'ring': a ring all-reduce, reduce-scatter then all-gather (every link
 *    2 (N − 1)/N × G each way, 2 (N − 1) dependent hops);
 *  - 'colocated': K = N reducers living on the workers themselves, partials
 *    scattered all-to-all and the reduced slices gathered (every link
 *    2 (N − 1)/N × G each way, like the ring, but 2 hops; the one design here
 *    that is both bandwidth-optimal and keeps bertfleet's fixed tree order).
 * Model: full-duplex links of one rate; push and pull stream at once (chunks
 * of the reduced slice are pulled while later chunks are still pushed) and an
 * adder sums chunks as they arrive, so a step's exchange takes
 * max(busiest link's bytes one way / rate, busiest adder's bytes / add rate)
 * plus one latency per dependent hop. Compute does not overlap the exchange
 * (the figure is the exchange alone). Slices are G/K as real numbers.
 * Decimal units throughout: 1 GB = 1e9 bytes, 25 Gb/s = 3.125e9 bytes/s.
 * Pure: no I/O, no clocks, no processes; only the parameter count reads the
 * model's config (shared/model), never a file.
 */
import { presetConfig, type PresetName } from '../shared/model/config.js';
import { flatLayout, paramSpecs } from '../shared/model/params.js';

export type Design = 'coordinator' | 'reducers' | 'ring' | 'colocated';
export const DESIGNS: readonly Design[] = ['coordinator', 'reducers', 'ring', 'colocated'];

export const BYTES_PER_FLOAT32 = 4;

export interface LinkModel {
  /** Rate of every link, each direction, in Gb/s (10^9 bits). */
  linkGbps: number;
  /** Latency of one message hop on the critical path, in µs. */
  latencyUs: number;
  /** Rate of a native `a += b`, in GB (10^9 bytes) of addend summed per second. */
  addGBps: number;
}

/** Where a step's bytes go, before any rate is applied. */
export interface Flows {
  /** Bytes one way (pushed, and again pulled) on one worker's link. */
  workerLinkBytes: number;
  /** Bytes one way on the busiest link of the design (a worker's, a reducer's or the coordinator's). */
  busiestLinkBytes: number;
  /** Bytes of gradient the busiest adder sums per step. */
  busiestAddBytes: number;
  /** Messages in sequence on the critical path (a push then a pull is 2). */
  hops: number;
  /** Messages a worker sends and receives per step (each of them chunked on the wire). */
  messagesPerWorker: number;
}

export interface Estimate extends Flows {
  design: Design;
  workers: number;
  /** K; 1 for the coordinator, N for the colocated design, null for the ring (no reducers). */
  reducers: number | null;
  gradientBytes: number;
  transferMs: number;
  addMs: number;
  latencyMs: number;
  /** max(transferMs, addMs) + latencyMs: the exchange's share of a step. */
  exchangeMs: number;
}

export function linkBytesPerSecond(linkGbps: number): number {
  return (linkGbps * 1e9) / 8;
}

/** Bytes per step for `design` with `workers` workers, a gradient of `gradientBytes` and K = `reducers`. */
export function flows(design: Design, workers: number, gradientBytes: number, reducers = 1): Flows {
  const N = workers;
  const G = gradientBytes;
  if (!Number.isInteger(N) || N < 1) throw new RangeError(`workers: expected an integer >= 1, got ${N}`);
  if (!Number.isInteger(reducers) || reducers < 1) throw new RangeError(`reducers: expected an integer >= 1, got ${reducers}`);
  switch (design) {
    case 'coordinator':
      return { workerLinkBytes: G, busiestLinkBytes: N * G, busiestAddBytes: N * G, hops: 2, messagesPerWorker: 2 };
    case 'reducers': {
      const K = reducers;
      const reducerLink = (N * G) / K;
      return {
        workerLinkBytes: G,
        busiestLinkBytes: Math.max(G, reducerLink),
        busiestAddBytes: reducerLink,
        hops: 2,
        messagesPerWorker: 2 * K,
      };
    }
    case 'ring': {
      // Reduce-scatter then all-gather: N − 1 hops each, a G/N chunk per hop on every link.
      const perLink = (2 * (N - 1) * G) / N;
      return {
        workerLinkBytes: perLink,
        busiestLinkBytes: perLink,
        busiestAddBytes: ((N - 1) * G) / N,
        hops: 2 * (N - 1),
        messagesPerWorker: 4 * (N - 1),
      };
    }
    case 'colocated': {
      // Each worker owns a G/N slice: sends its partial of the N − 1 others' slices and
      // receives N − 1 partials of its own (all-to-all), then the same with reduced slices.
      const perLink = (2 * (N - 1) * G) / N;
      return { workerLinkBytes: perLink, busiestLinkBytes: perLink, busiestAddBytes: G, hops: 2, messagesPerWorker: 4 * (N - 1) };
    }
  }
}

/** One row of the model: flows plus the times they take on `link`. */
export function estimate(design: Design, workers: number, params: number, link: LinkModel, reducers?: number): Estimate {
  const gradientBytes = params * BYTES_PER_FLOAT32;
  const K = design === 'coordinator' ? 1 : design === 'colocated' ? workers : design === 'ring' ? null : reducers;
  if (design === 'reducers' && K === undefined) throw new RangeError('reducers design: expected K, got none');
  const f = flows(design, workers, gradientBytes, K ?? 1);
  const transferMs = (f.busiestLinkBytes / linkBytesPerSecond(link.linkGbps)) * 1e3;
  const addMs = (f.busiestAddBytes / (link.addGBps * 1e9)) * 1e3;
  const latencyMs = (f.hops * link.latencyUs) / 1e3;
  return {
    design,
    workers,
    reducers: K ?? null,
    gradientBytes,
    ...f,
    transferMs,
    addMs,
    latencyMs,
    exchangeMs: Math.max(transferMs, addMs) + latencyMs,
  };
}

export interface ReducersNeeded {
  /** Smallest K whose reducer links are no busier than a worker's: N × G/K <= G. */
  forLinks: number;
  /** Smallest K whose adders finish within a worker link's time: N × G/(K × A) <= G/B. */
  forAdds: number;
}

export function reducersNeeded(workers: number, linkGbps: number, addGBps: number): ReducersNeeded {
  const ratio = linkBytesPerSecond(linkGbps) / (addGBps * 1e9);
  return { forLinks: workers, forAdds: Math.max(1, Math.ceil(workers * ratio - 1e-9)) };
}

/** Parameters of a preset with its pretraining heads: the length of the flat gradient bertfleet exchanges. */
export function presetParamCount(preset: PresetName): number {
  return flatLayout(paramSpecs(presetConfig(preset), { heads: 'pretraining' })).total;
}

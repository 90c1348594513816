/**
 * The two gradient calls every reducer serves — the coordinator (reducer 0)
 * and each reducer process of `--reducers K`: PushGradient sums each chunk of
 * a partial into its step's StepRound as it lands, and answers once the whole
 * partial is in; PullReduced streams a step's reduced gradient chunk by chunk,
 * each as soon as it is final. What differs between the two roles (where the
 * round comes from, who counts as alive) is the `ExchangeSide` given. Every
 * upload must be cut at the round's chunk size (the run's cluster.chunkBytes).
 * A partial holding NaN or ±Infinity is still summed (every replica skips the
 * step on the reduced bytes) and logged here with the worker and its
 * micro-batches, the one place that knows both on every reducer.
 *
 * Knows the wire messages, not grpc-js.
 */
import { decodeIndexedStats } from '../shared/cluster/stats-json.js';
import { AlreadyReceivedError, ProtocolError, ShapeError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { TrainPhase } from '../shared/training/phase-settings.js';
import { describeGradient, gradientDataChunk, gradientHeaderChunk, readGradient } from '../shared/wire/gradient-stream.js';
import type { GradientChunk, GradientHeader, PullRequest, PushAck } from '../shared/wire/messages.js';
import type { CallContext } from '../shared/wire/service.js';
import type { ReducedStore } from './reduced-store.js';
import type { StepRound, Upload } from './step-round.js';
import type { UploadClaim } from './upload-claims.js';

export interface ExchangeSide {
  log: Logger;
  reduced: ReducedStore;
  /** The round an upload belongs to; throws AlreadyReceivedError/ProtocolError saying why not. */
  roundFor(workerId: string, phase: string, step: number): StepRound;
  /** Any call from a worker is a sign of life (the coordinator's membership). */
  touch?(workerId: string): void;
  /** A whole partial arrived (the coordinator records the worker's speed). */
  received?(header: GradientHeader): void;
  /** An upload was refused (counted in the coordinator's metrics). */
  refused?(err: unknown): void;
  /** A worker pulled a whole reduced gradient of `bytes` (counted in the coordinator's metrics). */
  served?(workerId: string, bytes: number): void;
}

export async function receivePartial(chunks: AsyncIterable<GradientChunk>, side: ExchangeSide): Promise<PushAck> {
  let who: Record<string, unknown> = {};
  let round: StepRound | undefined;
  let upload: Upload | undefined;
  let header: GradientHeader | undefined;
  let claim: UploadClaim | undefined;
  // Aborted when a newer stream of the same worker and subtree (a retry) takes over.
  const stop = new AbortController();
  try {
    const stream = readGradient(untilAborted(chunks, stop.signal), {
      untilLast: true,
      // Before any data: who sends, for which step, and the sizes the round expects (nothing is sized by the header).
      accept: (h) => {
        who = { workerId: h.worker_id, phase: h.phase, step: h.step, range: h.range };
        side.touch?.(h.worker_id);
        round = side.roundFor(h.worker_id, h.phase, h.step);
        round.checkUpload(h.worker_id, h.range);
        if (h.total_bytes !== round.grad.byteLength) throw new ShapeError(describeGradient(h), `${round.grad.byteLength} bytes`, `${h.total_bytes} bytes`);
        if (h.chunk_bytes !== round.chunkBytes) {
          throw new ShapeError(`${describeGradient(h)}: chunk size`, `${round.chunkBytes} bytes (the run's cluster.chunkBytes)`, `${h.chunk_bytes} bytes`);
        }
        if (h.stats_json.length > maxStatsJsonChars(round.microBatches)) {
          throw new ProtocolError(`${describeGradient(h)}: stats_json expected at most ${maxStatsJsonChars(round.microBatches)} characters, got ${h.stats_json.length}`);
        }
      },
    });
    for await (const m of stream) {
      if (m.header !== undefined) {
        header = m.header;
        // One stream per (worker, subtree): a duplicate is settled here, before any chunk is read or pooled.
        claim = await round!.claim(header.worker_id, header.range, stop);
        upload = round!.begin(header.worker_id, header.range, decodeIndexedStats(header.stats_json, `upload of step ${header.step} from ${header.worker_id}`));
      } else {
        round!.addChunk(upload!, m.piece.index, m.piece.bytes);
      }
    }
    round!.end(upload!);
    const h = header!;
    const fault = upload!.fault;
    if (fault !== undefined) side.log.warn({ ...who, flatIndex: fault.flatIndex, value: String(fault.value) }, 'non-finite partial sum received');
    side.received?.(h);
    side.log.debug({ ...who, bytes: h.total_bytes }, 'partial sum received');
    return { step: h.step, range: h.range, received_bytes: h.total_bytes };
  } catch (err) {
    if (err instanceof AlreadyReceivedError) side.log.debug({ ...who, err }, 'repeated upload');
    else side.log.warn({ ...who, err }, 'upload rejected');
    side.refused?.(err);
    throw err;
  } finally {
    claim?.release();
  }
}

/**
 * The stats of a partial: one small JSON object per micro-batch (~200
 * characters); anything far beyond is refused before it is parsed.
 */
export function maxStatsJsonChars(microBatches: number): number {
  return 1024 * (microBatches + 1);
}

/** `chunks`, ending with the signal's reason as soon as it aborts (even while waiting for the next chunk). */
async function* untilAborted<T>(chunks: AsyncIterable<T>, signal: AbortSignal): AsyncGenerator<T> {
  const it = chunks[Symbol.asyncIterator]();
  let onAbort = (): void => undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  aborted.catch(() => undefined);
  try {
    for (;;) {
      const next = await Promise.race([it.next(), aborted]);
      if (next.done === true) return;
      yield next.value;
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

export async function* serveReduced(req: PullRequest, phase: TrainPhase, ctx: CallContext, side: ExchangeSide): AsyncIterable<GradientChunk> {
  side.touch?.(req.worker_id);
  const { source, microBatches } = await side.reduced.get(phase, req.step, ctx.signal);
  yield gradientHeaderChunk({ worker_id: '', step: req.step, phase, range: { lo: 0, hi: microBatches }, stats_json: '' }, source.grad.byteLength, source.chunkBytes);
  for (let i = 0; i < source.chunkCount; i++) {
    await source.whenReady(i, ctx.signal);
    yield gradientDataChunk(source.chunkBytesOf(i), source.chunkCrc(i));
  }
  side.reduced.pulled(phase, req.step, req.worker_id);
  side.served?.(req.worker_id, source.grad.byteLength);
}

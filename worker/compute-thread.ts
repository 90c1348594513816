/**
 * The entry point of a worker's compute thread (started by ComputeHost through
 * compute-thread-boot.mjs): it starts the tensor backend, loads the run's model
 * config and data, holds the replica, and answers the host's requests one at a
 * time, in order, with the same code the in-process trainer runs
 * (WorkerCompute, Replica), so the bits are the same. It is an entry point: it
 * builds its own root logger (JSON on fd 2) from the host's level and bindings.
 *
 * Knows nothing of gRPC, NATS or the worker loop; must not import cli/.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { initBackend } from '../shared/backend/select.js';
import { selectVectorKernels } from '../shared/backend/vector-kernels.js';
import { runFingerprints } from '../shared/cluster/fingerprints.js';
import { gradientDigest } from '../shared/cluster/gradient-digest.js';
import { encodeStats } from '../shared/cluster/stats-json.js';
import { BackendError, ProtocolError } from '../shared/errors.js';
import { createRootLogger, type Logger } from '../shared/log.js';
import { phaseSpecs, updateSettings, type TrainPhase } from '../shared/training/phase-settings.js';
import type { DatasetName, RunDatasets } from '../shared/training/batches.js';
import { Replica, type UpdateSettings } from '../shared/training/replica.js';
import { prepareRun } from '../shared/run-setup.js';
import { WorkerCompute } from './compute.js';
import {
  encodeError, owned, transferList,
  type ApplyArgs, type AuditArgs, type Calls, type CallKind, type EvalArgs, type GradientsArgs, type LoadArgs, type Progress, type Reply, type Request, type ThreadOptions,
} from './compute-protocol.js';

interface Loaded {
  compute: WorkerCompute;
  numLabels: number;
}

interface Held {
  phase: TrainPhase;
  step: number;
  replica: Replica;
  update: UpdateSettings;
}

type Answer<K extends CallKind> = { result: Calls[K]['result']; transfer?: ArrayBuffer[] };

if (parentPort === null) throw new BackendError('compute-thread.ts: expected to run in a worker thread (ComputeHost starts it), got the main thread');
const port = parentPort;
const opts = workerData as ThreadOptions;
// The root logger for what `bertfleet worker` logged on its main thread before (backend, data), so the lines read the same.
const root: Logger = createRootLogger({ service: 'worker', level: opts.logLevel, fd: 2, bindings: opts.logBindings });
const log = root.child({ component: 'compute-thread' });

let loaded: Loaded | null = null;
let held: Held | null = null;
/** This thread's backend fingerprint, sent with every audit digest. */
let backendPrint = '';

/** Blocks this thread (never the main one): the straggler test hook. */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** The run's datasets, each batch followed by the test hook's delay (one batch is read per micro-batch). */
function withDelay(data: RunDatasets, ms: number): RunDatasets {
  if (ms <= 0) return data;
  const sources: RunDatasets['sources'] = {};
  for (const [name, s] of Object.entries(data.sources) as [DatasetName, NonNullable<RunDatasets['sources'][DatasetName]>][]) {
    sources[name] = { size: s.size, batch: (indices) => { const b = s.batch(indices); sleepSync(ms); return b; } };
  }
  return { ...data, sources };
}

async function start(): Promise<Answer<'start'>> {
  if (loaded !== null) throw new ProtocolError('compute thread: start: expected a fresh thread, got one already started');
  const backend = await initBackend(opts.backend);
  root.info(
    { backend: backend.name, blasThreads: backend.blasThreads, details: backend.details, skipped: backend.tried.map((t) => `${t.name}: ${t.error}`) },
    'backend chosen',
  );
  if (backend.openblasCore !== null) root.info(backend.openblasCore, 'openblas core chosen');
  const vector = selectVectorKernels('auto'); // same bytes either way; the choice is speed
  root.info({ vectorKernels: vector.name, reason: vector.reason }, 'vector kernels chosen');
  const { bert, data } = await prepareRun(opts.config, root, false);
  const compute = new WorkerCompute(bert, withDelay(data.datasets, opts.delayMsPerMicroBatch), { classWeights: opts.config.finetune.classWeights });
  loaded = { compute, numLabels: data.datasets.labels.length };
  const fingerprints = runFingerprints(bert, data, backend);
  backendPrint = fingerprints.backend_fingerprint;
  return { result: { fingerprints, bert, numLabels: loaded.numLabels, backend } };
}

function ready(call: CallKind): Loaded {
  if (loaded === null) throw new ProtocolError(`compute thread: ${call}: expected a started thread, got none`);
  return loaded;
}

function replica(call: CallKind): Held {
  if (held === null) throw new ProtocolError(`compute thread: ${call}: expected a loaded replica, got none (load the state first)`);
  return held;
}

function load(a: LoadArgs): Answer<'load'> {
  const { compute, numLabels } = ready('load');
  held?.replica.releaseTensors();
  held = null;
  // The Replica constructor checks every length against the phase's layout (ShapeError).
  const r = new Replica(phaseSpecs(compute.bert, a.phase, numLabels), a.params, { m: a.m, v: a.v });
  held = { phase: a.phase, step: a.step, replica: r, update: updateSettings(opts.config, a.phase) };
  return { result: null };
}

/** Posts each subtree's sum the moment it is complete (transferred), then answers with the stats. */
function gradients(id: number, a: GradientsArgs): Answer<'gradients'> {
  const { compute } = ready('gradients');
  const h = replica('gradients');
  const t0 = performance.now();
  const { stats } = compute.gradients(h.replica, a.dataset, a.micro, a.subtrees, a.counts, (p) => {
    const partial = { ...p, grad: owned(p.grad) };
    port.postMessage({ id, partial } satisfies Progress, transferList([partial.grad]));
  });
  return { result: { partials: [], stats, computeMs: performance.now() - t0 } };
}

function apply(a: ApplyArgs): Answer<'apply'> {
  const h = replica('apply');
  if (a.step !== h.step) {
    throw new ProtocolError(`compute thread: apply: expected the gradient of ${h.phase} step ${h.step}, got step ${a.step}`);
  }
  const { gradNorm, lr, firstBad } = h.replica.applyGradient(a.grad, a.step, h.update);
  // Not applied, as on every replica; the coordinator stops or skips per the run config (nonFinite).
  if (firstBad !== null) log.warn({ phase: h.phase, step: a.step, tensor: firstBad.tensor, index: firstBad.index, value: String(firstBad.value) }, 'non-finite reduced gradient: step not applied');
  h.step = a.step + 1;
  const checksum = a.checksum ? h.replica.checksum() : null;
  return { result: { grad: a.grad, checksum, gradNorm, lr }, transfer: transferList([a.grad]) };
}

function evaluate(a: EvalArgs): Answer<'evaluate'> {
  const { compute } = ready('evaluate');
  const h = replica('evaluate');
  const result = a.chunks.map((c) => {
    const r = compute.evaluate(h.replica, a.dataset, c.examples);
    return { index: c.index, stats: r.stats, predictions: owned(r.predictions) };
  });
  return { result, transfer: transferList(result.map((r) => r.predictions)) };
}

/**
 * The gradient audit: one micro-batch's gradient alone (a subtree of one),
 * on the replica before the step's update, reduced to its digest. The
 * buffer goes back to the pool; nothing the step uploads is touched.
 */
function audit(a: AuditArgs): Answer<'audit'> {
  const { compute } = ready('audit');
  const h = replica('audit');
  const i = a.micro.index;
  const { partials, stats } = compute.gradients(h.replica, a.dataset, [a.micro], [{ lo: i, hi: i + 1 }], a.counts);
  const grad = partials[0]!.grad;
  if (opts.faultInject === 'audit-flip') flipOneBit(grad);
  const digest = gradientDigest(grad, h.replica.layout, encodeStats(stats.get(i)!));
  compute.recycle(grad);
  return { result: { ...digest, index: i, fingerprint: backendPrint } };
}

/** Test hook (BERTFLEET_TEST_FAULT_INJECT=audit-flip): the lowest mantissa bit of the last value, as a faulty core might. */
function flipOneBit(grad: Float32Array): void {
  const bits = new Uint32Array(grad.buffer, grad.byteOffset, grad.length);
  bits[bits.length - 1]! ^= 1;
}

function drop(): Answer<'drop'> {
  held?.replica.releaseTensors();
  held = null;
  return { result: null };
}

async function handle(req: Request): Promise<Answer<CallKind>> {
  switch (req.kind) {
    case 'start': return start();
    case 'load': return load(req.args);
    case 'gradients': return gradients(req.id, req.args);
    case 'apply': return apply(req.args);
    case 'checksum': return { result: replica('checksum').replica.checksum() };
    case 'evaluate': return evaluate(req.args);
    case 'drop': return drop();
    case 'recycle': return (ready('recycle').compute.recycle(req.args.grad), { result: null });
    case 'audit': return audit(req.args);
    default: throw new ProtocolError(`compute thread: expected a known call, got ${JSON.stringify((req as { kind?: unknown }).kind)}`);
  }
}

async function serve(req: Request): Promise<void> {
  let reply: Reply;
  let transfer: ArrayBuffer[] = [];
  try {
    const a = await handle(req);
    reply = { id: req.id, ok: true, result: a.result };
    transfer = a.transfer ?? [];
  } catch (err) {
    log.debug({ err, call: req.kind }, 'call failed');
    reply = { id: req.id, ok: false, error: encodeError(err) };
  }
  try {
    port.postMessage(reply, transfer);
  } catch (err) {
    // The result could not be cloned (a bug here): the caller gets that error instead of waiting forever.
    port.postMessage({ id: req.id, ok: false, error: encodeError(err) } satisfies Reply);
  }
}

// One call at a time, in arrival order: the replica is shared state.
let queue: Promise<void> = Promise.resolve();
port.on('message', (req: Request) => {
  queue = queue.then(() => serve(req));
});

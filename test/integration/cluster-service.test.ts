/**
 * The coordinator's gRPC service and distributed executor on a real loopback
 * port, driven by real clients standing in for workers: registration accepted
 * and refused (each fingerprint and the protocol version named; over
 * plaintext a fingerprint refusal gives only what the worker sent, not the
 * run's value), a gradient exchange larger than 4 MiB finished to the single-process
 * bits, refused uploads (wrong length, already reduced, unregistered, not
 * assigned), a late joiner's state and assignment, evaluation results put
 * back in chunk order, a replica checksum mismatch stopping the run naming
 * the worker, and a silent or departing worker's share handed to the live one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoordinatorService } from '../../coordinator/coordinator-service.js';
import { DistributedExecutor, NoWorkersError } from '../../coordinator/distributed-executor.js';
import type { RunFingerprints } from '../../shared/cluster/fingerprints.js';
import { encodeIndexedStats, encodeStats } from '../../shared/cluster/stats-json.js';
import { parseRunConfig } from '../../shared/config/run-config.js';
import { AlreadyReceivedError, ProtocolError, ReplicaMismatchError, ShapeError } from '../../shared/errors.js';
import { silentLogger } from '../../shared/log.js';
import type { ParamSpec } from '../../shared/model/params.js';
import { Replica } from '../../shared/training/replica.js';
import { treeSum, type Range } from '../../shared/training/tree-sum.js';
import type { CoordinatorClient } from '../../shared/wire/client.js';
import { createCoordinatorClient, createServer } from '../../shared/wire/grpc.js';
import { PROTOCOL_VERSION, type RegisterRequest } from '../../shared/wire/messages.js';
import { isPortFree } from '../helpers/ports.js';

const log = silentLogger();
const P = 1_300_000; // 5.2 MB of float32: beyond gRPC's default 4 MiB message limit
const SPECS: ParamSpec[] = [{ name: 'w', shape: [P], decay: true, init: 'zeros' }];
const FP: RunFingerprints = {
  protocol_version: PROTOCOL_VERSION, model_config_fingerprint: 'cfg-1', vocab_fingerprint: 'vocab-1', data_fingerprint: 'data-1', backend_fingerprint: 'backend=cpu',
};
const STATS = { sequences: 4, lossSum: 2, nspLossSum: 1, correct: 1, nspCorrect: 2, maskedTokens: 5 };

function leaf(i: number): Float32Array {
  const v = new Float32Array(P);
  for (let k = 0; k < P; k += 997) v[k] = Math.fround(1 / (i + 3) + k * 1e-7);
  return v;
}
const bits = (v: Float32Array): Buffer => Buffer.from(v.buffer, v.byteOffset, v.byteLength);

function request(id: string, over: Partial<RegisterRequest> = {}): RegisterRequest {
  return { worker_id: id, ...FP, pid: 1, hostname: 'test', ...over };
}

function work(step: number, M = 3) {
  const microBatches = Array.from({ length: M }, (_, j) => ({ index: j, examples: [4 * j, 4 * j + 1, 4 * j + 2, 4 * j + 3], dropoutSeed: 9 + j }));
  return { phase: 'pretrain' as const, step, dataset: 'pretrain' as const, microBatches, counts: { sequences: 4 * M, maskedTokens: 20 } };
}

async function cluster(opts: { expectedWorkers: number; cluster?: Record<string, number> }) {
  const config = parseRunConfig({ pretrain: { steps: 4, globalBatch: 12, microBatch: 4 }, cluster: { checksumEverySteps: 2, ...opts.cluster } });
  // Pinned from the start, as a resumed run's trainer state pins it (otherwise the first worker admitted would).
  const pinnedCompute = { fingerprint: FP.backend_fingerprint, source: 'the test' };
  const executor = new DistributedExecutor({ runId: 'run-test', config, fingerprints: FP, pinnedCompute, expectedWorkers: opts.expectedWorkers, log });
  const server = createServer(new CoordinatorService(executor, { log, pollMs: 300 }), { log, tls: null });
  const port = await server.startServer('127.0.0.1', 0);
  const connect = () => createCoordinatorClient(`127.0.0.1:${port}`, { log, tls: null });
  const replica = new Replica(SPECS, new Float32Array(P).fill(0.5));
  return { executor, server, port, connect, replica, config };
}

async function upload(c: CoordinatorClient, id: string, step: number, range: Range, grad = treeSum(range, leaf)) {
  const stats = Array.from({ length: range.hi - range.lo }, (_, k) => ({ index: range.lo + k, stats: STATS }));
  return c.pushGradient({ worker_id: id, step, phase: 'pretrain', range, stats_json: encodeIndexedStats(stats) }, grad);
}

describe('coordinator service: registration, exchange, refusals, late join, evaluation', () => {
  let h: Awaited<ReturnType<typeof cluster>>;
  let w1: CoordinatorClient;
  let w2: CoordinatorClient;

  beforeAll(async () => {
    h = await cluster({ expectedWorkers: 2 });
    w1 = await h.connect();
    w2 = await h.connect();
  });

  afterAll(async () => {
    await h.executor.close(100);
    w1.close();
    w2.close();
    await h.server.stop({ graceMs: 500 });
    expect(await isPortFree(h.port)).toBe(true);
  });

  it('hands out the run config and refuses another protocol version', async () => {
    const rc = await w1.getRunConfig({ worker_id: 'w1', protocol_version: PROTOCOL_VERSION });
    expect(rc.run_id).toBe('run-test');
    expect(JSON.parse(rc.run_config_json)).toEqual(h.config);
    const refused = w1.getRunConfig({ worker_id: 'w1', protocol_version: 1 });
    await expect(refused).rejects.toBeInstanceOf(ProtocolError);
    await expect(refused).rejects.toThrow(`worker w1: protocol_version differs: expected ${PROTOCOL_VERSION}, got 1`);
  });

  const mismatches: Array<[keyof RunFingerprints, string | number]> = [
    ['protocol_version', 1],
    ['model_config_fingerprint', 'cfg-2'],
    ['vocab_fingerprint', 'vocab-2'],
    ['data_fingerprint', 'data-2'],
    ['backend_fingerprint', 'backend=wasm-blas'],
  ];
  for (const [field, value] of mismatches) {
    it(`refuses a worker whose ${field} differs, with FAILED_PRECONDITION naming it but not the run's value (plaintext)`, async () => {
      const err = await w1.register(request('w9', { [field]: value })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProtocolError);
      expect((err as Error).message).toBe(`registration of worker w9 refused: ${field} differs from the run's (got ${value}); the expected value is in the coordinator's log`);
      expect((err as Error).cause).toMatchObject({ code: 9 });
    });
  }

  it('accepts workers whose fingerprints match', async () => {
    await expect(w1.register(request('w1'))).resolves.toMatchObject({ run_id: 'run-test', protocol_version: PROTOCOL_VERSION, needs_state: true });
    await expect(w2.register(request('w2'))).resolves.toMatchObject({ membership_version: 2 });
    expect(h.executor.membership.active().map((m) => m.id)).toEqual(['w1', 'w2']);
  });

  it('reduces a step of 5.2 MB partial sums to the single-process bits and serves it to both workers', async () => {
    await h.executor.startPhase({ phase: 'pretrain', specs: SPECS, dataset: 'pretrain', replica: h.replica, startStep: 0, update: undefined as never });
    const step = h.executor.runStep(work(0));
    const a1 = await w1.nextAssignment({ worker_id: 'w1', after_seq: 0 });
    const a2 = await w2.nextAssignment({ worker_id: 'w2', after_seq: 0 });
    expect(a1).toMatchObject({ kind: 'train', phase: 'pretrain', step: 0, num_micro_batches: 3, subtrees: [{ lo: 0, hi: 1 }, { lo: 1, hi: 2 }] });
    expect(a1.micro_batches.map((m) => m.index)).toEqual([0, 1]);
    expect(a1.micro_batches[1]).toEqual({ index: 1, examples: [4, 5, 6, 7], dropout_seed: 10 });
    expect(a1.counts).toEqual({ sequences: 12, masked_tokens: 20, has_masked_tokens: true });
    expect(a2).toMatchObject({ kind: 'train', subtrees: [{ lo: 2, hi: 3 }], micro_batches: [{ index: 2 }] });

    // Refusals while the step is open: each names what was wrong.
    const short = await upload(w1, 'w1', 0, { lo: 0, hi: 1 }, new Float32Array(1000)).catch((e: unknown) => e);
    expect(short).toBeInstanceOf(ShapeError);
    expect((short as Error).message).toBe(`gradient for step 0 from w1 [0, 1): expected ${P * 4} bytes, got 4000 bytes`);
    await expect(upload(w2, 'ghost', 0, { lo: 2, hi: 3 })).rejects.toThrow(/worker "ghost" is not registered/);
    await expect(upload(w2, 'w2', 0, { lo: 0, hi: 1 })).rejects.toThrow(/range \[0, 1\) is not assigned to it: expected one of \[2, 3\)/);
    await expect(upload(w2, 'w2', 5, { lo: 2, hi: 3 })).rejects.toThrow(/no such step is assigned \(open: pretrain step 0\)/);

    const pulls = [w1, w2].map((c, i) => c.pullReduced({ worker_id: `w${i + 1}`, step: 0, phase: 'pretrain' }));
    await upload(w2, 'w2', 0, { lo: 2, hi: 3 });
    await upload(w1, 'w1', 0, { lo: 1, hi: 2 });
    await upload(w1, 'w1', 0, { lo: 0, hi: 1 });
    const expected = treeSum({ lo: 0, hi: 3 }, leaf);
    const outcome = await step;
    expect(bits(outcome.grad).equals(bits(expected))).toBe(true);
    expect(outcome.stats).toEqual([STATS, STATS, STATS]);
    for (const got of await Promise.all(pulls)) expect(bits(got).equals(bits(expected))).toBe(true);

    // A repeat of a delivered upload (a retry whose first attempt landed) is recognised, not counted twice.
    const late = await upload(w1, 'w1', 0, { lo: 0, hi: 1 }).catch((e: unknown) => e);
    expect(late).toBeInstanceOf(AlreadyReceivedError);
    expect((late as Error).message).toMatch(/upload of step 0 \(pretrain\) from w1: range \[0, 1\) was already received/);
  });

  it('gives a late joiner the state after the last applied step, then the next step with no work', async () => {
    h.replica.applyGradient(new Float32Array(P).fill(0.01), 0, {
      adamW: { beta1: 0.9, beta2: 0.999, epsilon: 1e-6, weightDecay: 0.01 }, clipNorm: 1, schedule: { peakLr: 1e-3, warmupSteps: 1, totalSteps: 4 },
    });
    await h.executor.afterUpdate('pretrain', 0, () => h.replica.checksum());
    const w3 = await h.connect();
    try {
      await w3.register(request('w3'));
      const state = await w3.fetchState({ worker_id: 'w3', phase: 'pretrain' });
      expect(state.header).toMatchObject({ phase: 'pretrain', step: 1 });
      expect(bits(state.tensors.get('params')!.values).equals(bits(h.replica.params))).toBe(true);
      expect(bits(state.tensors.get('adamw.v')!.values).equals(bits(h.replica.opt.v))).toBe(true);
      const step = h.executor.runStep(work(1, 2)); // w3 registered before this step: it is in the partition
      const a3 = await w3.nextAssignment({ worker_id: 'w3', after_seq: state.header.seq });
      expect(a3).toMatchObject({ kind: 'train', step: 1, micro_batches: [] });
      const a1 = await w1.nextAssignment({ worker_id: 'w1', after_seq: state.header.seq });
      const a2 = await w2.nextAssignment({ worker_id: 'w2', after_seq: state.header.seq });
      // Every worker asks for the reduced gradient first; the coordinator updates once all have it.
      const pulls = (['w1', 'w2', 'w3'] as const).map((id, i) => [w1, w2, w3][i]!.pullReduced({ worker_id: id, step: 1, phase: 'pretrain' }));
      await upload(w1, 'w1', 1, a1.subtrees[0]!);
      await upload(w2, 'w2', 1, a2.subtrees[0]!);
      await step;
      for (const pulled of await Promise.all(pulls)) expect(bits(pulled).equals(bits(treeSum({ lo: 0, hi: 2 }, leaf)))).toBe(true);
    } finally {
      w3.close();
      h.executor.membership.markLeft('w3', 'drained', 'test done');
    }
  });

  it('assembles evaluation results in chunk order, whatever the arrival order', async () => {
    const chunks = [[0, 1], [2, 3], [4], [5, 6], [7]];
    const before = h.executor.tasks.lastSeq;
    const evaluating = h.executor.evaluate({ phase: 'pretrain', dataset: 'pretrain-heldout', chunks });
    const a1 = await w1.nextAssignment({ worker_id: 'w1', after_seq: before });
    const a2 = await w2.nextAssignment({ worker_id: 'w2', after_seq: before });
    expect(a1.eval_chunks.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(a2.eval_chunks).toEqual([{ index: 3, examples: [5, 6] }, { index: 4, examples: [7] }]);
    const result = (index: number) => ({ index, stats_json: encodeStats({ ...STATS, lossSum: index }), predictions: [index, 1] });
    await expect(w2.pushEvalResults({ worker_id: 'w2', seq: a2.seq, results: [result(0)] })).rejects.toThrow(/chunk 0 is not assigned to it: expected chunks in \[3, 5\)/);
    await w2.pushEvalResults({ worker_id: 'w2', seq: a2.seq, results: [result(4), result(3)] });
    await w1.pushEvalResults({ worker_id: 'w1', seq: a1.seq, results: [result(2), result(0), result(1)] });
    const out = await evaluating;
    expect(out.stats.map((s) => s.lossSum)).toEqual([0, 1, 2, 3, 4]);
    expect(out.predictions.map((p) => [...p])).toEqual([[0, 1], [1, 1], [2, 1], [3, 1], [4, 1]]);
  });
});

describe('coordinator service: failures that stop the run', () => {
  it('stops the run with ReplicaMismatchError naming the worker whose checksum differs', async () => {
    const h = await cluster({ expectedWorkers: 1 });
    const w1 = await h.connect();
    try {
      await w1.register(request('w1'));
      await h.executor.startPhase({ phase: 'pretrain', specs: SPECS, dataset: 'pretrain', replica: h.replica, startStep: 1, update: undefined as never });
      // The worker reports first; the coordinator's own checksum comes with its update.
      await expect(w1.reportChecksum({ worker_id: 'w1', phase: 'pretrain', step: 2, checksum: 'bad' })).resolves.toEqual({ match: true, reference_checksum: '' });
      await expect(h.executor.afterUpdate('pretrain', 1, () => 'good')).rejects.toBeInstanceOf(ReplicaMismatchError);
      expect(h.executor.fatal?.message).toBe("replica of worker w1 differs from the coordinator's after pretrain step 2: expected checksum good, got bad");
      await expect(h.executor.runStep(work(2))).rejects.toBeInstanceOf(ReplicaMismatchError);
    } finally {
      await h.executor.close(100);
      w1.close();
      await h.server.stop({ graceMs: 200 });
    }
  });

  it('marks a silent worker left and hands what it owed to the live one, which completes the step to the single-process bits', async () => {
    const h = await cluster({ expectedWorkers: 2, cluster: { heartbeatIntervalMs: 100, heartbeatTimeoutMs: 800 } });
    const [w1, w2] = [await h.connect(), await h.connect()];
    try {
      await w1.register(request('w1'));
      await w2.register(request('w2'));
      await h.executor.startPhase({ phase: 'pretrain', specs: SPECS, dataset: 'pretrain', replica: h.replica, startStep: 0, update: undefined as never });
      const step = h.executor.runStep(work(0));
      const beating = setInterval(() => void w1.heartbeat({ worker_id: 'w1', step: 0, status: 'training' }).catch(() => undefined), 100);
      const a1 = await w1.nextAssignment({ worker_id: 'w1', after_seq: 0 });
      for (const r of a1.subtrees) await upload(w1, 'w1', 0, r);
      // w2 never uploads: after the timeout its micro-batches come to w1 in a recovery task.
      let recovery = await w1.nextAssignment({ worker_id: 'w1', after_seq: a1.seq });
      while (recovery.kind === 'idle') recovery = await w1.nextAssignment({ worker_id: 'w1', after_seq: a1.seq });
      expect(recovery).toMatchObject({ kind: 'train', step: 0, recovery: true });
      expect(recovery.micro_batches.map((m) => m.index)).toEqual([2]);
      for (const r of recovery.subtrees) await upload(w1, 'w1', 0, r);
      const out = await step;
      clearInterval(beating);
      expect(bits(out.grad).equals(bits(treeSum({ lo: 0, hi: 3 }, leaf)))).toBe(true);
      await expect(w2.heartbeat({ worker_id: 'w2', step: 0, status: 'training' })).rejects.toThrow(/worker w2 is not registered: it left the run \(heartbeat_timeout\)/);
      // A late upload from the departed worker is refused; a repeat of w1's is recognised as delivered.
      await expect(upload(w2, 'w2', 0, { lo: 2, hi: 3 })).rejects.toThrow(/not registered/);
      await expect(upload(w1, 'w1', 0, recovery.subtrees[0]!)).rejects.toThrow(AlreadyReceivedError);
    } finally {
      await h.executor.close(100);
      w1.close();
      w2.close();
      await h.server.stop({ graceMs: 200 });
    }
  });

  it('hands the share of a worker that leaves (drained) to the others at once', async () => {
    const h = await cluster({ expectedWorkers: 2 });
    const [w1, w2] = [await h.connect(), await h.connect()];
    try {
      await w1.register(request('w1'));
      await w2.register(request('w2'));
      await h.executor.startPhase({ phase: 'pretrain', specs: SPECS, dataset: 'pretrain', replica: h.replica, startStep: 0, update: undefined as never });
      const step = h.executor.runStep(work(0, 4));
      const a1 = await w1.nextAssignment({ worker_id: 'w1', after_seq: 0 });
      expect(await w2.leave({ worker_id: 'w2', reason: 'drained', detail: '' })).toEqual({ reassigned: 2 });
      expect(await w2.leave({ worker_id: 'w2', reason: 'drained', detail: '' })).toEqual({ reassigned: 0 });
      for (const r of a1.subtrees) await upload(w1, 'w1', 0, r, treeSum(r, leaf));
      const recovery = await w1.nextAssignment({ worker_id: 'w1', after_seq: a1.seq });
      expect(recovery.micro_batches.map((m) => m.index)).toEqual([2, 3]);
      for (const r of recovery.subtrees) await upload(w1, 'w1', 0, r, treeSum(r, leaf));
      const out = await step;
      expect(bits(out.grad).equals(bits(treeSum({ lo: 0, hi: 4 }, leaf)))).toBe(true);
    } finally {
      await h.executor.close(100);
      w1.close();
      w2.close();
      await h.server.stop({ graceMs: 200 });
    }
  });

  it('waits for a worker when the last one leaves mid-step, and hands its share to the one that joins', async () => {
    const h = await cluster({ expectedWorkers: 1 });
    const [w1, w3] = [await h.connect(), await h.connect()];
    try {
      await w1.register(request('w1'));
      await h.executor.startPhase({ phase: 'pretrain', specs: SPECS, dataset: 'pretrain', replica: h.replica, startStep: 0, update: undefined as never });
      const step = h.executor.runStep(work(0));
      const a1 = await w1.nextAssignment({ worker_id: 'w1', after_seq: 0 });
      expect(a1.subtrees).toEqual([{ lo: 0, hi: 3 }]);
      expect(await w1.leave({ worker_id: 'w1', reason: 'drained', detail: '' })).toEqual({ reassigned: 3 });
      await new Promise((r) => setTimeout(r, 300)); // nobody is live: the step waits
      await w3.register(request('w3'));
      let recovery = await w3.nextAssignment({ worker_id: 'w3', after_seq: a1.seq });
      while (recovery.kind === 'idle' || !recovery.recovery) recovery = await w3.nextAssignment({ worker_id: 'w3', after_seq: recovery.seq });
      expect(recovery.micro_batches.map((m) => m.index)).toEqual([0, 1, 2]);
      for (const r of recovery.subtrees) await upload(w3, 'w3', 0, r);
      const out = await step;
      expect(bits(out.grad).equals(bits(treeSum({ lo: 0, hi: 3 }, leaf)))).toBe(true);
    } finally {
      await h.executor.close(100);
      w1.close();
      w3.close();
      await h.server.stop({ graceMs: 200 });
    }
  });

  it('fails the run with NoWorkersError naming the limit when no worker comes back in cluster.workerWaitTimeoutMs', async () => {
    const h = await cluster({ expectedWorkers: 1, cluster: { workerWaitTimeoutMs: 600 } });
    const w1 = await h.connect();
    try {
      await w1.register(request('w1'));
      await h.executor.startPhase({ phase: 'pretrain', specs: SPECS, dataset: 'pretrain', replica: h.replica, startStep: 0, update: undefined as never });
      const step = h.executor.runStep(work(0));
      await w1.nextAssignment({ worker_id: 'w1', after_seq: 0 });
      await w1.leave({ worker_id: 'w1', reason: 'drained', detail: '' });
      const err = await step.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NoWorkersError);
      expect((err as Error).message).toMatch(/^no worker joined the run for \d+ ms \(cluster.workerWaitTimeoutMs 600\)/);
    } finally {
      await h.executor.close(100);
      w1.close();
      await h.server.stop({ graceMs: 200 });
    }
  });
});

/**
 * The gradient audit at the coordinator's gRPC door, driven by real clients
 * standing in for workers (cluster.auditEverySteps = 1): the step's task gives
 * the audited micro-batch (step mod M) to its owner and one other worker
 * only; two equal digests pass; two different ones fail the run with a
 * GradientAuditError naming both workers and the first differing tensor, also
 * after the step was reduced; an audit whose worker left is dropped, not an
 * error; a digest from a worker not asked is refused.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CoordinatorService } from '../../coordinator/coordinator-service.js';
import { DistributedExecutor } from '../../coordinator/distributed-executor.js';
import type { RunFingerprints } from '../../shared/cluster/fingerprints.js';
import { gradientDigest } from '../../shared/cluster/gradient-digest.js';
import { encodeIndexedStats } from '../../shared/cluster/stats-json.js';
import { parseRunConfig } from '../../shared/config/run-config.js';
import { GradientAuditError, ProtocolError } from '../../shared/errors.js';
import { silentLogger } from '../../shared/log.js';
import type { ParamSpec } from '../../shared/model/params.js';
import { Replica } from '../../shared/training/replica.js';
import { treeSum, type Range } from '../../shared/training/tree-sum.js';
import type { CoordinatorClient } from '../../shared/wire/client.js';
import { createCoordinatorClient, createServer } from '../../shared/wire/grpc.js';
import { PROTOCOL_VERSION, type AuditReport } from '../../shared/wire/messages.js';

const log = silentLogger();
const SPECS: ParamSpec[] = [{ name: 'w', shape: [6], decay: true, init: 'zeros' }, { name: 'b', shape: [2], decay: false, init: 'zeros' }];
const LAYOUT = { specs: SPECS, offsets: [0, 6], total: 8 };
const FP: RunFingerprints = {
  protocol_version: PROTOCOL_VERSION, model_config_fingerprint: 'cfg-1', vocab_fingerprint: 'vocab-1', data_fingerprint: 'data-1', backend_fingerprint: 'backend=cpu',
};
const STATS = { sequences: 4, lossSum: 2, nspLossSum: 1, correct: 1, nspCorrect: 2, maskedTokens: 5 };
const leaf = (i: number): Float32Array => Float32Array.from({ length: 8 }, (_, k) => Math.fround(1 / (i + 3) + k / 8));

function work(step: number) {
  const microBatches = Array.from({ length: 3 }, (_, j) => ({ index: j, examples: [4 * j, 4 * j + 1, 4 * j + 2, 4 * j + 3], dropoutSeed: 9 + j }));
  return { phase: 'pretrain' as const, step, dataset: 'pretrain' as const, microBatches, counts: { sequences: 12, maskedTokens: 20 } };
}

/** A worker's report of micro-batch `index` of `step`, from `grad`. */
function report(workerId: string, step: number, index: number, grad: Float32Array): AuditReport {
  const d = gradientDigest(grad, LAYOUT, JSON.stringify(STATS));
  return { worker_id: workerId, phase: 'pretrain', step, micro_batch: index, sha256: d.sha256, tensors: d.tensors, stats_json: d.statsJson, fingerprint: `backend=cpu;host=${workerId}` };
}

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c();
});

async function cluster(): Promise<{ executor: DistributedExecutor; w1: CoordinatorClient; w2: CoordinatorClient }> {
  const config = parseRunConfig({ pretrain: { steps: 4, globalBatch: 12, microBatch: 4 }, cluster: { auditEverySteps: 1, heartbeatTimeoutMs: 60_000 } });
  const executor = new DistributedExecutor({ runId: 'run-audit', config, fingerprints: FP, expectedWorkers: 2, log });
  const server = createServer(new CoordinatorService(executor, { log, pollMs: 300 }), { log, tls: null });
  const port = await server.startServer('127.0.0.1', 0);
  const [w1, w2] = [await createCoordinatorClient(`127.0.0.1:${port}`, { log, tls: null }), await createCoordinatorClient(`127.0.0.1:${port}`, { log, tls: null })];
  cleanup.push(async () => {
    await executor.close(100);
    w1.close();
    w2.close();
    await server.stop({ graceMs: 200 });
  });
  for (const [c, id] of [[w1, 'w1'], [w2, 'w2']] as const) await c.register({ worker_id: id, ...FP, pid: 1, hostname: 'test' });
  await executor.startPhase({ phase: 'pretrain', specs: SPECS, dataset: 'pretrain', replica: new Replica(SPECS, new Float32Array(8)), startStep: 0, update: undefined as never });
  return { executor, w1, w2 };
}

/** Both workers deliver their shares of `step` and pull the reduced gradient. */
async function deliver(clients: [CoordinatorClient, CoordinatorClient], step: number, subtrees: [Range[], Range[]]): Promise<void> {
  const pulls = clients.map((c, i) => c.pullReduced({ worker_id: `w${i + 1}`, step, phase: 'pretrain' }));
  for (const [i, c] of clients.entries()) {
    for (const r of subtrees[i]!) {
      const stats = Array.from({ length: r.hi - r.lo }, (_, k) => ({ index: r.lo + k, stats: STATS }));
      await c.pushGradient({ worker_id: `w${i + 1}`, step, phase: 'pretrain', range: r, stats_json: encodeIndexedStats(stats) }, treeSum(r, leaf));
    }
  }
  await Promise.all(pulls);
}

describe('coordinator: gradient audit over gRPC', () => {
  it('gives the audited micro-batch to its owner and one other worker, passes equal digests and fails on different ones', async () => {
    const { executor, w1, w2 } = await cluster();
    const step0 = executor.runStep(work(0));
    const [a1, a2] = [await w1.nextAssignment({ worker_id: 'w1', after_seq: 0 }), await w2.nextAssignment({ worker_id: 'w2', after_seq: 0 })];
    // w1 owns [0, 2), w2 [2, 3): micro-batch 0 mod 3 is w1's, audited by w2 too.
    expect(a1.audit).toEqual({ index: 0, examples: [0, 1, 2, 3], dropout_seed: 9 });
    expect(a2.audit).toEqual(a1.audit);
    expect(a2.micro_batches.map((m) => m.index)).toEqual([2]);
    await deliver([w1, w2], 0, [a1.subtrees, a2.subtrees]);
    await step0;
    // Reports may come after the step was reduced.
    expect(await w2.reportAudit(report('w2', 0, 0, leaf(0)))).toEqual({ outcome: 'waiting' });
    expect(await w1.reportAudit(report('w1', 0, 0, leaf(0)))).toEqual({ outcome: 'match' });
    expect(executor.audits.passed).toBe(1);

    const step1 = executor.runStep(work(1));
    step1.catch(() => undefined); // awaited below
    const b1 = await w1.nextAssignment({ worker_id: 'w1', after_seq: a1.seq });
    expect(b1.audit?.index).toBe(1);
    await expect(w1.reportAudit(report('w3', 1, 1, leaf(1)))).rejects.toThrow(ProtocolError);
    const wrong = leaf(1);
    wrong[7] = Math.fround(wrong[7]! + 1e-6);
    expect(await w2.reportAudit(report('w2', 1, 1, wrong))).toEqual({ outcome: 'waiting' });
    expect(await w1.reportAudit(report('w1', 1, 1, leaf(1)))).toEqual({ outcome: 'mismatch' });
    expect(executor.fatal).toBeInstanceOf(GradientAuditError);
    expect(executor.fatal?.message).toMatch(/^gradient audit of pretrain step 1, micro-batch 1: workers w1 and w2 computed different gradients; first differing tensor: b \(crc32 0x[0-9a-f]{8} against 0x[0-9a-f]{8}\)\. w1: sha256 [0-9a-f]{64}, fingerprint backend=cpu;host=w1\. w2: sha256 [0-9a-f]{64}, fingerprint backend=cpu;host=w2$/);
    await expect(step1).rejects.toBeInstanceOf(GradientAuditError);
  });

  it('drops the audit of a worker that left: a late digest is answered dropped and the run goes on', async () => {
    const { executor, w1, w2 } = await cluster();
    const step0 = executor.runStep(work(0));
    const a1 = await w1.nextAssignment({ worker_id: 'w1', after_seq: 0 });
    await w2.nextAssignment({ worker_id: 'w2', after_seq: 0 });
    expect(await w1.reportAudit(report('w1', 0, 0, leaf(0)))).toEqual({ outcome: 'waiting' });
    await w2.leave({ worker_id: 'w2', reason: 'drained', detail: '' });
    expect([executor.audits.waiting, executor.audits.dropped]).toEqual([0, 1]);
    expect(await w1.reportAudit(report('w1', 0, 0, leaf(0)))).toEqual({ outcome: 'dropped' });
    // w2's micro-batch comes to w1 in a recovery task, which carries no audit.
    for (const r of a1.subtrees) await deliver1(w1, r);
    let recovery = await w1.nextAssignment({ worker_id: 'w1', after_seq: a1.seq });
    while (recovery.kind === 'idle') recovery = await w1.nextAssignment({ worker_id: 'w1', after_seq: a1.seq });
    expect(recovery).toMatchObject({ recovery: true, audit: null });
    const pull = w1.pullReduced({ worker_id: 'w1', step: 0, phase: 'pretrain' });
    for (const r of recovery.subtrees) await deliver1(w1, r);
    await pull;
    await step0;
    expect(executor.fatal).toBeNull();
    // One worker left: the next step's audit is skipped.
    executor.prepareStep(work(1));
    const b1 = await w1.nextAssignment({ worker_id: 'w1', after_seq: recovery.seq });
    expect(b1).toMatchObject({ step: 1, audit: null });
  });
});

async function deliver1(c: CoordinatorClient, r: Range): Promise<void> {
  const stats = Array.from({ length: r.hi - r.lo }, (_, k) => ({ index: r.lo + k, stats: STATS }));
  await c.pushGradient({ worker_id: 'w1', step: 0, phase: 'pretrain', range: r, stats_json: encodeIndexedStats(stats) }, treeSum(r, leaf));
}

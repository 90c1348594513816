/**
 * The metrics' names and label bounds: every bertfleet metric of the
 * coordinator and the worker follows Prometheus naming (bertfleet_ prefix,
 * base units, _total on counters only), and a worker that leaves takes its
 * per-worker series with it. The exposition is read back with an
 * independent parser.
 */
import { describe, expect, it } from 'vitest';
import { CoordinatorMetrics } from '../../coordinator/metrics.js';
import type { Member } from '../../coordinator/membership.js';
import { checkName, ownMetrics } from '../../shared/observe/prometheus.js';
import { WorkerMetrics } from '../../worker/metrics.js';
import { parseExposition, valueOf } from '../helpers/scrape.js';

const TIMINGS = { phase: 'pretrain', steps: 2, computeMs: 300, uploadMs: 20, exchangeMs: 100, waitMs: 60, downloadMs: 20, applyMs: 40, stepMs: 440, sequences: 24 };

describe('metric names', () => {
  for (const [who, make] of [['coordinator', () => new CoordinatorMetrics('run-x').registry], ['worker', () => new WorkerMetrics().registry]] as const) {
    it(`names every ${who} metric bertfleet_<words> with base units and _total on counters only`, async () => {
      const own = await ownMetrics(make());
      expect(own.length).toBeGreaterThan(5);
      for (const m of own) {
        expect(m.name).toMatch(/^bertfleet_[a-z_]+$/);
        expect(m.name).not.toMatch(/_(ms|milliseconds|kb|mb|percent)(_|$)/);
        if (m.type === 'counter') expect(m.name).toMatch(/_total$/);
        else expect(m.name).not.toMatch(/_total$/);
        if (/duration|_age|_seconds/.test(m.name)) expect(m.name).toMatch(/_seconds(_total)?$/);
        expect(m.help.length).toBeGreaterThan(10);
      }
    });
  }

  it('keeps the default process metrics under their own names', async () => {
    const text = await new CoordinatorMetrics('run-x').registry.metrics();
    expect(text).toMatch(/^process_cpu_seconds_total /m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m);
  });

  it('refuses names that break the conventions, saying why', () => {
    expect(() => checkName('bertfleet_step_ms', 'gauge')).toThrow(/base units/);
    expect(() => checkName('bertfleet_steps', 'counter')).toThrow(/counter ends in _total/);
    expect(() => checkName('bertfleet_loss_total', 'gauge')).toThrow(/does not end in _total/);
    expect(() => checkName('stepCount', 'gauge')).toThrow(/bertfleet_/);
  });
});

const member = (id: string): Member => ({ id, hostname: 'h', pid: 1, status: 'training', joinedAtMs: 0, lastSeenMs: 0, leftReason: null });

describe('coordinator metrics', () => {
  it('reports the step, loss and phase the run loop reports', async () => {
    const m = new CoordinatorMetrics('run-x');
    m.phase('pretrain', 0);
    m.step('pretrain', 3, 6, 2.5, { lr: 1e-4, gradNorm: 0.7, sequences: 12, durationMs: 500 });
    const s = parseExposition((await m.exposition()).body);
    expect(valueOf(s, 'bertfleet_step')).toBe(3);
    expect(valueOf(s, 'bertfleet_phase_steps')).toBe(6);
    expect(valueOf(s, 'bertfleet_loss')).toBe(2.5);
    expect(valueOf(s, 'bertfleet_sequences_per_second')).toBe(24);
    expect(valueOf(s, 'bertfleet_phase', { phase: 'pretrain' })).toBe(1);
    expect(valueOf(s, 'bertfleet_phase', { phase: 'starting' })).toBe(0);
    expect(valueOf(s, 'bertfleet_run_info', { run_id: 'run-x' })).toBe(1);
    expect(valueOf(s, 'bertfleet_checkpoint_age_seconds')).toBeNaN();
  });

  it('removes a departed worker\'s series and does not bring them back on a late upload', async () => {
    const m = new CoordinatorMetrics('run-x');
    for (const id of ['w1', 'w2']) {
      m.membership({ kind: 'joined', member: member(id), rejoined: false }, 1);
      m.received(id, 3, 1000);
      m.timings(id, TIMINGS);
    }
    let s = parseExposition((await m.exposition()).body);
    expect(valueOf(s, 'bertfleet_worker_micro_batches_total', { worker: 'w1' })).toBe(3);
    expect(valueOf(s, 'bertfleet_worker_step_seconds', { worker: 'w1' })).toBeCloseTo(0.22);
    expect(valueOf(s, 'bertfleet_step_part_seconds', { part: 'compute' })).toBeCloseTo(0.15);
    expect(valueOf(s, 'bertfleet_step_part_seconds', { part: 'waiting' })).toBeCloseTo(0.03);
    m.membership({ kind: 'left', member: { ...member('w1'), status: 'left', leftReason: 'drained' }, detail: '' }, 1);
    m.received('w1', 3, 1000);
    m.timings('w1', TIMINGS);
    s = parseExposition((await m.exposition()).body);
    const workers = (name: string): string[] => (s.get(name)?.samples ?? []).map((x) => x.labels['worker']!);
    expect(workers('bertfleet_worker_micro_batches_total')).toEqual(['w2']);
    expect(workers('bertfleet_worker_step_seconds')).toEqual(['w2']);
    expect(valueOf(s, 'bertfleet_worker_departures_total', { reason: 'drained' })).toBe(1);
    expect(valueOf(s, 'bertfleet_exchange_bytes_total', { direction: 'received' })).toBe(3000);
  });

  it('counts refused uploads by a fixed set of reasons and audits from the book', async () => {
    const m = new CoordinatorMetrics('run-x');
    const audits = { passed: 2, dropped: 1 };
    m.watch({ members: () => [{ status: 'training' }, { status: 'joining' }, { status: 'training' }], audits, fatal: () => null });
    const named = (name: string): Error => Object.assign(new Error('x'), { name });
    m.refusedUpload(named('AlreadyReceivedError'));
    m.refusedUpload(named('ShapeError'));
    m.refusedUpload(named('SomethingNew'));
    m.refusedUpload('not an error');
    let s = parseExposition((await m.exposition()).body);
    expect(valueOf(s, 'bertfleet_refused_uploads_total', { reason: 'duplicate' })).toBe(1);
    expect(valueOf(s, 'bertfleet_refused_uploads_total', { reason: 'shape' })).toBe(1);
    expect(valueOf(s, 'bertfleet_refused_uploads_total', { reason: 'other' })).toBe(2);
    expect(valueOf(s, 'bertfleet_members', { state: 'training' })).toBe(2);
    expect(valueOf(s, 'bertfleet_members', { state: 'joining' })).toBe(1);
    expect(valueOf(s, 'bertfleet_gradient_audits_total', { result: 'passed' })).toBe(2);
    audits.passed = 5;
    s = parseExposition((await m.exposition()).body);
    expect(valueOf(s, 'bertfleet_gradient_audits_total', { result: 'passed' })).toBe(5);
    expect(valueOf(s, 'bertfleet_gradient_audits_total', { result: 'dropped' })).toBe(1);
  });
});

describe('worker metrics', () => {
  it('adds up applied steps, their parts and the bytes exchanged', async () => {
    const m = new WorkerMetrics();
    m.setState('training');
    const timing = { computeMs: 150, uploadMs: 10, exchangeMs: 50, waitMs: 30, downloadMs: 10, applyMs: 20, stepMs: 220, sequences: 12 };
    m.uploaded(400);
    m.stepApplied({ phase: 'pretrain', step: 1, timing, microBatches: 2, receivedBytes: 400 });
    m.stepApplied({ phase: 'pretrain', step: 2, timing, microBatches: 1, receivedBytes: 400 });
    const s = parseExposition((await m.exposition()).body);
    expect(valueOf(s, 'bertfleet_worker_state', { state: 'training' })).toBe(1);
    expect(valueOf(s, 'bertfleet_worker_state', { state: 'connecting' })).toBe(0);
    expect(valueOf(s, 'bertfleet_worker_step')).toBe(2);
    expect(valueOf(s, 'bertfleet_worker_steps_total', { phase: 'pretrain' })).toBe(2);
    expect(valueOf(s, 'bertfleet_worker_computed_micro_batches_total')).toBe(3);
    expect(valueOf(s, 'bertfleet_worker_step_part_seconds_total', { part: 'compute' })).toBeCloseTo(0.3);
    expect(valueOf(s, 'bertfleet_worker_exchange_bytes_total', { direction: 'received' })).toBe(800);
    expect(valueOf(s, 'bertfleet_worker_exchange_bytes_total', { direction: 'sent' })).toBe(400);
  });
});

/**
 * The run's event hub (coordinator/run-events.ts): events numbered and
 * stamped in order, the step record's accuracies carried, membership and
 * worker timings turned into events, a history that stays bounded while
 * keeping the whole curve's span, and a listener that throws unsubscribed
 * without stopping the run.
 */
import { describe, expect, it } from 'vitest';
import type { ServiceObserver } from '../../coordinator/coordinator-service.js';
import type { Member } from '../../coordinator/membership.js';
import { RunEvents, type RunEvent } from '../../coordinator/run-events.js';
import { silentLogger } from '../../shared/log.js';

const info = (extra: Record<string, unknown> = {}) => ({ lr: 1e-4, gradNorm: 2, sequences: 12, durationMs: 40, ...extra });

function hub(maxEvents?: number): RunEvents {
  let t = 1_000;
  return new RunEvents({ log: silentLogger(), now: () => (t += 10), ...(maxEvents !== undefined && { maxEvents }) });
}

describe('RunEvents', () => {
  it('numbers and stamps events in publishing order, and tells listeners', () => {
    const h = hub();
    const seen: RunEvent[] = [];
    const off = h.subscribe((e) => seen.push(e));
    h.phase('pretrain', 0);
    h.step('pretrain', 1, 6, 3.5, info({ record: { mlmAccuracy: 0.1, nspAccuracy: 0.5, mlmLoss: 3, nspLoss: 0.5, phase: 'pretrain' } }));
    off();
    h.checkpoint('pretrain', 2, '/x/state/pretrain-2');
    expect(seen.map((e) => [e.seq, e.type])).toEqual([[1, 'phase'], [2, 'step']]);
    expect(h.history().map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(h.history().map((e) => e.at)).toEqual([1_010, 1_020, 1_030]);
    expect(seen[1]).toMatchObject({ phase: 'pretrain', step: 1, total: 6, loss: 3.5, seqPerSec: 300, mlmAccuracy: 0.1, nspAccuracy: 0.5, mlmLoss: 3, nspLoss: 0.5 });
    expect(seen[1]).not.toHaveProperty('accuracy');
    expect(seen[1]).not.toHaveProperty('record');
  });

  it('turns membership changes and worker timings reports into events, passing the reports on', () => {
    const h = hub();
    const member = (id: string, leftReason: Member['leftReason'] = null): Member => ({ id, hostname: 'h', pid: 1, status: leftReason ? 'left' : 'joining', joinedAtMs: 0, lastSeenMs: 0, leftReason });
    h.membership({ kind: 'joined', member: member('w1'), rejoined: false }, 1);
    h.membership({ kind: 'left', member: member('w1', 'heartbeat_timeout'), detail: 'silent for 10 s' }, 0);
    const calls: string[] = [];
    const next: ServiceObserver = { received: () => calls.push('received'), served: () => calls.push('served'), refusedUpload: () => calls.push('refused'), timings: () => calls.push('timings') };
    const obs = h.observer(next);
    obs.received('w1', 2, 100);
    obs.timings('w1', { steps: 4, stepMs: 400, computeMs: 200, exchangeMs: 120, waitMs: 40 });
    obs.timings('w1', { steps: 0 });
    expect(calls).toEqual(['received', 'timings', 'timings']);
    const events = h.history();
    expect(events[0]).toMatchObject({ type: 'member', change: 'joined', workerId: 'w1', members: 1, rejoined: false });
    expect(events[1]).toMatchObject({ type: 'member', change: 'left', workerId: 'w1', members: 0, reason: 'heartbeat_timeout', detail: 'silent for 10 s' });
    expect(events[2]).toMatchObject({ type: 'worker-timings', workerId: 'w1', steps: 4, stepMs: 100, computeMs: 50, exchangeMs: 30, waitMs: 10 });
    expect(events).toHaveLength(3);
  });

  it('keeps its history bounded, thinning old steps but keeping the first and the latest and every other event', () => {
    const h = hub(100);
    h.phase('pretrain', 0);
    for (let s = 1; s <= 1_000; s++) h.step('pretrain', s, 1_000, 1 / s, info());
    h.phase('finetune', 0);
    const kept = h.history();
    expect(kept.length).toBeLessThanOrEqual(100);
    const steps = kept.filter((e) => e.type === 'step').map((e) => (e as { step: number }).step);
    expect(steps.at(-1)).toBe(1_000);
    expect(steps[0]).toBe(1);
    expect([...steps].sort((a, b) => a - b)).toEqual(steps);
    expect(kept.filter((e) => e.type === 'phase').map((e) => (e as { phase: string }).phase)).toEqual(['pretrain', 'finetune']);
  });

  it('unsubscribes a listener that throws, and goes on publishing to the others', () => {
    const h = hub();
    const seen: number[] = [];
    h.subscribe(() => {
      throw new Error('broken viewer');
    });
    h.subscribe((e) => seen.push(e.seq));
    h.phase('pretrain', 0);
    h.phase('finetune', 0);
    expect(seen).toEqual([1, 2]);
  });

  it('says how the run ended', () => {
    const h = hub();
    h.ended('failed', new Error('lease lost'));
    h.ended('finished');
    expect(h.history()).toMatchObject([{ type: 'failed', error: 'lease lost' }, { type: 'finished' }]);
    expect(h.history()[1]).not.toHaveProperty('error');
  });
});

/**
 * The health port's flags and a worker's readiness: off unless a port is
 * given, a host alone refused, and a worker ready only while registered and
 * not draining (a drain is never undone, only stopped).
 */
import { describe, expect, it } from 'vitest';
import { healthChoice } from '../../cli/health-flags.js';
import { silentLogger } from '../../shared/log.js';
import { WorkerHealth } from '../../worker/health-port.js';
import { parseExposition, valueOf } from '../helpers/scrape.js';

describe('--health-port and --health-host', () => {
  it('is off unless a port is given, and binds every interface by default', () => {
    expect(healthChoice({})).toBeUndefined();
    expect(healthChoice({ 'health-port': '9401' })).toEqual({ host: '0.0.0.0', port: 9401 });
    expect(healthChoice({ 'health-port': '0', 'health-host': '127.0.0.1' })).toEqual({ host: '127.0.0.1', port: 0 });
  });

  it('refuses a host without a port and a port out of range, naming the flag', () => {
    expect(() => healthChoice({ 'health-host': '127.0.0.1' })).toThrow(/--health-host needs --health-port/);
    expect(() => healthChoice({ 'health-port': '70000' })).toThrow(/--health-port must be an integer >= 0 and <= 65535, got "70000"/);
    expect(() => healthChoice({ 'health-port': 'x' })).toThrow(/--health-port/);
  });
});

describe('a worker\'s readiness', () => {
  it('keeps the draining state once draining, until stopped', async () => {
    const h = await WorkerHealth.start(undefined, silentLogger());
    const state = async (): Promise<string | undefined> => {
      const s = parseExposition((await h.metrics.exposition()).body);
      return s.get('bertfleet_worker_state')?.samples.find((x) => x.value === 1)?.labels['state'];
    };
    expect(await state()).toBe('connecting');
    h.state('training');
    expect(await state()).toBe('training');
    h.state('draining');
    h.state('training');
    expect(await state()).toBe('draining');
    h.state('stopped');
    expect(await state()).toBe('stopped');
    const s = parseExposition((await h.metrics.exposition()).body);
    expect(valueOf(s, 'bertfleet_worker_state', { state: 'draining' })).toBe(0);
    await h.close();
  });
});

/**
 * The OpenBLAS core on real processes: `bertfleet cluster` started without
 * OPENBLAS_CORETYPE has its worker (whose compute thread loads OpenBLAS) run on
 * the core this CPU's flags support, say so in 'openblas core chosen' with the
 * passed start probe, and carry that core in 'backend chosen'; a user's
 * OPENBLAS_CORETYPE reaches `bertfleet train` unchanged and is logged as theirs.
 * Needs a CPU with AVX2+FMA (else bertfleet chooses nothing and there is
 * nothing to see: the suite says why it is skipped).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { chooseOpenblasCore } from '../../shared/backend/openblas-core.js';
import { hostNumerics } from '../../shared/process/host-info.js';
import { runCli } from '../helpers/cli.js';
import { pipelineArgs } from '../helpers/pipeline.js';

const host = hostNumerics();
const expected = chooseOpenblasCore({ given: undefined, chosenByBertfleet: undefined }, { arch: host.arch, vendor: host.cpuVendor, flags: host.cpuFlags });
const skip = expected.source !== 'cpu-flags';
const work = mkdtempSync(join(tmpdir(), 'bertfleet-openblas-core-'));
const NO_CORE_ENV = { OPENBLAS_CORETYPE: undefined, BERTFLEET_OPENBLAS_CORETYPE: undefined };

function logLines(stderr: string, msg: string): Record<string, unknown>[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l['msg'] === msg);
}

async function run(command: string, name: string, env: NodeJS.ProcessEnv, extra: string[] = []): Promise<string> {
  const r = await runCli([command, ...pipelineArgs(join(work, name), extra)], { cwd: work, env });
  expect(r.code, r.stderr.slice(-3000)).toBe(0);
  expect(r.stderr, r.stderr.slice(-3000)).not.toMatch(/"level":50/);
  return r.stderr;
}

describe.skipIf(skip)(`OpenBLAS core in bertfleet processes${skip ? ` (skipped: ${expected.reason})` : ''}`, () => {
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('a cluster started without OPENBLAS_CORETYPE computes on the core the CPU flags support, probed at start', async () => {
    const stderr = await run('cluster', 'cluster', NO_CORE_ENV, ['--workers', '1']);
    const chosen = logLines(stderr, 'openblas core chosen');
    expect(chosen.map((l) => l['service'])).toContain('worker');
    for (const line of chosen) {
      expect(line).toMatchObject({ coretype: expected.coretype, requested: expected.coretype, source: 'cpu-flags', reason: expected.reason });
      expect(line['probeWorstRatio']).toBeLessThanOrEqual(1);
    }
    const backends = logLines(stderr, 'backend chosen');
    expect(backends.length).toBeGreaterThan(0);
    for (const line of backends) expect(line['details']).toContain(`core=${expected.coretype};`);
  });

  it("a user's OPENBLAS_CORETYPE wins and is logged as given", async () => {
    const stderr = await run('train', 'train', { ...NO_CORE_ENV, OPENBLAS_CORETYPE: 'Haswell' });
    const [line, ...more] = logLines(stderr, 'openblas core chosen');
    expect(more).toEqual([]);
    expect(line).toMatchObject({ coretype: 'Haswell', requested: 'Haswell', source: 'user', reason: 'OPENBLAS_CORETYPE=Haswell given in the environment' });
    expect(logLines(stderr, 'backend chosen')[0]!['details']).toContain('core=Haswell;');
  });
});

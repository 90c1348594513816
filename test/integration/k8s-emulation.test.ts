/**
 * The k8s/ overlays run pod by pod without a cluster (test/helpers/pod-emulator.ts):
 * the rendered manifests' own commands, args and environment as local
 * processes — NATS (the host's nats-server), the coordinator, the workers and
 * the reducers (bin/bertfleet, the image's ENTRYPOINT) — with the Secrets that
 * k8s/README.md's commands make from `bertfleet pki init`, volumes as folders,
 * Services as readiness-gated loopback proxies, probes polled over HTTP and
 * restartPolicy Always.
 *
 * overlays/cpu: everything applied at once and Ready; `kubectl scale` of the
 * workers to 3 mid-run (bertfleet-worker-2 joins and computes), then to 1 (the
 * two highest ordinals drain and exit 0 within their grace period); `kubectl
 * delete pod bertfleet-coordinator-0` (it stops within its grace period, the
 * replacement on the same volume resumes with --resume=auto); the run ends with
 * pretrained/ and finetuned/ weights byte-identical to `bertfleet train` on the
 * same run config; with --when-done=stay the coordinator (ready) and the worker
 * (alive, not ready) stay up and exit 0 on SIGTERM. overlays/reducers: the same
 * bytes with two reducer pods, reached by their headless-Service names.
 * In both, no container restarted or exited on its own, and no pod named a
 * file of a volume it does not mount.
 *
 * Changes to the rendered objects, so the test ends in minutes and can run
 * (test/helpers/k8s-short-run.ts):
 *   - the ConfigMap's run-config.json is replaced by a short run: the pipeline
 *     fixtures (test/helpers/pipeline.ts: micro BERT config, corpus,
 *     classification CSV) are added to the ConfigMap and the run config names
 *     them under its mount path (/etc/bertfleet); the rendered config's other
 *     keys (seed, backend, blasThreads, ...) are kept;
 *   - the workers mount that ConfigMap too, at the same path, if the
 *     manifests ever stop doing so (k8s/base/worker.yaml mounts it): every
 *     process of a run reads the model and data files the run config names
 *     (shared/data/run-data.ts), so files named in a run config must be in
 *     every pod.
 * Between a pod's spec and its process, only mount paths, container ports and
 * Service names differ (recorded per container start and checked), plus the
 * variables the runtime adds.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { secretsFromGuide } from '../helpers/k8s-guide.js';
import type { Secret } from '../helpers/k8s-manifest.js';
import type { EmulatedPod } from '../helpers/k8s-pod.js';
import { changedArgs, jsonLine, serverCertificate, specDifferences, stepReached, withShortRun } from '../helpers/k8s-short-run.js';
import { renderOverlay, type K8sObject } from '../helpers/kubectl.js';
import { PodEmulator, type Launch } from '../helpers/pod-emulator.js';

const WEIGHTS = ['pretrained/model.safetensors', 'finetuned/model.safetensors'];
const COORDINATOR = 'bertfleet-coordinator-0';
const NATS = 'bertfleet-nats-0';
const WORKERS = ['bertfleet-worker-0', 'bertfleet-worker-1', 'bertfleet-worker-2'] as const;
const REDUCERS = ['bertfleet-reducer-0', 'bertfleet-reducer-1'] as const;

const work = mkdtempSync(join(tmpdir(), 'bertfleet-k8s-emulation-'));
let failed = false;
let guide: Promise<Secret[]> | undefined;

/** The Secrets of k8s/README.md's commands, made once. */
function guideSecrets(): Promise<Secret[]> {
  guide ??= secretsFromGuide(join(work, 'guide')).then((g) => g.secrets);
  return guide;
}

afterAll(() => {
  // BERTFLEET_KEEP_K8S_EMULATION=1 keeps the pod logs of a passing run too (k8s/README.md's expected output comes from them).
  if (failed || process.env['BERTFLEET_KEEP_K8S_EMULATION'] === '1') process.stderr.write(`k8s emulation: pod logs kept in ${work}\n`);
  else rmSync(work, { recursive: true, force: true });
});

/** One overlay's emulation: the objects, the emulator, and failure output. */
function emulation(overlay: string, steps: { pretrain: number; finetune: number }) {
  const s = { objects: [] as K8sObject[], emu: undefined as PodEmulator | undefined, dir: join(work, overlay.replace(/\//g, '-')) };
  beforeAll(async () => {
    s.objects = [...withShortRun(await renderOverlay(overlay), steps), ...(await guideSecrets())];
  });
  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => {
      failed = true;
      if (s.emu !== undefined) process.stderr.write(`${s.emu.tail(40)}\n`);
    });
  });
  afterAll(async () => {
    await s.emu?.stop();
  });
  return s;
}

function launchesOf(emu: PodEmulator, pod: string): Launch[] {
  return emu.launches.filter((l) => l.pod === pod);
}

/** The launches kept their specs, and the server certificates name every host the pods dial. */
function expectSpecsKept(emu: PodEmulator, objects: readonly K8sObject[], dialed: readonly string[]): void {
  expect(specDifferences(emu.launches)).toEqual([]);
  const hosts = new Set(emu.launches.flatMap((l) => l.rewrites.filter((r) => r.kind === 'service').map((r) => r.from.replace(/:\d+$/, ''))));
  expect([...hosts].sort()).toEqual([...dialed].sort());
  for (const host of hosts) expect(serverCertificate(objects, host).checkHost(host), `${host} in its server certificate`).toBe(host);
  // Inside files, only the volume's own mount path changed: the run config's and nats.conf's.
  expect(new Set(emu.volumes.rewrites.map((r) => `${r.field.replace(/bertfleet-run-\w+/, 'bertfleet-run')} ${r.from}`))).toEqual(
    new Set(['file configMap/bertfleet-run/run-config.json /etc/bertfleet', 'file secret/bertfleet-nats-tls/nats.conf /etc/nats/tls']),
  );
}

/** Runs `bertfleet train` on the coordinator's own run config file; its weights must equal the run's. */
async function expectWeightsOfTrain(emu: PodEmulator, name: string): Promise<void> {
  const output = join(emu.claimDir('runs', COORDINATOR), 'default');
  const config = launchesOf(emu, COORDINATOR)[0]!.actual.args.find((a) => a.startsWith('--config='))!.slice('--config='.length);
  const cwd = join(work, `train-${name}`);
  mkdirSync(cwd);
  // The pods' environment holds only their spec's and the runtime's variables; the host's OPENBLAS_*
  // (a core or cache size forced for the machine) would give train other sgemm kernels, so none here either.
  const openblas = Object.fromEntries(Object.keys(process.env).filter((k) => k.startsWith('OPENBLAS_')).map((k) => [k, undefined]));
  const ref = await runCli(['train', '--config', config, '--output', join(cwd, 'out'), '--no-progress'], { cwd, env: openblas });
  expect(ref.code, ref.stderr.slice(-2000)).toBe(0);
  for (const f of WEIGHTS) expect(readFileSync(join(output, f)).equals(readFileSync(join(cwd, 'out', f))), `${f} differs from train's`).toBe(true);
}

async function status(url: string): Promise<number> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  await res.arrayBuffer();
  return res.status;
}

/** Stayed up once done; exit 0 on SIGTERM (the teardown); nothing restarted, exited on its own or read another pod's files. */
async function expectStayAndCleanStop(emu: PodEmulator, pods: readonly string[]): Promise<void> {
  const coordinator = emu.pod(COORDINATOR);
  const worker = emu.pod(WORKERS[0]);
  for (const p of [coordinator, worker]) {
    expect(launchesOf(emu, p.name)[0]!.spec.args, p.name).toContain('--when-done=stay');
    await p.waitFor(/"msg":"run finished; staying up \(--when-done stay\)"/, 60_000);
  }
  expect(await status(`http://127.0.0.1:${emu.portOf(COORDINATOR, 'health')}/readyz`)).toBe(200);
  expect(await status(`http://127.0.0.1:${emu.portOf(WORKERS[0], 'health')}/healthz`)).toBe(200);
  expect(await status(`http://127.0.0.1:${emu.portOf(WORKERS[0], 'health')}/readyz`)).toBe(503);
  const current = pods.map((n) => emu.pod(n));
  const running = (p: EmulatedPod): boolean => p.pid !== undefined && p.exits.length === p.restarts;
  expect(current.filter((p) => !running(p)).map((p) => p.id)).toEqual([]);
  const exits = await emu.stop();
  for (const p of current.filter((x) => x.name !== NATS)) expect(exits.get(p.id), p.id).toMatchObject({ code: 0, killed: false });
  expect(emu.history.filter((p) => p.restarts > 0 || p.exits.some((e) => e.reason !== 'deleted')).map((p) => p.id)).toEqual([]);
  expect(emu.foreignPaths()).toEqual([]);
  expect(emu.failures).toEqual([]);
}

describe('k8s/overlays/cpu, emulated pod by pod: scaled, its coordinator deleted, to the bytes of train', () => {
  /** Long enough for the scaling and the coordinator's deletion to land mid-run. */
  const s = emulation('k8s/overlays/cpu', { pretrain: 60, finetune: 40 });

  it('starts NATS, the coordinator and 2 workers to Ready, each with its own spec', async () => {
    const emu = (s.emu = await PodEmulator.start({ objects: s.objects, workDir: join(s.dir, 'cluster') }));
    await emu.waitReady([NATS, COORDINATOR, WORKERS[0], WORKERS[1]], 240_000);
    expectSpecsKept(emu, s.objects, ['bertfleet-coordinator', 'bertfleet-nats']);
    const [coordinator] = launchesOf(emu, COORDINATOR);
    expect(changedArgs(coordinator!)).toEqual(['--config=', '--health-port=', '--listen=', '--nats=', '--output=']);
    expect(coordinator!.spec.args).toContain('--resume=auto');
    const [worker] = launchesOf(emu, WORKERS[0]);
    expect(changedArgs(worker!)).toEqual(['--coordinator=', '--health-port=', '--nats=']);
    // $(POD_NAME) expanded as the kubelet does, before any rewrite.
    expect(worker!.spec.args).toContain(`--worker-id=${WORKERS[0]}`);
    expect(worker!.spec.env.find((e) => e.name === 'BERTFLEET_TLS_CERT')?.value).toBe(`/etc/bertfleet-tls/worker-${WORKERS[0]}.pem`);
  });

  it('scales the workers to 3 mid-run: bertfleet-worker-2 becomes Ready and computes a share', async () => {
    const emu = s.emu!;
    const coordinator = emu.pod(COORDINATOR);
    await coordinator.waitFor(stepReached('pretrain', 3), 120_000);
    await emu.scale('bertfleet-worker', 3);
    await emu.waitReady([WORKERS[2]], 180_000);
    await coordinator.waitFor(jsonLine((o) => o['msg'] === 'worker joined' && o['workerId'] === WORKERS[2]), 60_000);
    await emu.pod(WORKERS[2]).waitFor(jsonLine((o) => o['msg'] === 'worker steps' && Number(o['sequences']) > 0), 120_000);
    expect(coordinator.lines.some((l) => l.includes('"msg":"run finished'))).toBe(false);
  });

  it('scales down to 1: the two highest ordinals drain and exit 0 within their grace period', async () => {
    const emu = s.emu!;
    const leaving = [emu.pod(WORKERS[2]), emu.pod(WORKERS[1])];
    const exits = leaving.map((p) => p.nextExit());
    await emu.scale('bertfleet-worker', 1);
    for (const [i, exit] of (await Promise.all(exits)).entries()) expect(exit, leaving[i]!.id).toMatchObject({ code: 0, killed: false, reason: 'deleted' });
    await Promise.all(leaving.map((p) => p.gone));
    expect(emu.hasPod(WORKERS[1]) || emu.hasPod(WORKERS[2])).toBe(false);
    // The run goes on with bertfleet-worker-0, to a checkpoint after the scale-down.
    const coordinator = emu.pod(COORDINATOR);
    await coordinator.waitFor(/"msg":"checkpoint written"/, 120_000, coordinator.lines.length);
  });

  it('deleting the coordinator pod: it stops within its grace period and the replacement resumes from its volume', async () => {
    const emu = s.emu!;
    const old = emu.pod(COORDINATOR);
    expect(await emu.deletePod(COORDINATOR)).toMatchObject({ killed: false, reason: 'deleted' });
    expect(old.lines.some((l) => l.includes('"msg":"run finished'))).toBe(false);
    const next = await emu.waitPod(COORDINATOR, (p) => p.id !== old.id && p.ready, 240_000, 'replaced and ready');
    const resumed = JSON.parse(await next.waitFor(/"msg":"resuming"/, 60_000)) as { phase: string; step: number };
    expect(resumed.step).toBeGreaterThan(0);
    // The same claim: the replacement's --output is the old one's.
    const output = (l: Launch): string | undefined => l.actual.args.find((a) => a.startsWith('--output='));
    expect(output(launchesOf(emu, COORDINATOR).at(-1)!)).toBe(output(launchesOf(emu, COORDINATOR)[0]!));
    // bertfleet-worker-0 comes back to the replacement (a second registration).
    await emu.pod(WORKERS[0]).waitFor(jsonLine((o) => o['msg'] === 'registered' && Number(o['session']) >= 1), 120_000);
  });

  it('runs to the end with the weights of bertfleet train on the same run config', async () => {
    await s.emu!.pod(COORDINATOR).waitFor(/"msg":"run finished/, 300_000);
    await expectWeightsOfTrain(s.emu!, 'cpu');
  });

  it('stays up once done (--when-done=stay) and stops cleanly; nothing restarted or read another pod\'s files', async () => {
    await expectStayAndCleanStop(s.emu!, [NATS, COORDINATOR, WORKERS[0]]);
  });
});

describe('k8s/overlays/reducers, emulated pod by pod: to the bytes of train', () => {
  const s = emulation('k8s/overlays/reducers', { pretrain: 12, finetune: 8 });

  it('starts NATS, the coordinator, 2 reducers and 2 workers to Ready, each with its own spec', async () => {
    const emu = (s.emu = await PodEmulator.start({ objects: s.objects, workDir: join(s.dir, 'cluster') }));
    await emu.waitReady([NATS, COORDINATOR, ...REDUCERS, WORKERS[0], WORKERS[1]], 240_000);
    expectSpecsKept(emu, s.objects, ['bertfleet-coordinator', 'bertfleet-nats', ...REDUCERS.map((r) => `${r}.bertfleet-reducer`)]);
    expect(changedArgs(launchesOf(emu, COORDINATOR)[0]!)).toEqual(['--config=', '--health-port=', '--listen=', '--nats=', '--output=', '--reducers=']);
    for (const r of REDUCERS) expect(changedArgs(launchesOf(emu, r)[0]!)).toEqual(['--health-port=', '--listen=']);
  });

  it('runs to the end with the weights of bertfleet train on the same run config', async () => {
    const coordinator = s.emu!.pod(COORDINATOR);
    await coordinator.waitFor(/"msg":"run finished/, 300_000);
    for (const w of [WORKERS[0], WORKERS[1]]) expect(s.emu!.pod(w).lines.some((l) => l.includes('"msg":"gradients go to the coordinator and the reducers, one slice each"')), w).toBe(true);
    await expectWeightsOfTrain(s.emu!, 'reducers');
  });

  it('stays up once done and stops cleanly; nothing restarted or read another pod\'s files', async () => {
    await expectStayAndCleanStop(s.emu!, [NATS, COORDINATOR, ...REDUCERS, WORKERS[0], WORKERS[1]]);
  });
});

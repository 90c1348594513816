/**
 * Pieces of the pod emulation test (test/integration/k8s-emulation.test.ts):
 * the short run that replaces the ConfigMap's run-config.json (the pipeline
 * fixtures added to the ConfigMap, the workers given its mount when they
 * lack it), the checks that a process differs from its spec only by the
 * recorded rewrites, the server certificate behind each name a pod dials,
 * and predicates over the coordinator's JSON log lines.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { mergeConfig } from '../../shared/config/run-config.js';
import type { Launch } from './k8s-launch.js';
import { named, type ConfigMap, type Secret, type StatefulSet } from './k8s-manifest.js';
import { undoRewrites } from './k8s-rewrite.js';
import type { K8sObject } from './kubectl.js';
import { PIPELINE_FIXTURES } from './pipeline.js';

/**
 * The manifests with the ConfigMap the coordinator mounts holding a short
 * run of the pipeline fixtures (the rendered config's other keys kept), and
 * the workers mounting it at the same path when they do not already: every
 * process of a run reads the model and data files the run config names.
 */
export function withShortRun(manifests: readonly K8sObject[], steps: { pretrain: number; finetune: number }): K8sObject[] {
  const out = structuredClone(manifests) as K8sObject[];
  const spec = named<StatefulSet>(out, 'StatefulSet', 'bertfleet-coordinator').spec.template.spec;
  const volume = spec.volumes!.find((v) => v.configMap !== undefined)!;
  const mountPath = spec.containers[0]!.volumeMounts!.find((m) => m.name === volume.name)!.mountPath;
  const cm = named<ConfigMap>(out, 'ConfigMap', volume.configMap!.name);
  const fixture = (f: string): string => readFileSync(join(PIPELINE_FIXTURES, f), 'utf8');
  const config = mergeConfig(JSON.parse(cm.data!['run-config.json']!) as Record<string, unknown>, JSON.parse(fixture('run.json')) as Record<string, unknown>, {
    model: `${mountPath}/micro-bert.json`,
    data: { corpus: [`${mountPath}/corpus.txt`], classification: `${mountPath}/sentiment.csv` },
    pretrain: { steps: steps.pretrain },
    finetune: { steps: steps.finetune },
  });
  cm.data = {
    'run-config.json': `${JSON.stringify(config, null, 2)}\n`,
    'micro-bert.json': fixture('micro-bert.json'),
    'corpus.txt': fixture('corpus.txt'),
    'sentiment.csv': fixture('sentiment.csv'),
  };
  const worker = named<StatefulSet>(out, 'StatefulSet', 'bertfleet-worker').spec.template.spec;
  const c = worker.containers[0]!;
  const has = (worker.volumes ?? []).find((v) => v.configMap?.name === cm.metadata.name);
  if (has !== undefined && (c.volumeMounts ?? []).some((m) => m.name === has.name && m.mountPath === mountPath)) return out;
  worker.volumes = [...(worker.volumes ?? []), { name: 'emulation-run-config', configMap: { name: cm.metadata.name } }];
  c.volumeMounts = [...(c.volumeMounts ?? []), { name: 'emulation-run-config', mountPath, readOnly: true }];
  return out;
}

/**
 * Every field of a launch whose process value is not its spec value once the
 * recorded rewrites are undone, and every runtime variable that is neither a
 * service link nor one the runtime sets; empty when nothing else changed.
 */
export function specDifferences(launches: readonly Launch[]): string[] {
  const out: string[] = [];
  const check = (l: Launch, field: string, actual: string, spec: string | undefined): void => {
    const back = undoRewrites(actual, l.rewrites.filter((r) => r.field === field));
    if (back !== spec) out.push(`${l.podId} ${field}: spec ${JSON.stringify(spec)}, ran ${JSON.stringify(actual)} (undone: ${JSON.stringify(back)})`);
  };
  for (const l of launches) {
    l.actual.args.forEach((a, i) => check(l, `args[${i}]`, a, l.spec.args[i]));
    (l.actual.command ?? []).forEach((a, i) => check(l, `command[${i}]`, a, l.spec.command?.[i]));
    if (l.actual.args.length !== l.spec.args.length) out.push(`${l.podId}: ${l.spec.args.length} args in the spec, ${l.actual.args.length} ran`);
    if (l.actual.env.map((e) => e.name).join() !== l.spec.env.map((e) => e.name).join()) out.push(`${l.podId}: env names differ from the spec`);
    l.actual.env.forEach((e, i) => check(l, `env ${e.name}`, e.value, l.spec.env[i]?.value));
    for (const r of l.rewrites) if (!['mount', 'port', 'service'].includes(r.kind)) out.push(`${l.podId} ${r.field}: rewrite of kind ${r.kind}`);
    for (const name of Object.keys(l.runtimeEnv)) {
      if (!['PATH', 'HOSTNAME', 'HOME', 'TMPDIR'].includes(name) && !/^[A-Z0-9_]+_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_\d+_TCP(_PROTO|_PORT|_ADDR)?)?)$/.test(name)) {
        out.push(`${l.podId}: runtime variable ${name}`);
      }
    }
  }
  return out;
}

/** Spec args that differ in the process, as `--flag=` prefixes (or the whole arg). */
export function changedArgs(l: Launch): string[] {
  return l.spec.args.filter((a, i) => a !== l.actual.args[i]).map((a) => /^(--?[\w-]+=)/.exec(a)?.[1] ?? a).sort();
}

/** The server certificate a pod dialling `host` is answered with, from the Secrets k8s/README.md makes. */
export function serverCertificate(objects: readonly K8sObject[], host: string): X509Certificate {
  const from = (secret: string, key: string): X509Certificate => {
    const data = named<Secret>(objects, 'Secret', secret).data?.[key];
    if (data === undefined) throw new Error(`Secret ${secret} has no ${key}`);
    return new X509Certificate(Buffer.from(data, 'base64'));
  };
  if (host === 'bertfleet-nats') return from('bertfleet-nats-tls', 'nats.pem');
  if (host === 'bertfleet-coordinator') return from('bertfleet-coordinator-tls', 'coordinator.pem');
  const reducer = /^(bertfleet-reducer-\d+)\.bertfleet-reducer$/.exec(host);
  if (reducer) return from('bertfleet-reducer-tls', `${reducer[1]}.pem`);
  throw new Error(`no server certificate known for ${host}`);
}

/** A predicate over JSON log lines. */
export function jsonLine(pred: (o: Record<string, unknown>) => boolean): (line: string) => boolean {
  return (line) => line.startsWith('{') && pred(JSON.parse(line) as Record<string, unknown>);
}

/** The coordinator's `step done` at or past `step` of `phase` (any finetune step is past every pretrain step). */
export function stepReached(phase: 'pretrain' | 'finetune', step: number): (line: string) => boolean {
  return jsonLine((o) => o['msg'] === 'step done' && (o['phase'] === phase ? Number(o['step']) >= step : phase === 'pretrain' && o['phase'] === 'finetune'));
}

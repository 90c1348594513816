/**
 * The consistency checks of k8s/ against the program it runs, each a function
 * of one rendered overlay returning its problems (empty: consistent), so the
 * tests can run them on the real renders and on mutated copies that must
 * fail. Flags and environment are checked against the CLI's own option
 * tables and readers (cli/), the run config against its own schema
 * (shared/config/run-config.ts): nothing here repeats their lists.
 */
import { posix } from 'node:path';
import { parseArgs } from 'node:util';
import type { Options } from '../../cli/args.js';
import { coordinatorOptions, parseHostPort, takeResumeAuto } from '../../cli/coordinator.js';
import { healthChoice } from '../../cli/health-flags.js';
import { reducerOptions } from '../../cli/reducer.js';
import { SECURITY_ENV } from '../../cli/security-flags.js';
import { whenDoneChoice } from '../../cli/when-done.js';
import { workerOptions } from '../../cli/worker.js';
import { parseRunConfig } from '../../shared/config/run-config.js';
import { containersOf, resolvePort, selectsByMap, workloads, type Workload } from './k8s-objects.js';
import { ingressAllowed, ingressPolicies, resolveAddress } from './k8s-network.js';
import type { K8sObject } from './kubectl.js';

const COMMANDS: Record<string, Options> = { coordinator: coordinatorOptions, worker: workerOptions, reducer: reducerOptions };
/** Flags whose value is an address the pod dials, split into HOST:PORTs. */
const DIALS: Record<string, (v: string) => string[]> = {
  coordinator: (v) => [v],
  nats: (v) => [v.replace(/^nats:\/\//, '')],
  reducers: (v) => v.split(',').filter((a) => a !== ''),
};
const LOOPBACK = /^(127\.|localhost$|::1$|\[::1\]$)/;
/** The CPU image and the GPU image (k8s/overlays/gpu): bin/bertfleet is the ENTRYPOINT of both. */
const BERTFLEET_IMAGE = /^bertfleet(-gpu)?([:@]|$)/;

export interface BertfleetContainer {
  workload: Workload;
  c: K8sObject;
  where: string;
  command: string;
  values: Record<string, unknown>;
  /** `--resume auto`, which the coordinator takes out of its args before parsing them. */
  resumeAuto: boolean;
}

const errorText = (err: unknown): string => (err as Error).message.split('\n')[0]!;

/** Every bertfleet container of a render, its args parsed strictly with its command's option table; problems for those that would not parse. */
export function bertfleetContainers(objs: readonly K8sObject[]): { containers: BertfleetContainer[]; problems: string[] } {
  const containers: BertfleetContainer[] = [];
  const problems: string[] = [];
  for (const w of workloads(objs)) {
    for (const c of containersOf(w.pod).filter((x) => BERTFLEET_IMAGE.test(String(x.image)))) {
      const where = `${w.name}/${String(c.name)}`;
      if (c.command !== undefined) problems.push(`${where}: command is set; bertfleet pods run the image's ENTRYPOINT (bin/bertfleet)`);
      const [command, ...rest] = (c.args ?? []) as string[];
      const options = COMMANDS[command ?? ''];
      if (options === undefined) {
        problems.push(`${where}: args[0] must be one of ${Object.keys(COMMANDS).join(', ')}, got ${String(command)}`);
        continue;
      }
      const { argv, auto } = command === 'coordinator' ? takeResumeAuto(rest) : { argv: rest, auto: false };
      try {
        const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
        containers.push({ workload: w, c, where, command: command!, values, resumeAuto: auto });
      } catch (err) {
        problems.push(`${where}: bertfleet ${command} refuses its args: ${errorText(err)}`);
      }
    }
  }
  return { containers, problems };
}

const refs = (s: string): string[] => [...s.matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)].map((m) => m[1]!);
const envOf = (c: K8sObject): { name: string; value?: string }[] => c.env ?? [];

/** Flags the CLI reads with values its readers accept; no --backend/--blas-threads (the run config's); env it reads. */
export function flagAndEnvProblems(objs: readonly K8sObject[]): string[] {
  const { containers, problems } = bertfleetContainers(objs);
  for (const x of containers) {
    const readers = [
      () => healthChoice(x.values),
      () => x.command !== 'reducer' && whenDoneChoice(x.values),
      () => typeof x.values['listen'] === 'string' && parseHostPort(x.values['listen'], 'listen'),
      () => typeof x.values['reducers'] === 'string' && DIALS['reducers']!(x.values['reducers']).map((a) => parseHostPort(a, 'reducers')),
    ];
    for (const read of readers) {
      try {
        read();
      } catch (err) {
        problems.push(`${x.where}: ${errorText(err)}`);
      }
    }
    for (const f of ['backend', 'blas-threads']) if (x.values[f] !== undefined) problems.push(`${x.where}: --${f} in args; it belongs in the run config every pod reads`);
    const env = envOf(x.c);
    const referenced = new Set([...((x.c.args ?? []) as string[]).flatMap(refs), ...env.flatMap((e) => refs(e.value ?? ''))]);
    for (const e of env) if (!SECURITY_ENV.includes(e.name) && !referenced.has(e.name)) problems.push(`${x.where}: env ${e.name} is read by no one`);
    // Kubernetes expands $(NAME) only for variables defined (in env, before the value that uses them).
    const names = env.map((e) => e.name);
    for (const a of (x.c.args ?? []) as string[]) for (const r of refs(a)) if (!names.includes(r)) problems.push(`${x.where}: ${a}: $(${r}) is not defined in env`);
    env.forEach((e, i) => {
      for (const r of refs(e.value ?? '')) if (!names.slice(0, i).includes(r)) problems.push(`${x.where}: env ${e.name}: $(${r}) is not defined before it`);
    });
  }
  return problems;
}

/** HOST:PORT as the CLI reads it; undefined when absent or malformed (flagAndEnvProblems reports that). */
function hostPort(v: unknown): { host: string; port: number } | undefined {
  if (typeof v !== 'string') return undefined;
  try {
    return parseHostPort(v, 'listen');
  } catch {
    return undefined;
  }
}

/** Health and gRPC ports: args, containerPorts, probes, Prometheus annotations; NATS's -p/-m; Services. */
export function portProblems(objs: readonly K8sObject[]): string[] {
  const { containers, problems } = bertfleetContainers(objs);
  for (const x of containers) {
    const health = resolvePort(x.c, 'health');
    let chosen: { host: string; port: number } | undefined;
    try {
      chosen = healthChoice(x.values);
    } catch (err) {
      problems.push(`${x.where}: ${errorText(err)}`);
    }
    if (health === undefined || chosen?.port !== health) problems.push(`${x.where}: --health-port ${String(chosen?.port)} is not the container port named health (${String(health)})`);
    if (chosen !== undefined && LOOPBACK.test(chosen.host)) problems.push(`${x.where}: --health-host ${chosen.host} is loopback: the kubelet cannot reach it`);
    if (x.workload.annotations['prometheus.io/scrape'] !== 'true' || Number(x.workload.annotations['prometheus.io/port']) !== health) {
      problems.push(`${x.where}: prometheus.io/scrape "true" and prometheus.io/port ${String(health)} expected, got ${JSON.stringify(x.workload.annotations)}`);
    }
    if (x.command !== 'worker') {
      // Given explicitly, so the port is in the manifest beside the containerPort it must equal.
      const listen = hostPort(x.values['listen']);
      if (listen === undefined || listen.port !== resolvePort(x.c, 'grpc') || LOOPBACK.test(listen.host)) problems.push(`${x.where}: --listen ${String(x.values['listen'])} is not a non-loopback host on the port named grpc`);
    }
    for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
      const p = x.c[probe];
      if (p !== undefined && (p.httpGet === undefined || resolvePort(x.c, p.httpGet.port) !== health)) problems.push(`${x.where}: ${probe} is not an HTTP GET on the health port (the kubelet has no client certificate)`);
    }
  }
  for (const w of workloads(objs)) {
    for (const c of containersOf(w.pod)) {
      for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
        const port = c[probe]?.httpGet?.port ?? c[probe]?.tcpSocket?.port ?? c[probe]?.grpc?.port;
        if (c[probe] !== undefined && resolvePort(c, port) === undefined) problems.push(`${w.name}: ${probe} port ${String(port)} is no container port`);
      }
      if (/^nats([:@]|$)/.test(String(c.image))) {
        const cmd = (c.command ?? []) as string[];
        const flag = (f: string) => Number(cmd[cmd.indexOf(f) + 1]);
        if (flag('-p') !== resolvePort(c, 'client') || flag('-m') !== resolvePort(c, 'monitor')) problems.push(`${w.name}: nats-server -p/-m are not the ports named client/monitor`);
      }
    }
  }
  const all = workloads(objs);
  for (const svc of objs.filter((o) => o.kind === 'Service')) {
    const selected = all.filter((w) => selectsByMap(svc.spec.selector, w.labels));
    if (selected.length === 0) problems.push(`Service ${svc.metadata.name} selects no pods`);
    for (const sp of svc.spec.ports ?? []) {
      for (const w of selected) {
        if (!containersOf(w.pod).some((c) => resolvePort(c, sp.targetPort ?? sp.port) !== undefined)) problems.push(`Service ${svc.metadata.name} port ${sp.port}: targetPort ${String(sp.targetPort)} is no container port of ${w.name}`);
      }
    }
  }
  return problems;
}

/** Every address a pod dials resolves and its NetworkPolicies let that pod in; reducers listed whole; no port shut to everyone. */
export function networkProblems(objs: readonly K8sObject[]): string[] {
  const { containers, problems } = bertfleetContainers(objs);
  const all = workloads(objs);
  for (const x of containers) {
    for (const [flag, split] of Object.entries(DIALS)) {
      const v = x.values[flag];
      if (typeof v !== 'string') continue;
      for (const address of split(v)) {
        const t = resolveAddress(objs, all, address);
        if (typeof t === 'string') {
          problems.push(`${x.where}: --${flag} ${address}: ${t}`);
          continue;
        }
        // The coordinator hands the reducer addresses to every worker, which pushes and pulls its slices there.
        const clients = flag === 'reducers' ? [x.workload, ...all.filter((w) => w.name === 'bertfleet-worker')] : [x.workload];
        for (const client of clients) if (!ingressAllowed(objs, client, t.workload, t.port)) problems.push(`${client.name} -> ${address} (${t.workload.name}:${t.port}) is blocked by NetworkPolicy`);
      }
      if (flag === 'reducers') {
        const named = split(v).map((a) => a.split('.')[0]!).sort();
        const sts = all.find((w) => named[0]?.startsWith(`${w.name}-`));
        const pods = sts === undefined ? [] : Array.from({ length: sts.replicas }, (_, i) => `${sts.name}-${i}`);
        if (named.join() !== pods.join()) problems.push(`${x.where}: --reducers names ${named.join(', ')}, the reducer pods are ${pods.join(', ')}`);
      }
    }
  }
  for (const w of all.filter((y) => ingressPolicies(objs, y).length > 0)) {
    for (const p of containersOf(w.pod).flatMap((c) => (c.ports ?? []) as { containerPort: number; name?: string }[])) {
      const anyone = ingressAllowed(objs, null, w, p.containerPort);
      if (p.name === 'health' && !anyone) problems.push(`${w.name}: health port ${p.containerPort} is shut to Prometheus`);
      if (!anyone && !all.some((peer) => peer !== w && ingressAllowed(objs, peer, w, p.containerPort))) problems.push(`${w.name}: port ${p.containerPort} is open to no one`);
    }
  }
  return problems;
}

/** The mount a path lies on (the longest mountPath prefix), if any. */
export function mountOf(c: K8sObject, path: string): K8sObject | undefined {
  return ((c.volumeMounts ?? []) as K8sObject[])
    .filter((m) => path === m.mountPath || path.startsWith(`${String(m.mountPath).replace(/\/$/, '')}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
}

function writable(w: Workload, m: K8sObject | undefined): boolean {
  if (m === undefined || m.readOnly === true) return false;
  const claim = (w.obj.spec?.volumeClaimTemplates ?? []).some((t: K8sObject) => t.metadata.name === m.name);
  const vol = (w.pod.volumes ?? []).find((v: K8sObject) => v.name === m.name);
  return claim || vol?.emptyDir !== undefined || vol?.persistentVolumeClaim !== undefined;
}

const configMapOf = (objs: readonly K8sObject[], w: Workload, m: K8sObject | undefined): K8sObject | undefined => {
  const vol = (w.pod.volumes ?? []).find((v: K8sObject) => v.name === m?.name);
  return vol?.configMap === undefined ? undefined : objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === vol.configMap.name);
};

/**
 * Paths in args and env on mounts (ConfigMap keys where the mount is one); the coordinator's output on
 * its volume claim with --resume=auto; its --config a strict run config; a read-only root with
 * writable /tmp and, for pods that load data, data.cacheDir (relative to the image's `workdir`).
 */
export function volumeProblems(objs: readonly K8sObject[], workdir: string): string[] {
  const { containers, problems } = bertfleetContainers(objs);
  // The run's cacheDir (the coordinator's --config is checked on its own below); the schema's default if unreadable.
  let runCacheDir = parseRunConfig({}).data.cacheDir;
  try {
    const cm = objs.find((o) => o.kind === 'ConfigMap' && String(o.metadata.name).startsWith('bertfleet-run'));
    runCacheDir = parseRunConfig(JSON.parse(cm?.data?.['run-config.json'] ?? '{}')).data.cacheDir;
  } catch {
    // reported where the coordinator's --config is parsed
  }
  for (const x of containers) {
    const values = [...((x.c.args ?? []) as string[]).map((a) => a.replace(/^--[^=]+=/, '')), ...envOf(x.c).map((e) => e.value ?? '')];
    for (const path of values.filter((v) => v.startsWith('/')).map((v) => v.replace(/\$\(([^)]+)\)/g, '$1'))) {
      const m = mountOf(x.c, path);
      const cm = configMapOf(objs, x.workload, m);
      if (m === undefined) problems.push(`${x.where}: ${path} is on no volume mount`);
      else if (cm !== undefined && !Object.keys(cm.data ?? {}).includes(posix.relative(m.mountPath, path))) problems.push(`${x.where}: ${path}: ConfigMap ${cm.metadata.name} has no key ${posix.relative(m.mountPath, path)}`);
    }
    if (x.c.securityContext?.readOnlyRootFilesystem !== true) problems.push(`${x.where}: the root filesystem is not read-only`);
    if (!writable(x.workload, mountOf(x.c, '/tmp'))) problems.push(`${x.where}: /tmp is not on a writable volume (tsx's cache)`);
    let cacheDir: string | undefined;
    if (x.command === 'coordinator') {
      const output = String(x.values['output']);
      const m = mountOf(x.c, output);
      const claims = (x.workload.obj.spec.volumeClaimTemplates ?? []).map((t: K8sObject) => t.metadata.name);
      if (!x.resumeAuto) problems.push(`${x.where}: no --resume=auto: a restarted pod would refuse its own output`);
      if (!writable(x.workload, m) || !claims.includes(m!.name)) problems.push(`${x.where}: --output ${output} is not on a writable volume claim of the StatefulSet`);
      const config = String(x.values['config']);
      const cm = configMapOf(objs, x.workload, mountOf(x.c, config));
      try {
        cacheDir = parseRunConfig(JSON.parse(cm?.data?.[posix.basename(config)]), `ConfigMap ${String(cm?.metadata.name)}`).data.cacheDir;
      } catch (err) {
        problems.push(`${x.where}: --config ${config}: ${errorText(err)}`);
      }
    }
    if (x.command !== 'reducer') {
      // Workers get the run config from the coordinator: its cacheDir is theirs.
      cacheDir ??= runCacheDir;
      const abs = posix.resolve(workdir, cacheDir);
      if (!writable(x.workload, mountOf(x.c, abs))) problems.push(`${x.where}: data.cacheDir ${abs} is not on a writable volume`);
    }
  }
  return problems;
}

/** Requests and limits, no privilege escalation, non-root pods; one reference per image, NATS's by digest, the coordinator's named by the fetch pod. */
export function hygieneProblems(objs: readonly K8sObject[], fetchPod: K8sObject): string[] {
  const problems: string[] = [];
  const all = workloads(objs);
  for (const w of all) {
    if (w.pod.securityContext?.runAsNonRoot !== true) problems.push(`${w.name}: runAsNonRoot is not true`);
    for (const c of containersOf(w.pod)) {
      for (const kind of ['requests', 'limits']) for (const r of ['cpu', 'memory']) if (c.resources?.[kind]?.[r] === undefined) problems.push(`${w.name}/${String(c.name)}: no ${kind}.${r}`);
      if (c.securityContext?.allowPrivilegeEscalation !== false) problems.push(`${w.name}/${String(c.name)}: allowPrivilegeEscalation is not false`);
    }
  }
  const images = [...new Set(all.flatMap((w) => containersOf(w.pod).map((c) => String(c.image))))];
  const known = /^(bertfleet(-gpu)?(:[\w.-]+)?|nats:\d+\.\d+\.\d+[\w.-]*)(@sha256:[0-9a-f]{64})?$/;
  for (const i of images) if (!known.test(i) || !/[:@]/.test(i)) problems.push(`image ${i}: expected bertfleet[-gpu] with a tag or digest, or nats:X.Y.Z`);
  for (const i of images.filter((x) => x.startsWith('nats') && !/@sha256:[0-9a-f]{64}$/.test(x))) problems.push(`image ${i}: the official NATS image is pinned by digest (k8s/base/kustomization.yaml images:)`);
  const names = images.map((i) => i.split(/[:@]/)[0]);
  for (const n of names.filter((n, k) => names.indexOf(n) !== k)) problems.push(`image ${n} under two references: ${images.filter((i) => i.startsWith(`${n}:`) || i.startsWith(`${n}@`)).join(', ')}`);
  const coordinator = all.find((w) => w.name === 'bertfleet-coordinator');
  const fetchImage = fetchPod.spec?.containers?.[0]?.image;
  if (coordinator !== undefined && fetchImage !== coordinator.pod.containers[0].image) problems.push(`k8s/fetch-results.yaml runs ${String(fetchImage)}, the coordinator ${String(coordinator.pod.containers[0].image)}`);
  if (coordinator !== undefined) {
    const claim = `${String(coordinator.obj.spec.volumeClaimTemplates?.[0]?.metadata.name)}-${coordinator.name}-0`;
    const used = (fetchPod.spec?.volumes ?? []).map((v: K8sObject) => v.persistentVolumeClaim?.claimName).filter(Boolean);
    if (!used.includes(claim)) problems.push(`k8s/fetch-results.yaml mounts ${used.join(', ')}, the coordinator's claim is ${claim}`);
  }
  return problems;
}

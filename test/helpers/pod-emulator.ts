/**
 * Runs rendered Kubernetes manifests (renderOverlay(), kubectl.ts) as local
 * processes, pod by pod, with each pod's own command, args and environment:
 * the StatefulSet controller (replicas, podManagementPolicy, ordinals,
 * `kubectl scale`, `kubectl delete pod` and the replacement pod), the kubelet
 * (`$(VAR)` expansion, fieldRef env, service links, volumes, probes,
 * restartPolicy Always, SIGTERM / grace / SIGKILL) and Services
 * (k8s-services.ts) — on one host, so pod IPs are 127.0.0.1 and every
 * container port is a free local port.
 *
 * Images are stand-ins (k8s-images.ts): `bertfleet` is this repo's
 * bin/bertfleet (each pod gets its own folder standing for the WORKDIR
 * /opt/bertfleet, with the mounts under it as symlinks), `nats` is the host's
 * nats-server run with the container's `command`. Volumes: k8s-volumes.ts.
 *
 * What changes between the spec and the process is recorded per container
 * start (`launches`, also logs/launches.jsonl): mount paths, container ports
 * and Service names only (k8s-rewrite.ts), plus the variables the runtime
 * adds (`runtimeEnv`).
 * `foreignPaths()` lists host paths a pod's log names that belong to a
 * volume that pod does not mount: a file it could read here and not in a
 * cluster.
 *
 * Not emulated: anything outside StatefulSets, Services, ConfigMaps and
 * Secrets (PodDisruptionBudgets, NetworkPolicies are ignored); resources,
 * securityContext (processes run as the test's user; a read-only root is
 * not enforced), PID 1 signal semantics, image contents beyond the stand-ins,
 * DNS (names are rewritten, not resolved), Secret and ConfigMap updates.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { IMAGES, imageName, makeWorkdir, type ImageStandIn } from './k8s-images.js';
import { launchEnv, planLaunch, type Launch } from './k8s-launch.js';
import {
  containerPort, isHeadless, named, ofKind, podLabels, podName, selects, theContainer, UnsupportedSpecError,
  type Container, type Service, type StatefulSet,
} from './k8s-manifest.js';
import { EmulatedPod, type ContainerExit, type ContainerPlan, type PodRuntime } from './k8s-pod.js';
import type { MountPoint } from './k8s-rewrite.js';
import { serviceLinkEnv, ServiceProxies } from './k8s-services.js';
import { mountPodVolumes, VolumeStore } from './k8s-volumes.js';
import type { K8sObject } from './kubectl.js';
import { freePort } from './ports.js';

export type { Launch } from './k8s-launch.js';

export interface PodEmulatorOptions {
  objects: readonly K8sObject[];
  /** Everything goes under it: volumes/, pods/, logs/. */
  workDir: string;
  namespace?: string;
  images?: Readonly<Record<string, ImageStandIn>>;
}

interface PodContext {
  sts: StatefulSet;
  container: Container;
  mounts: MountPoint[];
  cwd: string;
}

const SUPPORTED_KINDS = new Set(['StatefulSet', 'Service', 'ConfigMap', 'Secret', 'PodDisruptionBudget', 'NetworkPolicy']);

export class PodEmulator {
  readonly launches: Launch[] = [];
  readonly events: string[] = [];
  readonly volumes: VolumeStore;
  readonly logDir: string;
  /** Every pod there was, in creation order (deleted ones too). */
  readonly history: EmulatedPod[] = [];
  /** Errors creating or restarting pods (a missing Secret, an unsupported field): the pod stays absent or without a container. */
  readonly failures: Error[] = [];
  private readonly ns: string;
  private readonly images: Readonly<Record<string, ImageStandIn>>;
  private readonly statefulSets: StatefulSet[];
  private readonly services: Service[];
  private readonly proxies: ServiceProxies;
  private readonly replicas = new Map<string, number>();
  private readonly current = new Map<string, EmulatedPod>();
  private readonly creating = new Set<string>();
  private readonly portMaps = new Map<string, Map<number, number>>();
  private readonly incarnations = new Map<string, number>();
  private readonly contexts = new WeakMap<EmulatedPod, PodContext>();
  private readonly runtime: PodRuntime;
  private stopping = false;

  private constructor(private readonly o: PodEmulatorOptions) {
    for (const obj of o.objects) {
      if (!SUPPORTED_KINDS.has(obj['kind'])) throw new UnsupportedSpecError(`${obj['kind']} ${obj['metadata']?.name}: kind not emulated`);
    }
    this.ns = o.namespace ?? 'default';
    this.images = o.images ?? IMAGES;
    this.statefulSets = ofKind<StatefulSet>(o.objects, 'StatefulSet');
    this.services = ofKind<Service>(o.objects, 'Service');
    for (const sts of this.statefulSets) {
      theContainer(sts.spec.template.spec, `StatefulSet ${sts.metadata.name}`);
      this.replicas.set(sts.metadata.name, sts.spec.replicas ?? 1);
    }
    this.volumes = new VolumeStore(join(o.workDir, 'volumes'));
    this.logDir = join(o.workDir, 'logs');
    mkdirSync(this.logDir, { recursive: true });
    this.proxies = new ServiceProxies((svc, port) => this.endpoints(svc, port));
    this.runtime = {
      plan: (pod) => this.plan(pod),
      probes: {},
      localPort: (pod, ref) => this.localPort(pod, ref),
      event: (pod, m) => this.event(`${pod.id}: ${m}`),
      changed: (pod) => this.changed(pod),
      failed: (pod, err) => {
        this.failures.push(new Error(`pod ${pod.id}: container could not be restarted: ${err.message}`, { cause: err }));
        this.event(`${pod.id}: restart failed: ${err.message}`);
      },
    };
  }

  /** Creates the Services and every StatefulSet's pods, as `kubectl apply` of the whole list would. */
  static async start(o: PodEmulatorOptions): Promise<PodEmulator> {
    const emu = new PodEmulator(o);
    for (const svc of emu.services) if (!isHeadless(svc)) await emu.proxies.add(svc);
    for (const sts of emu.statefulSets) await emu.allocatePorts(sts, emu.replicas.get(sts.metadata.name)!);
    for (const sts of emu.statefulSets) emu.reconcile(sts);
    return emu;
  }

  /** The current pod of that name (a deleted pod's successor once it exists). */
  pod(name: string): EmulatedPod {
    const p = this.current.get(name);
    if (p === undefined) throw new Error(`no pod ${name} now; pods: ${[...this.current.keys()].join(', ')}`);
    return p;
  }

  hasPod(name: string): boolean {
    return this.current.has(name);
  }

  /** `kubectl scale statefulset NAME --replicas=N`. */
  async scale(statefulSet: string, replicas: number): Promise<void> {
    const sts = named<StatefulSet>(this.o.objects, 'StatefulSet', statefulSet);
    await this.allocatePorts(sts, replicas);
    this.event(`scale statefulset/${statefulSet} ${this.replicas.get(statefulSet)} -> ${replicas}`);
    this.replicas.set(statefulSet, replicas);
    this.reconcile(sts);
  }

  /** `kubectl delete pod NAME`: resolves with its container's last exit once it is gone; the controller then replaces it. */
  async deletePod(name: string): Promise<ContainerExit | undefined> {
    this.event(`delete pod/${name}`);
    return this.pod(name).terminate('pod deleted');
  }

  /** Resolves once a pod named `name` satisfies `pred` (checked on every readiness change and pod creation). */
  async waitPod(name: string, pred: (p: EmulatedPod) => boolean, timeoutMs: number, what: string): Promise<EmulatedPod> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      if (this.failures.length > 0) throw this.failures[0]!;
      const p = this.current.get(name);
      if (p !== undefined && pred(p)) return p;
      if (Date.now() > until) throw new Error(`pod ${name} not ${what} within ${timeoutMs} ms; events:\n${this.events.slice(-20).join('\n')}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  waitReady(names: readonly string[], timeoutMs: number): Promise<EmulatedPod[]> {
    return Promise.all(names.map((n) => this.waitPod(n, (p) => p.ready, timeoutMs, 'ready')));
  }

  /** The folder standing for a volumeClaimTemplate's claim of a pod (`<template>-<pod>`). */
  claimDir(template: string, pod: string): string {
    return this.volumes.claim(`${template}-${pod}`);
  }

  /** The local port of a current pod's container port (by number or name). */
  portOf(pod: string, ref: number | string): number {
    return this.localPort(this.pod(pod), ref);
  }

  /** The proxy port standing for a ClusterIP Service port. */
  servicePort(service: string, port: number): number {
    const p = this.proxies.localPort(service, port);
    if (p === undefined) throw new Error(`no Service port ${service}:${port}`);
    return p;
  }

  /** Host paths named in a pod's log that lie in a volume (or pod folder) that pod does not mount. */
  foreignPaths(): Array<{ pod: string; path: string; owner: string }> {
    const root = this.o.workDir;
    const pattern = new RegExp(`${root.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/[^\\s"',]*`, 'g');
    const out: Array<{ pod: string; path: string; owner: string }> = [];
    for (const pod of this.history) {
      const allowed = new Set([...pod.mounted, `pod/${pod.id}`]);
      for (const line of pod.lines) {
        for (const path of line.match(pattern) ?? []) {
          const owner = this.volumes.ownerOf(path);
          if (owner !== undefined && !allowed.has(owner)) out.push({ pod: pod.id, path, owner });
        }
      }
    }
    return out;
  }

  /** The last `n` lines of every pod's log file and of the events, for a failed test's output. */
  tail(n: number): string {
    const files = [...new Set(this.history.map((p) => p.logFile)), join(this.logDir, 'events.log')];
    return files
      .filter((f) => existsSync(f))
      .map((f) => `==> ${f} <==\n${readFileSync(f, 'utf8').split('\n').slice(-n - 1).join('\n')}`)
      .join('\n');
  }

  /** Deletes every pod at once (SIGTERM, grace, SIGKILL), as `kubectl delete -k` does; their last exits by pod id. */
  async stop(): Promise<Map<string, ContainerExit | undefined>> {
    this.stopping = true;
    const pods = [...this.current.values()];
    const exits = await Promise.all(pods.map((p) => p.terminate('deleted with the kustomization')));
    await this.proxies.close();
    return new Map(pods.map((p, i) => [p.id, exits[i]]));
  }

  private event(message: string): void {
    const line = `${new Date().toISOString()} ${message}`;
    this.events.push(line);
    appendFileSync(join(this.logDir, 'events.log'), `${line}\n`);
  }

  private async allocatePorts(sts: StatefulSet, replicas: number): Promise<void> {
    const c = theContainer(sts.spec.template.spec, sts.metadata.name);
    for (let i = 0; i < replicas; i++) {
      const name = podName(sts, i);
      if (this.portMaps.has(name)) continue;
      const ports = new Map<number, number>();
      for (const p of c.ports ?? []) ports.set(p.containerPort, await freePort());
      this.portMaps.set(name, ports);
    }
  }

  /** The StatefulSet controller: create missing ordinals, delete those past replicas. */
  private reconcile(sts: StatefulSet): void {
    if (this.stopping) return;
    const want = this.replicas.get(sts.metadata.name)!;
    const parallel = sts.spec.podManagementPolicy === 'Parallel';
    const mine = [...this.current.values()].filter((p) => p.name.startsWith(`${sts.metadata.name}-`) && p.name === podName(sts, p.ordinal));
    const busy = mine.some((p) => p.terminating) || [...this.creating].some((n) => n.startsWith(`${sts.metadata.name}-`));
    const extra = mine.filter((p) => p.ordinal >= want && !p.terminating).sort((a, b) => b.ordinal - a.ordinal);
    if (parallel) for (const p of extra) void p.terminate('scaled down');
    else if (extra.length > 0 && !busy) void extra[0]!.terminate('scaled down');
    if (!parallel && (busy || extra.length > 0)) return;
    for (let i = 0; i < want; i++) {
      const name = podName(sts, i);
      const existing = this.current.get(name);
      if (existing !== undefined || this.creating.has(name)) {
        if (!parallel && existing?.ready !== true) return; // OrderedReady: one at a time, each ready first
        continue;
      }
      void this.createPod(sts, i);
      if (!parallel) return;
    }
  }

  private changed(pod: EmulatedPod): void {
    const ctx = this.contexts.get(pod);
    if (ctx === undefined) return;
    if (pod.terminating && this.current.get(pod.name) === pod) {
      void pod.gone.then(() => {
        if (this.current.get(pod.name) === pod) this.current.delete(pod.name);
        this.reconcile(ctx.sts);
      });
    }
    this.reconcile(ctx.sts);
  }

  private async createPod(sts: StatefulSet, ordinal: number): Promise<void> {
    const name = podName(sts, ordinal);
    this.creating.add(name);
    try {
      const incarnation = (this.incarnations.get(name) ?? 0) + 1;
      this.incarnations.set(name, incarnation);
      const id = `${name}.${incarnation}`;
      const dir = join(this.o.workDir, 'pods', id);
      mkdirSync(dir, { recursive: true });
      this.volumes.own(dir, `pod/${id}`);
      const container = theContainer(sts.spec.template.spec, name);
      const image = this.imageOf(container);
      const { mounts, mounted } = mountPodVolumes({ store: this.volumes, objects: this.o.objects, statefulSets: this.statefulSets, sts, pod: name, podId: id, podDir: dir, container });
      const cwd = makeWorkdir(dir, container.workingDir ?? image.workingDir, mounts);
      const pod = new EmulatedPod(
        name, ordinal, id, dir, join(this.logDir, `${name}.log`), podLabels(sts, ordinal), mounted,
        this.portMaps.get(name) ?? new Map(), sts.spec.template.spec.terminationGracePeriodSeconds ?? 30,
        { ...this.runtime, probes: { ...(container.startupProbe && { startup: container.startupProbe }), ...(container.readinessProbe && { readiness: container.readinessProbe }), ...(container.livenessProbe && { liveness: container.livenessProbe }) } },
      );
      this.contexts.set(pod, { sts, container, mounts, cwd });
      this.current.set(name, pod);
      this.history.push(pod);
      this.event(`${id}: created`);
      pod.start();
    } catch (err) {
      this.failures.push(new Error(`pod ${name} could not be created: ${(err as Error).message}`, { cause: err }));
      this.event(`${name}: create failed: ${(err as Error).message}`);
    } finally {
      this.creating.delete(name);
    }
  }

  private imageOf(c: Container): ImageStandIn {
    const image = this.images[imageName(c.image)];
    if (image === undefined) throw new UnsupportedSpecError(`image ${c.image}: no stand-in (have ${Object.keys(this.images).join(', ')})`);
    return image;
  }

  private localPort(pod: EmulatedPod, ref: number | string): number {
    const ctx = this.contexts.get(pod)!;
    const cp = containerPort(ctx.container, ref, pod.name);
    const local = pod.ports.get(cp);
    if (local === undefined) throw new Error(`${pod.name}: port ${ref} (${cp}) is not a container port`);
    return local;
  }

  private endpoints(svc: Service, servicePort: number): Array<{ port: number }> {
    const sp = svc.spec.ports.find((p) => p.port === servicePort)!;
    const out: Array<{ port: number }> = [];
    for (const pod of this.current.values()) {
      if (!pod.ready || !selects(svc.spec.selector, pod.labels)) continue;
      out.push({ port: this.localPort(pod, sp.targetPort ?? sp.port) });
    }
    return out;
  }

  /** DNS as the cluster would answer, for the names a container dials: a Service, or a pod of a headless Service. */
  private resolve(host: string, port: number): { port: number; what: string } | undefined {
    let short = host;
    for (const suffix of [`.${this.ns}.svc.cluster.local`, `.${this.ns}.svc`, `.${this.ns}`]) {
      if (short.endsWith(suffix)) {
        short = short.slice(0, -suffix.length);
        break;
      }
    }
    const svc = this.services.find((s) => s.metadata.name === short);
    if (svc !== undefined && !isHeadless(svc)) {
      const local = this.proxies.localPort(short, port);
      return local === undefined ? undefined : { port: local, what: `service ${short}` };
    }
    const dot = short.indexOf('.');
    if (dot <= 0) return undefined;
    const pod = short.slice(0, dot);
    const governing = short.slice(dot + 1);
    const headless = this.services.some((s) => s.metadata.name === governing && isHeadless(s));
    const owner = this.statefulSets.some((s) => s.spec.serviceName === governing && pod.startsWith(`${s.metadata.name}-`));
    const local = headless && owner ? this.portMaps.get(pod)?.get(port) : undefined;
    return local === undefined ? undefined : { port: local, what: `pod ${pod}` };
  }

  /** What the container runs this time: the spec expanded and rewritten (recorded in `launches`). */
  private plan(pod: EmulatedPod): ContainerPlan {
    const { sts, container, mounts, cwd } = this.contexts.get(pod)!;
    const template = sts.spec.template;
    const launch = planLaunch({
      pod, container, image: this.imageOf(container), mounts, cwd,
      fields: { name: pod.name, namespace: this.ns, labels: { ...pod.labels }, annotations: template.metadata?.annotations ?? {}, podIP: '127.0.0.1' },
      serviceLinks: template.spec.enableServiceLinks === false ? {} : serviceLinkEnv(this.services, this.proxies),
      resolve: (h, p) => this.resolve(h, p),
    });
    this.launches.push(launch);
    appendFileSync(join(this.logDir, 'launches.jsonl'), `${JSON.stringify(launch)}\n`);
    return { executable: launch.executable, argv: launch.argv, env: launchEnv(launch), cwd };
  }
}

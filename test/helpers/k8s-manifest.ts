/**
 * The part of the Kubernetes object model the pod emulator reads
 * (pod-emulator.ts): StatefulSets, Services, ConfigMaps, Secrets and the pod
 * template's one container, typed as far as the emulator uses them, with the
 * lookups the kubelet and the StatefulSet controller do (named ports, label
 * selectors, pod names and labels). Objects come from renderOverlay()
 * (kubectl.ts) as parsed YAML; a field this emulator does not understand is
 * refused with UnsupportedSpecError rather than ignored.
 */
import type { K8sObject } from './kubectl.js';

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string }; [other: string]: unknown };
}

export interface HttpGetAction {
  path?: string;
  port: number | string;
  host?: string;
  scheme?: string;
  httpHeaders?: Array<{ name: string; value: string }>;
}

export interface Probe {
  httpGet?: HttpGetAction;
  tcpSocket?: { port: number | string };
  exec?: unknown;
  grpc?: unknown;
  initialDelaySeconds?: number;
  periodSeconds?: number;
  timeoutSeconds?: number;
  successThreshold?: number;
  failureThreshold?: number;
}

export interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
  subPath?: string;
}

export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  workingDir?: string;
  env?: EnvVar[];
  envFrom?: unknown[];
  ports?: Array<{ containerPort: number; name?: string; protocol?: string }>;
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  volumeMounts?: VolumeMount[];
  lifecycle?: unknown;
}

export interface KeyToPath {
  key: string;
  path: string;
  mode?: number;
}

export interface Volume {
  name: string;
  emptyDir?: { sizeLimit?: string; medium?: string };
  configMap?: { name: string; defaultMode?: number; items?: KeyToPath[]; optional?: boolean };
  secret?: { secretName: string; defaultMode?: number; items?: KeyToPath[]; optional?: boolean };
  persistentVolumeClaim?: { claimName: string };
}

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  terminationGracePeriodSeconds?: number;
  restartPolicy?: string;
  enableServiceLinks?: boolean;
}

export interface StatefulSet {
  kind: 'StatefulSet';
  metadata: { name: string; namespace?: string };
  spec: {
    replicas?: number;
    serviceName?: string;
    podManagementPolicy?: 'OrderedReady' | 'Parallel';
    selector: { matchLabels?: Record<string, string> };
    template: { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec: PodSpec };
    volumeClaimTemplates?: Array<{ metadata: { name: string } }>;
  };
}

export interface ServicePort {
  name?: string;
  port: number;
  targetPort?: number | string;
  protocol?: string;
}

export interface Service {
  kind: 'Service';
  metadata: { name: string };
  spec: { selector?: Record<string, string>; ports: ServicePort[]; clusterIP?: string; type?: string };
}

export interface ConfigMap {
  kind: 'ConfigMap';
  metadata: { name: string };
  data?: Record<string, string>;
  binaryData?: Record<string, string>;
}

export interface Secret {
  kind: 'Secret';
  metadata: { name: string };
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

/** A field of a manifest the emulator does not emulate: it refuses to guess. */
export class UnsupportedSpecError extends Error {
  override readonly name = 'UnsupportedSpecError';
}

export function ofKind<T>(objects: readonly K8sObject[], kind: string): T[] {
  return objects.filter((o) => o['kind'] === kind) as T[];
}

/** The one object of `kind` named `name`: an error listing the names there are when it is absent. */
export function named<T extends { metadata: { name: string } }>(objects: readonly K8sObject[], kind: string, name: string): T {
  const all = ofKind<T>(objects, kind);
  const found = all.find((o) => o.metadata.name === name);
  if (found === undefined) throw new Error(`no ${kind} named ${name}; there are: ${all.map((o) => o.metadata.name).join(', ') || 'none'}`);
  return found;
}

/** The pod name of ordinal `i`, as the StatefulSet controller names it. */
export function podName(sts: StatefulSet, ordinal: number): string {
  return `${sts.metadata.name}-${ordinal}`;
}

/** The labels a StatefulSet pod carries: the template's plus the controller's own. */
export function podLabels(sts: StatefulSet, ordinal: number): Record<string, string> {
  return {
    ...(sts.spec.template.metadata?.labels ?? {}),
    'statefulset.kubernetes.io/pod-name': podName(sts, ordinal),
    'apps.kubernetes.io/pod-index': String(ordinal),
  };
}

export function selects(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  if (selector === undefined) return false; // a Service without a selector has no automatic endpoints
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** The one container of a pod spec (init containers and sidecars are not emulated). */
export function theContainer(spec: PodSpec, owner: string): Container {
  if ((spec.initContainers ?? []).length > 0) throw new UnsupportedSpecError(`${owner}: initContainers are not emulated`);
  if (spec.containers.length !== 1) throw new UnsupportedSpecError(`${owner}: expected one container, got ${spec.containers.length}`);
  const c = spec.containers[0]!;
  if ((c.envFrom ?? []).length > 0) throw new UnsupportedSpecError(`${owner}: envFrom is not emulated`);
  if (c.lifecycle !== undefined) throw new UnsupportedSpecError(`${owner}: lifecycle hooks are not emulated`);
  return c;
}

/** A container port by number or name (probes and Services name them), as the kubelet resolves it. */
export function containerPort(c: Container, ref: number | string, owner: string): number {
  if (typeof ref === 'number') return ref;
  if (/^\d+$/.test(ref)) return Number(ref);
  const p = (c.ports ?? []).find((x) => x.name === ref);
  if (p === undefined) throw new Error(`${owner}: no container port named "${ref}" (ports: ${(c.ports ?? []).map((x) => x.name ?? x.containerPort).join(', ')})`);
  return p.containerPort;
}

/** Headless (clusterIP: None): DNS gives each pod a name, and there is no virtual IP to proxy. */
export function isHeadless(svc: Service): boolean {
  return svc.spec.clusterIP === 'None';
}

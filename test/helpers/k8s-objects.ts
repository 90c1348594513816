/**
 * Reading rendered Kubernetes objects for the k8s/ tests: the pods each
 * workload runs (StatefulSet, Deployment, Job templates and bare Pods), label
 * selection as the API server does it, and the ports a container exposes.
 * Knows nothing of bertfleet: the tests put the meaning on top.
 */
import type { K8sObject } from './kubectl.js';

/** The overlays CI renders: the base and every overlay (k8s/README.md). */
export const OVERLAYS = ['k8s/base', 'k8s/overlays/cpu', 'k8s/overlays/gpu', 'k8s/overlays/reducers'] as const;

export interface Workload {
  kind: string;
  name: string;
  obj: K8sObject;
  /** The pods' labels (the template's, or a Pod's own). */
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** The pod spec. */
  pod: K8sObject;
  replicas: number;
}

const TEMPLATED = new Set(['StatefulSet', 'Deployment', 'DaemonSet', 'ReplicaSet', 'Job']);

export function workloads(objs: readonly K8sObject[]): Workload[] {
  const out: Workload[] = [];
  for (const obj of objs) {
    if (obj.kind === 'Pod') {
      out.push({ kind: 'Pod', name: obj.metadata.name, obj, labels: obj.metadata.labels ?? {}, annotations: obj.metadata.annotations ?? {}, pod: obj.spec, replicas: 1 });
    } else if (TEMPLATED.has(obj.kind)) {
      const t = obj.spec.template;
      out.push({
        kind: obj.kind, name: obj.metadata.name, obj, labels: t.metadata?.labels ?? {}, annotations: t.metadata?.annotations ?? {},
        pod: t.spec, replicas: obj.spec.replicas ?? 1,
      });
    }
  }
  return out;
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }[];
}

/** Whether `selector` selects pods with `labels` (an empty selector selects all). */
export function selects(selector: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (selector === undefined) return true;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const ok = e.operator === 'In' ? has && (e.values ?? []).includes(labels[e.key]!)
      : e.operator === 'NotIn' ? !has || !(e.values ?? []).includes(labels[e.key]!)
        : e.operator === 'Exists' ? has : !has;
    if (!ok) return false;
  }
  return true;
}

/** A Service's selector is a plain label map. */
export const selectsByMap = (selector: Record<string, string> | undefined, labels: Record<string, string>): boolean =>
  selector !== undefined && selects({ matchLabels: selector }, labels);

export interface ContainerPort {
  containerPort: number;
  name?: string;
  protocol?: string;
}

/** The port number a container exposes under `port` (a number or a port name), or undefined. */
export function resolvePort(container: K8sObject, port: number | string): number | undefined {
  const ports = (container.ports ?? []) as ContainerPort[];
  const hit = typeof port === 'number' ? ports.find((p) => p.containerPort === port) : ports.find((p) => p.name === port);
  return hit?.containerPort;
}

/** Every container of a pod, init containers included. */
export const containersOf = (pod: K8sObject): K8sObject[] => [...(pod.initContainers ?? []), ...(pod.containers ?? [])];

/** The object of `kind` named `name`, if the render has one. */
export function byKindName(objs: readonly K8sObject[], kind: string, name: string): K8sObject | undefined {
  return objs.find((o) => o.kind === kind && o.metadata?.name === name);
}

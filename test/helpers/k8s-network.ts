/**
 * Who reaches whom in a rendered k8s/ overlay, as the cluster would route it:
 * an address `HOST:PORT` from a container's args resolved through a Service
 * (`svc`, `svc.ns.svc...`) or a StatefulSet pod's stable name behind a
 * headless Service (`pod-N.svc`) to the workload and container port it
 * reaches; and whether the NetworkPolicies let a client pod in on that port.
 */
import type { K8sObject } from './kubectl.js';
import { containersOf, resolvePort, selects, selectsByMap, type LabelSelector, type Workload } from './k8s-objects.js';

export interface Target {
  workload: Workload;
  /** The container port the connection lands on. */
  port: number;
}

/** `host:port` resolved to the workload and container port it reaches; a string saying why not. */
export function resolveAddress(objs: readonly K8sObject[], all: readonly Workload[], address: string): Target | string {
  const m = /^([a-z0-9.-]+):(\d+)$/.exec(address);
  if (m === null) return `"${address}" is not HOST:PORT`;
  const labels = m[1]!.split('.');
  const port = Number(m[2]);
  const service = (name: string | undefined) => objs.find((o) => o.kind === 'Service' && o.metadata.name === name);
  const svc = service(labels[0]);
  if (svc !== undefined) {
    const sp = (svc.spec.ports ?? []).find((p: K8sObject) => p.port === port);
    if (sp === undefined) return `Service ${svc.metadata.name} has no port ${port}`;
    const selected = all.filter((w) => selectsByMap(svc.spec.selector, w.labels));
    if (selected.length === 0) return `Service ${svc.metadata.name} selects no pods`;
    const w = selected[0]!;
    const target = sp.targetPort ?? port;
    const landed = containersOf(w.pod).map((c) => resolvePort(c, target)).find((p) => p !== undefined);
    return landed === undefined ? `Service ${svc.metadata.name} port ${port}: targetPort ${String(target)} is no container port of ${w.name}` : { workload: w, port: landed };
  }
  // pod-N.svc: a StatefulSet pod behind its headless governing Service.
  const headless = service(labels[1]);
  if (headless === undefined) return `no Service named ${labels[0]} or ${labels[1] ?? '(none)'}`;
  if (headless.spec.clusterIP !== 'None') return `Service ${headless.metadata.name} is not headless: pod names do not resolve`;
  const sts = all.find((w) => w.kind === 'StatefulSet' && w.obj.spec.serviceName === headless.metadata.name && labels[0]!.startsWith(`${w.name}-`));
  if (sts === undefined) return `no StatefulSet governed by ${headless.metadata.name} has a pod ${labels[0]}`;
  const ordinal = Number(labels[0]!.slice(sts.name.length + 1));
  if (!(Number.isInteger(ordinal) && ordinal >= 0 && ordinal < sts.replicas)) return `${labels[0]}: ${sts.name} has ${sts.replicas} replicas`;
  const landed = containersOf(sts.pod).map((c) => resolvePort(c, port)).find((p) => p !== undefined);
  return landed === undefined ? `${labels[0]} has no container port ${port}` : { workload: sts, port: landed };
}

interface PolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: unknown;
}

interface IngressRule {
  from?: PolicyPeer[];
  ports?: { port?: number | string; protocol?: string }[];
}

/** The NetworkPolicies that isolate `server`'s pods for ingress. */
export function ingressPolicies(objs: readonly K8sObject[], server: Workload): K8sObject[] {
  return objs.filter((o) => o.kind === 'NetworkPolicy' && selects(o.spec.podSelector, server.labels)
    && (o.spec.policyTypes ?? ['Ingress']).includes('Ingress'));
}

function portAllowed(rule: IngressRule, server: Workload, port: number): boolean {
  if (rule.ports === undefined || rule.ports.length === 0) return true;
  return rule.ports.some((p) => p.port === undefined || p.port === port
    || (typeof p.port === 'string' && containersOf(server.pod).some((c) => resolvePort(c, p.port!) === port)));
}

/** A peer of the same namespace (a podSelector alone) selecting the client; null: any source. */
function peerAllows(rule: IngressRule, client: Workload | null): boolean {
  if (rule.from === undefined || rule.from.length === 0) return true;
  if (client === null) return false;
  return rule.from.some((peer) => peer.podSelector !== undefined && peer.namespaceSelector === undefined && peer.ipBlock === undefined
    && selects(peer.podSelector, client.labels));
}

/** Whether `client` (null: any source, e.g. Prometheus elsewhere) may connect to `server` on container port `port`. */
export function ingressAllowed(objs: readonly K8sObject[], client: Workload | null, server: Workload, port: number): boolean {
  const policies = ingressPolicies(objs, server);
  if (policies.length === 0) return true;
  return policies.some((p) => ((p.spec.ingress ?? []) as IngressRule[]).some((r) => portAllowed(r, server, port) && peerAllows(r, client)));
}

/**
 * Volumes of emulated pods as folders under one root:
 *   - ConfigMap and Secret volumes: written once per object (every pod that
 *     mounts one sees the same folder), in the kubelet's atomic-writer layout
 *     (`..<timestamp>/KEY` with the volume's mode, `..data` → it, `KEY` →
 *     `..data/KEY`); text that names the volume's own mount paths has them
 *     rewritten to the folder (k8s-rewrite.ts, recorded);
 *   - emptyDir: a fresh folder per pod (kept across container restarts);
 *   - a StatefulSet's volumeClaimTemplates: one folder per claim
 *     (`<template>-<pod>`), kept across pod deletion and scale-down, as the
 *     default retention policy keeps the PersistentVolumeClaim.
 * Each folder is registered with the volume it stands for, so a test can
 * tell which pod may name which path (`ownerOf`). Not emulated: sizeLimit,
 * storage requests, access modes, fsGroup ownership, readOnly.
 */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { ofKind, UnsupportedSpecError, type ConfigMap, type Container, type KeyToPath, type Secret, type StatefulSet } from './k8s-manifest.js';
import { rewriteMountPaths, type MountPoint, type Rewrite } from './k8s-rewrite.js';
import type { K8sObject } from './kubectl.js';

export interface ProjectedSource {
  kind: 'configMap' | 'secret';
  name: string;
  defaultMode: number;
  items?: KeyToPath[];
}

export class VolumeStore {
  readonly rewrites: Rewrite[] = [];
  private readonly projected = new Map<string, string>();
  private readonly owners: Array<{ hostPath: string; volume: string }> = [];

  constructor(readonly root: string) {
    mkdirSync(root, { recursive: true });
  }

  /** The folder of a ConfigMap or Secret volume, written on first use. `mountPaths`: where pods mount it. */
  projectedVolume(src: ProjectedSource, object: ConfigMap | Secret | undefined, mountPaths: readonly string[]): string {
    const id = `${src.kind}/${src.name}/${src.defaultMode.toString(8)}/${JSON.stringify(src.items ?? null)}`;
    const done = this.projected.get(id);
    if (done !== undefined) return done;
    if (object === undefined) throw new Error(`${src.kind} ${src.name} not found: the kubelet would leave the pod in ContainerCreating (MountVolume.SetUp failed)`);
    const hostPath = join(this.root, `${src.kind}-${src.name}-${this.projected.size}`);
    const files = this.selectFiles(src, filesOf(object));
    this.writeAtomic(hostPath, files, src, mountPaths);
    this.projected.set(id, hostPath);
    this.owners.push({ hostPath, volume: `${src.kind}/${src.name}` });
    return hostPath;
  }

  emptyDir(podDir: string, podId: string, name: string): string {
    const hostPath = join(podDir, 'volumes', name);
    mkdirSync(hostPath, { recursive: true });
    this.owners.push({ hostPath, volume: `emptyDir/${podId}/${name}` });
    return hostPath;
  }

  /** The claim's folder: the same one for every incarnation of the pod. */
  claim(claimName: string): string {
    const hostPath = join(this.root, `pvc-${claimName}`);
    if (!this.owners.some((o) => o.hostPath === hostPath)) {
      mkdirSync(hostPath, { recursive: true });
      this.owners.push({ hostPath, volume: `pvc/${claimName}` });
    }
    return hostPath;
  }

  /** Registers a folder that stands for something else (a pod's working directory). */
  own(hostPath: string, volume: string): void {
    this.owners.push({ hostPath, volume });
  }

  /** The volume a host path lies in (the deepest registered folder), or undefined. */
  ownerOf(path: string): string | undefined {
    let best: { hostPath: string; volume: string } | undefined;
    for (const o of this.owners) {
      if ((path === o.hostPath || path.startsWith(o.hostPath + sep)) && (best === undefined || o.hostPath.length > best.hostPath.length)) best = o;
    }
    return best?.volume;
  }

  private selectFiles(src: ProjectedSource, all: Map<string, Buffer>): Array<{ path: string; data: Buffer; mode: number }> {
    if (src.items === undefined) return [...all].map(([path, data]) => ({ path, data, mode: src.defaultMode }));
    return src.items.map((it) => {
      const data = all.get(it.key);
      if (data === undefined) throw new Error(`${src.kind} ${src.name} has no key ${it.key}`);
      return { path: it.path, data, mode: it.mode ?? src.defaultMode };
    });
  }

  private writeAtomic(hostPath: string, files: Array<{ path: string; data: Buffer; mode: number }>, src: ProjectedSource, mountPaths: readonly string[]): void {
    // As the kubelet's atomic writer names it: ..2006_01_02_15_04_05.<nanoseconds>.
    const now = new Date().toISOString();
    const stamp = `..${now.slice(0, 19).replace(/[-:T]/g, '_')}.${now.slice(20, 23)}000000`;
    const dataDir = join(hostPath, stamp);
    mkdirSync(dataDir, { recursive: true });
    const mounts = mountPaths.map((mountPath) => ({ mountPath, hostPath }));
    const tops = new Set<string>();
    for (const f of files) {
      const target = join(dataDir, f.path);
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(target, this.rewriteText(f.data, `file ${src.kind}/${src.name}/${f.path}`, mounts), { mode: f.mode });
      tops.add(f.path.split('/')[0]!);
    }
    symlinkSync(stamp, join(hostPath, '..data'));
    for (const top of tops) symlinkSync(join('..data', top), join(hostPath, top));
  }

  /** Text naming the volume's own mount paths gets them rewritten; binary data is written as is. */
  private rewriteText(data: Buffer, field: string, mounts: ReadonlyArray<{ mountPath: string; hostPath: string }>): Buffer {
    const text = data.toString('utf8');
    if (text.includes('\0') || !Buffer.from(text, 'utf8').equals(data)) return data;
    return Buffer.from(rewriteMountPaths(text, field, mounts, this.rewrites), 'utf8');
  }
}

function filesOf(object: ConfigMap | Secret): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  if (object.kind === 'ConfigMap') {
    for (const [k, v] of Object.entries(object.data ?? {})) out.set(k, Buffer.from(v, 'utf8'));
    for (const [k, v] of Object.entries(object.binaryData ?? {})) out.set(k, Buffer.from(v, 'base64'));
  } else {
    for (const [k, v] of Object.entries(object.data ?? {})) out.set(k, Buffer.from(v, 'base64'));
    for (const [k, v] of Object.entries(object.stringData ?? {})) out.set(k, Buffer.from(v, 'utf8'));
  }
  return out;
}

export interface PodVolumeInput {
  store: VolumeStore;
  objects: readonly K8sObject[];
  statefulSets: readonly StatefulSet[];
  sts: StatefulSet;
  pod: string;
  /** `<pod>.<incarnation>`: emptyDirs belong to one incarnation. */
  podId: string;
  podDir: string;
  container: Container;
}

/** The container's mounts as folders, and the ids of the volumes it mounts (for `ownerOf`). */
export function mountPodVolumes(i: PodVolumeInput): { mounts: MountPoint[]; mounted: Set<string> } {
  const volumes = i.sts.spec.template.spec.volumes ?? [];
  const claims = new Set((i.sts.spec.volumeClaimTemplates ?? []).map((t) => t.metadata.name));
  const mounts: MountPoint[] = [];
  const mounted = new Set<string>();
  for (const m of i.container.volumeMounts ?? []) {
    if (m.subPath !== undefined) throw new UnsupportedSpecError(`${i.pod}: volumeMount subPath is not emulated`);
    const v = volumes.find((x) => x.name === m.name);
    let hostPath: string;
    let volume: string;
    if (v === undefined && claims.has(m.name)) {
      volume = `pvc/${m.name}-${i.pod}`;
      hostPath = i.store.claim(`${m.name}-${i.pod}`);
    } else if (v?.emptyDir !== undefined) {
      volume = `emptyDir/${i.podId}/${v.name}`;
      hostPath = i.store.emptyDir(i.podDir, i.podId, v.name);
    } else if (v?.configMap !== undefined || v?.secret !== undefined) {
      const src: ProjectedSource = v.configMap !== undefined
        ? { kind: 'configMap', name: v.configMap.name, defaultMode: v.configMap.defaultMode ?? 0o644, ...(v.configMap.items && { items: v.configMap.items }) }
        : { kind: 'secret', name: v.secret!.secretName, defaultMode: v.secret!.defaultMode ?? 0o644, ...(v.secret!.items && { items: v.secret!.items }) };
      const object = ofKind<ConfigMap | Secret>(i.objects, src.kind === 'configMap' ? 'ConfigMap' : 'Secret').find((x) => x.metadata.name === src.name);
      volume = `${src.kind}/${src.name}`;
      hostPath = i.store.projectedVolume(src, object, mountPathsOf(i.statefulSets, src.kind, src.name));
    } else if (v?.persistentVolumeClaim !== undefined) {
      volume = `pvc/${v.persistentVolumeClaim.claimName}`;
      hostPath = i.store.claim(v.persistentVolumeClaim.claimName);
    } else {
      throw new UnsupportedSpecError(`${i.pod}: volume ${m.name} is absent or of a kind not emulated`);
    }
    mounts.push({ mountPath: m.mountPath, hostPath });
    mounted.add(volume);
  }
  return { mounts, mounted };
}

/** Every mountPath, in any StatefulSet, of the ConfigMap or Secret `name`. */
function mountPathsOf(statefulSets: readonly StatefulSet[], kind: 'configMap' | 'secret', name: string): string[] {
  const out = new Set<string>();
  for (const sts of statefulSets) {
    const spec = sts.spec.template.spec;
    const vols = (spec.volumes ?? []).filter((v) => (kind === 'configMap' ? v.configMap?.name : v.secret?.secretName) === name).map((v) => v.name);
    for (const c of spec.containers) for (const m of c.volumeMounts ?? []) if (vols.includes(m.name)) out.add(m.mountPath);
  }
  return [...out];
}

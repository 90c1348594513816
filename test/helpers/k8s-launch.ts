/**
 * What one container start of an emulated pod runs, from its spec: the env
 * (service links, then the spec's entries with fieldRef and `$(VAR)`
 * expansion), command and args expanded as the kubelet does
 * (k8s-expansion.ts), then rewritten for the shared host (k8s-rewrite.ts:
 * mount paths, ports, Service names), the image's stand-in executable, and
 * the variables the runtime adds (PATH, HOSTNAME, HOME, TMPDIR for a /tmp
 * mount). The `Launch` record keeps spec and result side by side.
 */
import { containerEnv, expand, type PodFields } from './k8s-expansion.js';
import type { ImageStandIn } from './k8s-images.js';
import { UnsupportedSpecError, type Container } from './k8s-manifest.js';
import { rewriteValue, type MountPoint, type Rewrite, type RewriteContext } from './k8s-rewrite.js';

export interface EnvEntry {
  name: string;
  value: string;
}

/** One container start: the spec (after `$(VAR)` expansion) and what ran. */
export interface Launch {
  pod: string;
  podId: string;
  restart: number;
  image: string;
  spec: { command?: string[]; args: string[]; env: EnvEntry[] };
  actual: { command?: string[]; args: string[]; env: EnvEntry[] };
  executable: string;
  argv: string[];
  cwd: string;
  rewrites: Rewrite[];
  /** Added by the runtime and the kubelet, not in the spec: service links, HOSTNAME, PATH, HOME, TMPDIR (the /tmp mount). */
  runtimeEnv: Record<string, string>;
}

export interface LaunchInput {
  pod: { name: string; id: string; restarts: number; ports: ReadonlyMap<number, number> };
  fields: PodFields;
  container: Container;
  image: ImageStandIn;
  serviceLinks: Readonly<Record<string, string>>;
  mounts: readonly MountPoint[];
  cwd: string;
  resolve: RewriteContext['resolve'];
}

export function planLaunch(i: LaunchInput): Launch {
  const c = i.container;
  const specEnv = containerEnv(c.env ?? [], i.serviceLinks, i.fields);
  const defined = new Map([...Object.entries(i.serviceLinks), ...specEnv.map((e) => [e.name, e.value] as const)]);
  const lookup = (n: string): string | undefined => defined.get(n);
  const specCommand = c.command?.map((s) => expand(s, lookup));
  const specArgs = (c.args ?? []).map((s) => expand(s, lookup));
  const rewrites: Rewrite[] = [];
  const ctx: RewriteContext = { mounts: i.mounts, ownPorts: i.pod.ports, resolve: i.resolve };
  const command = specCommand?.map((s, n) => rewriteValue(s, `command[${n}]`, ctx, rewrites));
  const args = specArgs.map((s, n) => rewriteValue(s, `args[${n}]`, ctx, rewrites));
  const env = specEnv.map((e) => ({ name: e.name, value: rewriteValue(e.value, `env ${e.name}`, ctx, rewrites) }));
  const tmp = i.mounts.find((m) => m.mountPath === '/tmp');
  const runtimeEnv: Record<string, string> = {
    ...i.serviceLinks,
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOSTNAME: i.pod.name,
    HOME: i.image.home,
    ...(tmp !== undefined && { TMPDIR: tmp.hostPath }),
  };
  let executable: string;
  let argv: string[];
  if (command !== undefined && command.length > 0) {
    executable = i.image.executable(command[0]!);
    argv = [...command.slice(1), ...args];
  } else {
    if (i.image.entrypoint === undefined) throw new UnsupportedSpecError(`${i.pod.name}: image ${c.image} without a command: its ENTRYPOINT is not emulated`);
    executable = i.image.entrypoint[0]!;
    argv = [...i.image.entrypoint.slice(1), ...args];
  }
  return {
    pod: i.pod.name, podId: i.pod.id, restart: i.pod.restarts, image: c.image,
    spec: { ...(specCommand && { command: specCommand }), args: specArgs, env: specEnv },
    actual: { ...(command && { command }), args, env },
    executable, argv, cwd: i.cwd, rewrites, runtimeEnv,
  };
}

/** The process environment of a launch: the runtime's variables, then the spec's (which win). */
export function launchEnv(l: Launch): Record<string, string> {
  return { ...l.runtimeEnv, ...Object.fromEntries(l.actual.env.map((e) => [e.name, e.value])) };
}

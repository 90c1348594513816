/**
 * The only changes the pod emulator makes to what a manifest says, since every
 * pod shares one host here: a path into a volume mount becomes the folder that
 * stands for the volume, a container port becomes the free local port mapped
 * to it (`HOST:PORT` with a wildcard or loopback host, a bare `PORT`, or
 * `--flag=PORT`), and a Service or pod DNS name with its port becomes
 * 127.0.0.1 and the local port that reaches it. Every change is recorded;
 * `undoRewrites` turns the result back into the spec's text from the records
 * alone, so a test can prove nothing else was changed.
 */

export type RewriteKind = 'mount' | 'port' | 'service';

export interface Rewrite {
  /** Where: `args[3]`, `env BERTFLEET_TLS_CA`, `file bertfleet-run-x/run-config.json`. */
  field: string;
  kind: RewriteKind;
  from: string;
  to: string;
}

export interface MountPoint {
  mountPath: string;
  hostPath: string;
}

export interface RewriteContext {
  mounts: readonly MountPoint[];
  /** containerPort → local port, for this pod's own listeners. */
  ownPorts: ReadonlyMap<number, number>;
  /** A DNS name and port another pod dials → the local address reaching it; undefined when unknown. */
  resolve(host: string, port: number): { port: number; what: string } | undefined;
}

const OWN_HOSTS = new Set(['0.0.0.0', '127.0.0.1', 'localhost', '::', '[::]', '[::1]', '::1']);
const HOST_PORT = /(^|[^A-Za-z0-9.\-\]])(\[[0-9a-fA-F:]*\]|[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?):(\d{1,5})(?![0-9])/g;
const BARE_PORT = /^(-{1,2}[A-Za-z0-9-]+=)?(\d{1,5})$/;

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** `value` with its host:port pairs, bare ports and mount paths replaced; each change appended to `out`. */
export function rewriteValue(value: string, field: string, ctx: RewriteContext, out: Rewrite[]): string {
  let v = value.replace(HOST_PORT, (whole, lead: string, host: string, portText: string) => {
    const port = Number(portText);
    const own = OWN_HOSTS.has(host) ? ctx.ownPorts.get(port) : undefined;
    if (own !== undefined) {
      out.push({ field, kind: 'port', from: `${host}:${port}`, to: `${host}:${own}` });
      return `${lead}${host}:${own}`;
    }
    const target = OWN_HOSTS.has(host) ? undefined : ctx.resolve(host, port);
    if (target === undefined) return whole;
    out.push({ field, kind: 'service', from: `${host}:${port}`, to: `127.0.0.1:${target.port}` });
    return `${lead}127.0.0.1:${target.port}`;
  });
  const bare = BARE_PORT.exec(v);
  if (bare) {
    const mapped = ctx.ownPorts.get(Number(bare[2]));
    if (mapped !== undefined) {
      const to = `${bare[1] ?? ''}${mapped}`;
      out.push({ field, kind: 'port', from: v, to });
      v = to;
    }
  }
  return rewriteMountPaths(v, field, ctx.mounts, out);
}

/** Paths into a mount (at a path boundary) → the mount's host folder, in one pass (longest mount path first). */
export function rewriteMountPaths(value: string, field: string, mounts: readonly MountPoint[], out: Rewrite[]): string {
  if (mounts.length === 0) return value;
  const byLength = [...mounts].sort((a, b) => b.mountPath.length - a.mountPath.length);
  const host = new Map(byLength.map((m) => [m.mountPath, m.hostPath]));
  const pattern = new RegExp(`(^|[=:,\\s"'])(${byLength.map((m) => escapeRegExp(m.mountPath)).join('|')})(?=/|$|[\\s"',:;])`, 'g');
  return value.replace(pattern, (_whole, lead: string, mountPath: string) => {
    const to = host.get(mountPath)!;
    out.push({ field, kind: 'mount', from: mountPath, to });
    return `${lead}${to}`;
  });
}

/**
 * The spec's text back from a rewritten value, using only the records: each
 * recorded `to` (longest first) is replaced by its `from`. Equal to the spec
 * only when the records account for every change.
 */
export function undoRewrites(value: string, records: readonly Rewrite[]): string {
  const pairs = [...new Map(records.map((r) => [r.to, r.from])).entries()].sort((a, b) => b[0].length - a[0].length);
  if (pairs.length === 0) return value;
  const pattern = new RegExp(pairs.map(([to]) => escapeRegExp(to)).join('|'), 'g');
  const back = new Map(pairs);
  return value.replace(pattern, (to) => back.get(to)!);
}

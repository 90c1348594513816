/**
 * `OUTPUT/cluster.json`: where a running `bertfleet cluster` can be joined —
 * `{coordinator: "HOST:PORT", nats: "nats://HOST:PORT", pid, started_at_ms,
 * health: {coordinator: URL, workers: {ID: URL}}}` (the plain-HTTP health
 * ports: /healthz, /readyz, /metrics),
 * pid and start time being the cluster's own, and unless the cluster runs
 * `--insecure`, `pki_dir` (its throwaway PKI: a private folder holding the CA
 * key, so whoever can read it can add workers) and `nats_credentials` (the
 * workers' NATS credentials file in it). Only paths: the file itself holds
 * no secret. The cluster writes it
 * (atomically) once its coordinator listens and removes it when it ends;
 * `bertfleet worker --join OUTPUT` reads it. A cluster killed outright leaves
 * it behind, naming a pid that is gone: joining that is refused. The
 * addresses are loopback ones, so a joiner runs on the cluster's host.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { InputError } from '../shared/errors.js';
import { writeFileAtomic } from '../shared/fs-atomic.js';
import { isPidAlive } from '../shared/owner-identity.js';

export const CLUSTER_FILE = 'cluster.json';

const ClusterFileSchema = z.strictObject({
  coordinator: z.string().regex(/^(\[[^\]]+\]|[^:\s]+):\d+$/, 'HOST:PORT'),
  nats: z.string().regex(/^nats:\/\/\S+$/, 'nats://HOST:PORT'),
  pid: z.number().int().positive(),
  started_at_ms: z.number().int().nonnegative(),
  pki_dir: z.string().min(1).optional(),
  nats_credentials: z.string().min(1).optional(),
  /** The health ports (/healthz, /readyz, /metrics) of the coordinator and of each worker the cluster started, as URLs. */
  health: z.strictObject({
    coordinator: z.string().regex(/^http:\/\/\S+$/, 'http://HOST:PORT'),
    workers: z.record(z.string(), z.string().regex(/^http:\/\/\S+$/, 'http://HOST:PORT')),
  }).optional(),
});
export type ClusterFile = z.infer<typeof ClusterFileSchema>;

export function clusterFilePath(outputDir: string): string {
  return join(outputDir, CLUSTER_FILE);
}

export function writeClusterFile(outputDir: string, value: ClusterFile): void {
  writeFileAtomic(clusterFilePath(outputDir), `${JSON.stringify(ClusterFileSchema.parse(value), null, 2)}\n`);
}

/** The cluster file of `outputDir`; InputError naming the file when it is missing or malformed. */
export function readClusterFile(outputDir: string): ClusterFile {
  const path = clusterFilePath(outputDir);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new InputError(`--join: cannot read ${path}`, { cause: err });
    throw new InputError(`--join ${outputDir}: ${path} does not exist; is a \`bertfleet cluster --output ${outputDir}\` running (it writes the file once its coordinator listens)?`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new InputError(`--join: ${path} is not JSON`, { cause: err });
  }
  const parsed = ClusterFileSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new InputError(`--join: ${path} is not a cluster file ({coordinator, nats, pid, started_at_ms, pki_dir?, nats_credentials?, health?} expected): ${problems}`);
  }
  return parsed.data;
}

/** The cluster file of a cluster still running on this host; InputError otherwise. */
export function readLiveClusterFile(outputDir: string, isAlive: (pid: number) => boolean = isPidAlive): ClusterFile {
  const file = readClusterFile(outputDir);
  if (!isAlive(file.pid)) {
    throw new InputError(`--join: ${clusterFilePath(outputDir)} names bertfleet cluster pid ${file.pid}, which no longer runs; start the cluster again (with --resume) and join it then`);
  }
  return file;
}

/** Removes the cluster file if it still names the cluster with `pid` (a newer cluster's is left alone). */
export function removeClusterFile(outputDir: string, pid: number): void {
  let current: ClusterFile;
  try {
    current = readClusterFile(outputDir);
  } catch {
    // Absent or not ours to judge: leave whatever is there.
    return;
  }
  if (current.pid === pid) rmSync(clusterFilePath(outputDir), { force: true });
}

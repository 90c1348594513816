/**
 * Stand-ins for the images the manifests name, for the pod emulator: which
 * local executable runs for the image's ENTRYPOINT or a spec's `command`,
 * the image's working directory and its user's HOME. `bertfleet` is this
 * repo's bin/bertfleet (the Dockerfile's ENTRYPOINT
 * /opt/bertfleet/bin/bertfleet, WORKDIR /opt/bertfleet); `nats` is the host's
 * nats-server (Debian's 2.9 here, not the image's 2.10), run only through the
 * spec's `command`. A pod's working directory is a folder of its own, with
 * the mounts under it as symlinks to their folders; nothing else of the
 * image's filesystem is reproduced.
 */
import { accessSync, constants, mkdirSync, symlinkSync } from 'node:fs';
import { delimiter, dirname, join, relative } from 'node:path';
import { BIN } from './cli.js';
import { UnsupportedSpecError } from './k8s-manifest.js';
import type { MountPoint } from './k8s-rewrite.js';

export interface ImageStandIn {
  /** ENTRYPOINT as a local command; absent when not reproduced (the spec must then give `command`). */
  entrypoint?: string[];
  workingDir: string;
  /** HOME of the image's user. */
  home: string;
  /** A spec's `command[0]` → the local executable. */
  executable(name: string): string;
}

function onPath(name: string): string {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // Not in this folder: try the next.
    }
  }
  throw new Error(`${name} is not on PATH (Debian: apt-get install ${name})`);
}

export const IMAGES: Readonly<Record<string, ImageStandIn>> = {
  // Dockerfile: WORKDIR /opt/bertfleet, ENTRYPOINT ["/opt/bertfleet/bin/bertfleet"], USER 10001 (home /nonexistent).
  bertfleet: {
    entrypoint: [BIN],
    workingDir: '/opt/bertfleet',
    home: '/nonexistent',
    executable: (n) => {
      if (n === '/opt/bertfleet/bin/bertfleet') return BIN;
      throw new UnsupportedSpecError(`image bertfleet: command ${n} is not emulated`);
    },
  },
  // The official nats image; its ENTRYPOINT (docker-entrypoint.sh) is not reproduced.
  nats: {
    workingDir: '/',
    home: '/',
    executable: (n) => {
      if (n === 'nats-server') return onPath('nats-server');
      throw new UnsupportedSpecError(`image nats: command ${n} is not emulated`);
    },
  },
};

/** `registry.example.com/bertfleet:0.1.0@sha256:…` → `bertfleet`. */
export function imageName(image: string): string {
  const noDigest = image.split('@')[0]!;
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  return (colon > slash ? noDigest.slice(0, colon) : noDigest).slice(slash + 1);
}

/**
 * The folder standing for the container's working directory, with every
 * mount under it as a symlink to the mount's folder (relative paths such as
 * data.cacheDir's `.cache/bertfleet` then land in the volume).
 */
export function makeWorkdir(podDir: string, workingDir: string, mounts: readonly MountPoint[]): string {
  const cwd = join(podDir, 'workdir');
  mkdirSync(cwd, { recursive: true });
  const base = workingDir.endsWith('/') ? workingDir : `${workingDir}/`;
  for (const m of mounts) {
    if (!m.mountPath.startsWith(base)) continue;
    const link = join(cwd, ...relative(workingDir, m.mountPath).split('/'));
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(m.hostPath, link);
  }
  return cwd;
}

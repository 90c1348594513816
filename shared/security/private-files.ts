/**
 * Secrets on disk: a private temporary folder (mode 0700, made by mkdtemp
 * under the OS temp dir) and files only their owner may read (mode 0600),
 * written to a fresh name then renamed so a reader never sees half a key and
 * an existing file's looser mode is never kept. `checkPrivateFile` refuses a
 * secret that others may read.
 *
 * Knows nothing of what the files hold.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, mkdtempSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../errors.js';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** A new folder `<parent>/<prefix>XXXXXX` with mode 0700. */
export function makePrivateDir(prefix: string, parent: string = tmpdir()): string {
  const dir = mkdtempSync(join(parent, prefix));
  chmodSync(dir, PRIVATE_DIR_MODE);
  return dir;
}

/** Writes `path` with mode 0600, replacing it atomically if it exists. */
export function writePrivateFile(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fd = openSync(tmp, 'wx', PRIVATE_FILE_MODE);
  try {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

/**
 * ConfigError when `path` (after symlinks) may be read or written by others
 * than its owner and group: a secret must be mode 0600, 0640, 0400 or 0440
 * (Kubernetes Secret volumes: `defaultMode: 0440` with the pod's `fsGroup`, so a non-root user reads them).
 */
export function checkPrivateFile(path: string, what: string): void {
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o007) !== 0) {
    throw new ConfigError([`${what} ${path}: expected mode 0600 (no access for others), got 0${mode.toString(8)}; run chmod 600 ${path}`]);
  }
}

/**
 * Crash-safe file writes: data goes to `<name>.tmp-<pid>-<random>` beside the
 * target, is fsync'ed, then renamed over the target (rename is atomic within a
 * directory), and the directory is fsync'ed so the rename itself survives a
 * power loss. A crash leaves at most a stray tmp file, which readers never
 * open (they open the target name) and `removeStaleTmpFiles` clears.
 * Knows nothing of what the bytes mean.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fsyncSync, openSync, readdirSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const TMP_MARK = '.tmp-';

export type FileData = string | ArrayBufferView | readonly ArrayBufferView[];

/** The bytes of `data`, chunk by chunk (no copy). */
export function chunksOf(data: FileData): Uint8Array[] {
  const chunks = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : Array.isArray(data) ? data : [data as ArrayBufferView];
  return chunks.map((c) => new Uint8Array(c.buffer, c.byteOffset, c.byteLength));
}

/** Writes `path` (created or truncated) and fsyncs it; on failure the partial file is removed. No rename. */
export function writeFileSynced(path: string, data: FileData): void {
  const fd = openSync(path, 'w');
  try {
    for (const bytes of chunksOf(data)) {
      for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off);
    }
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(path, { force: true });
    throw err;
  }
  closeSync(fd);
}

/**
 * fsyncs a directory, so the names created, renamed or removed in it are on
 * disk. Windows cannot open a directory for fsync (and its renames are
 * journalled by NTFS), so it is a no-op there.
 */
export function fsyncDir(dir: string): void {
  if (process.platform === 'win32') return;
  const fd = openSync(dir, constants.O_RDONLY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function writeFileAtomic(path: string, data: FileData): void {
  const tmp = `${path}${TMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}`;
  writeFileSynced(tmp, data);
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(dirname(path));
}

/**
 * Removes tmp files in `dir` older than `staleAfterMs`: left by writers that died.
 * Younger ones may belong to a live writer building the same cache, so they stay.
 */
export function removeStaleTmpFiles(dir: string, staleAfterMs: number, nowMs = Date.now()): number {
  let removed = 0;
  for (const name of readdirSync(dir)) {
    if (!name.includes(TMP_MARK)) continue;
    const path = join(dir, name);
    const mtimeMs = statSync(path, { throwIfNoEntry: false })?.mtimeMs;
    if (mtimeMs !== undefined && nowMs - mtimeMs > staleAfterMs) {
      rmSync(path, { force: true });
      removed++;
    }
  }
  return removed;
}

/**
 * Crash-safe file writes: data goes to `<name>.tmp-<pid>-<random>` beside the
 * target, is fsync'ed, then renamed over the target (rename is atomic within a
 * directory). A crash leaves at most a stray tmp file, which readers ignore
 * because they only open names listed in a manifest written the same way, last.
 * Knows nothing of what the bytes mean.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readdirSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export const TMP_MARK = '.tmp-';

export function writeFileAtomic(path: string, data: string | ArrayBufferView | readonly ArrayBufferView[]): void {
  const chunks = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const tmp = `${path}${TMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}`;
  const fd = openSync(tmp, 'w');
  try {
    for (const chunk of Array.isArray(chunks) ? chunks : [chunks]) {
      const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off);
    }
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
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

/**
 * One coordinator per output folder: `OUTPUT/.bertfleet.lock`, created with
 * O_EXCL before anything else is written there, holding `{owner_id,
 * hostname, pid, run_id, locked_at_ms}`. A lock whose holder is gone (same
 * host, pid dead; or this very pid under another owner id, as a restarted
 * container has) is stale and taken over with a warning; a live one refuses
 * with OutputLockedError naming the holder and the folder. The run's lease
 * in NATS (shared/control/lease.ts) covers the same run id from another
 * machine; this lock covers the folder, whatever the run.
 *
 * Also the coordinator's identity, shared by the lock, the lease and the run
 * state's `coordinator_id`. Knows nothing of NATS or of the run itself.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmdirSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { BertfleetError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { describeOwner, holderIsGone, isPidAlive, type OwnerIdentity } from '../shared/owner-identity.js';

export const LOCK_FILE = '.bertfleet.lock';
/** A lock file this old that still does not parse was left half-written by a crash. */
const UNREADABLE_STALE_MS = 10_000;

const LockSchema = z.strictObject({
  owner_id: z.string().min(1),
  hostname: z.string(),
  pid: z.number().int().nonnegative(),
  run_id: z.string().min(1),
  locked_at_ms: z.number().int().nonnegative(),
});
export type LockValue = z.infer<typeof LockSchema>;

/** This process as a coordinator instance: a fresh owner id per call. */
export function coordinatorIdentity(): OwnerIdentity {
  const host = hostname();
  return { owner_id: `${host}-${process.pid}-${randomBytes(3).toString('hex')}`, hostname: host, pid: process.pid };
}

/** The output folder is used by another live coordinator. */
export class OutputLockedError extends BertfleetError {
  override readonly name = 'OutputLockedError';
  constructor(readonly dir: string, readonly holder: LockValue) {
    super(
      `output folder ${dir} is in use by ${describeOwner(holder)}, run ${holder.run_id}, since ${new Date(holder.locked_at_ms).toISOString()}: ` +
        `stop that coordinator first, or choose another --output; if it no longer runs (its host is gone), delete ${join(dir, LOCK_FILE)} (nothing was changed)`,
    );
  }
}

export interface OutputLockOptions {
  owner: OwnerIdentity;
  runId: string;
  log: Logger;
  isAlive?: (pid: number) => boolean;
}

export class OutputLock {
  private released = false;

  private constructor(
    readonly dir: string,
    readonly path: string,
    private readonly owner: OwnerIdentity,
    private readonly createdDir: boolean,
    private readonly log: Logger,
  ) {}

  /** Locks `dir` (creating it if absent); OutputLockedError if a live coordinator holds it. */
  static acquire(dir: string, o: OutputLockOptions): OutputLock {
    const log = o.log.child({ component: 'output-lock', dir });
    const createdDir = !existsSync(dir);
    mkdirSync(dir, { recursive: true });
    const path = join(dir, LOCK_FILE);
    const value: LockValue = { ...o.owner, run_id: o.runId, locked_at_ms: Date.now() };
    const alive = o.isAlive ?? isPidAlive;
    for (;;) {
      if (tryCreate(path, value)) break;
      const holder = readLock(path);
      if (holder === 'absent') continue;
      if (holder === 'unreadable') {
        if (Date.now() - mtimeMs(path) < UNREADABLE_STALE_MS) throw new BertfleetError(`output lock ${path} is being written by another process; try again`);
        removeIfUnchanged(path, null, o.owner, log);
        continue;
      }
      if (!holderIsGone(holder, o.owner, alive)) throw new OutputLockedError(dir, holder);
      log.warn({ holderId: holder.owner_id, hostname: holder.hostname, pid: holder.pid, runId: holder.run_id }, 'stale output lock taken over');
      removeIfUnchanged(path, holder.owner_id, o.owner, log);
    }
    log.info({ ownerId: o.owner.owner_id, runId: o.runId }, 'output folder locked');
    return new OutputLock(dir, path, o.owner, createdDir, log);
  }

  /** Removes the lock if it is still ours, and the folder if the lock made it and it stayed empty. Never throws. */
  release(): void {
    if (this.released) return;
    this.released = true;
    try {
      const holder = readLock(this.path);
      if (typeof holder === 'object' && holder.owner_id === this.owner.owner_id) {
        unlinkSync(this.path);
        this.log.info('output folder unlocked');
      } else {
        this.log.warn({ holder }, 'output lock no longer ours; left in place');
      }
      if (this.createdDir && readdirSync(this.dir).length === 0) rmdirSync(this.dir);
    } catch (err) {
      this.log.warn({ err }, 'output lock not released');
    }
  }
}

/** Throws OutputLockedError if a live coordinator holds `dir`; creates and changes nothing (a check for the CLI, before it reads the folder). */
export function refuseIfOutputLocked(dir: string, isAlive: (pid: number) => boolean = isPidAlive): void {
  const holder = readLock(join(dir, LOCK_FILE));
  if (typeof holder !== 'object') return;
  const self: OwnerIdentity = { owner_id: '', hostname: hostname(), pid: process.pid };
  if (!holderIsGone(holder, self, isAlive)) throw new OutputLockedError(dir, holder);
}

function tryCreate(path: string, value: LockValue): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    writeSync(fd, `${JSON.stringify(value)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return true;
}

function readLock(path: string): LockValue | 'absent' | 'unreadable' {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw err;
  }
  try {
    const parsed = LockSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : 'unreadable';
  } catch {
    // Not JSON (empty or cut short by a crash): the caller judges by the file's age.
    return 'unreadable';
  }
}

function mtimeMs(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    // Gone meanwhile: as good as stale; the next create decides.
    return 0;
  }
}

/**
 * Moves the stale lock aside under a name of our own (only one taker can move
 * a given file), checks it is the one judged stale (`staleOwner`, null for an
 * unreadable one), and deletes it; a live lock moved by mistake (it replaced
 * the stale one meanwhile) is put back.
 */
function removeIfUnchanged(path: string, staleOwner: string | null, self: OwnerIdentity, log: Logger): void {
  const aside = `${path}.stale-${self.owner_id}`;
  try {
    renameSync(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const moved = readLock(aside);
  const ownerOfMoved = typeof moved === 'object' ? moved.owner_id : null;
  if (ownerOfMoved !== staleOwner) {
    try {
      linkSync(aside, path);
    } catch (err) {
      log.warn({ err, holder: moved }, 'a live output lock was moved aside and could not be put back');
    }
  }
  unlinkSync(aside);
}

/**
 * A `bin/bertfleet` process started by the soak: its JSON log lines (stderr)
 * are kept in memory and appended to `<logDir>/<name>.log`, its stdout to
 * `<name>.out`. `waitFor(pattern, {from})` resolves with the first line at
 * index `from` or later that matches (so "after the fault" is expressible);
 * it rejects on a timeout or when the process exits first. Every child ever
 * started is listed in `allChildren` so the entry point can kill them all.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ChildOptions {
  bin: string;
  args: string[];
  cwd: string;
  logDir: string;
  env?: NodeJS.ProcessEnv;
}

export const allChildren = new Set<Child>();

export class Child {
  readonly lines: string[] = [];
  readonly exited: Promise<Exit>;
  readonly pid: number;
  /** The signal the soak itself sent, if any: an exit caused by it is expected. */
  sentSignal: NodeJS.Signals | null = null;
  exit: Exit | null = null;
  private readonly proc: ChildProcess;
  private readonly watchers = new Set<(line: string, index: number) => void>();
  private readonly log: WriteStream;

  constructor(readonly name: string, o: ChildOptions) {
    this.proc = spawn(o.bin, o.args, { cwd: o.cwd, env: { ...process.env, ...o.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.pid = this.proc.pid!;
    this.log = createWriteStream(join(o.logDir, `${name}.log`));
    this.proc.stdout!.pipe(createWriteStream(join(o.logDir, `${name}.out`)));
    createInterface({ input: this.proc.stderr! }).on('line', (line) => this.onLine(line));
    this.exited = new Promise((resolve) =>
      this.proc.once('close', (code, signal) => {
        this.exit = { code, signal };
        this.log.end();
        resolve(this.exit);
      }),
    );
    allChildren.add(this);
  }

  get running(): boolean {
    return this.exit === null;
  }

  kill(signal: NodeJS.Signals): void {
    if (!this.running) return;
    this.sentSignal = signal;
    this.proc.kill(signal);
  }

  /** Subscribes to every new line; returns the unsubscribe function. */
  onEachLine(f: (line: string, index: number) => void): () => void {
    this.watchers.add(f);
    return () => this.watchers.delete(f);
  }

  /** The first line at index >= `from` matching `pattern`. */
  waitFor(pattern: RegExp, opts: { from?: number; timeoutMs: number }): Promise<string> {
    const from = opts.from ?? 0;
    const seen = this.lines.slice(from).find((l) => pattern.test(l));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      let settled = false;
      const done = (err: Error | null, line?: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        unsubscribe();
        if (err) reject(err);
        else resolve(line!);
      };
      const unsubscribe = this.onEachLine((line) => {
        if (pattern.test(line)) done(null, line);
      });
      const timer = setTimeout(() => done(new Error(`${this.name}: no log line matching ${pattern} within ${opts.timeoutMs} ms`)), opts.timeoutMs);
      void this.exited.then((e) => done(new Error(`${this.name} exited (code ${e.code}, signal ${e.signal}) before a log line matching ${pattern}`)));
    });
  }

  private onLine(line: string): void {
    const index = this.lines.push(line) - 1;
    this.log.write(`${line}\n`);
    for (const w of [...this.watchers]) w(line, index);
  }
}

/** SIGKILLs every child still running (synchronous: usable from an exit handler). */
export function killAllChildren(): void {
  for (const c of allChildren) c.kill('SIGKILL');
}

/** The JSON object of a log line, or null for a line that is not JSON. */
export function fields(line: string): Record<string, unknown> | null {
  if (!line.startsWith('{')) return null;
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    // A partial or foreign line (a stack trace, say): not a log record.
    return null;
  }
}

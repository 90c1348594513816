/**
 * A `bin/bertfleet` child whose JSON log lines (stderr) a test can wait for:
 * `waitFor(pattern)` resolves with the first line matching it, seen before or
 * after the call; `exited` resolves with the exit code and signal. Any child
 * still running when the test process exits is SIGKILLed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { BIN } from './cli.js';

export interface LoggedProcess {
  proc: ChildProcess;
  pid: number;
  lines: string[];
  stdout: () => string;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

export function spawnBertfleet(args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; detached?: boolean }): LoggedProcess {
  const proc = spawn(BIN, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'], ...(opts.detached && { detached: true }) });
  live.add(proc);
  const lines: string[] = [];
  let out = '';
  const watchers = new Set<{ pattern: RegExp; resolve: (l: string) => void }>();
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  createInterface({ input: proc.stderr! }).on('line', (line) => {
    lines.push(line);
    for (const w of [...watchers]) {
      if (w.pattern.test(line)) {
        watchers.delete(w);
        w.resolve(line);
      }
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('close', (code, signal) => {
      live.delete(proc);
      resolve({ code, signal });
    }),
  );
  const waitFor = (pattern: RegExp, timeoutMs = 60_000): Promise<string> => {
    const seen = lines.find((l) => pattern.test(l));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w = { pattern, resolve: (l: string) => { clearTimeout(timer); resolve(l); } };
      const timer = setTimeout(() => {
        watchers.delete(w);
        reject(new Error(`no log line matching ${pattern} within ${timeoutMs} ms; last lines:\n${lines.slice(-15).join('\n')}`));
      }, timeoutMs);
      watchers.add(w);
      void exited.then(() => {
        if (!watchers.has(w)) return;
        watchers.delete(w);
        clearTimeout(timer);
        reject(new Error(`process exited before a log line matching ${pattern}; last lines:\n${lines.slice(-15).join('\n')}`));
      });
    });
  };
  return { proc, pid: proc.pid!, lines, stdout: () => out, waitFor, exited };
}

/** The JSON object of a log line. */
export function fields(line: string): Record<string, unknown> {
  return JSON.parse(line) as Record<string, unknown>;
}

/** Small probes shared by integration tests: a logger that keeps its lines, a dead pid, a promise's refusal. */
import { spawnSync } from 'node:child_process';
import { pino } from 'pino';
import type { Logger } from '../../shared/log.js';

/** A logger that keeps every line, to check what a component reported. */
export function capturingLogger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { log: pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) }), lines };
}

/** The pid of a process that has already exited. */
export function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '0']).pid!;
}

/** The rejection `p` ends with (it must reject). */
export async function refusal(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await p;
  } catch (err) {
    return err as { code?: string; message: string };
  }
  throw new Error('expected a refusal');
}

/**
 * Logging: pino, JSON to stdout by default. Only entry points build the root
 * logger (`createRootLogger`); everything else receives a `Logger` and makes
 * `log.child({component})`. The model never logs.
 */
import { pino, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

export interface RootLoggerOptions {
  service: string;
  level?: string;
  /** Extra bindings on every line, e.g. `{ workerId }`. */
  bindings?: Record<string, unknown>;
  /** Where lines go; default stdout (fd 1). Use 2 when stdout carries results. */
  fd?: 1 | 2;
}

export function createRootLogger(opts: RootLoggerOptions): Logger {
  const dest = pino.destination({ fd: opts.fd ?? 1, sync: true });
  return pino({ level: opts.level ?? 'info', base: { service: opts.service, ...opts.bindings } }, dest);
}

/** A logger that drops everything; for tests and library callers that pass none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

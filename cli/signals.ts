/**
 * Ctrl-C and SIGTERM for the long-running commands: the first signal aborts
 * `signal` (the command then shuts down in order and returns `exitCode()`,
 * 130 or 143); if shutdown takes longer than `graceMs`, or a second signal
 * comes, `onForce` runs (kill what is left) and the process exits at once.
 * Only entry points install process handlers; this is their shared helper.
 */
import { BertfleetError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';

/** The run was stopped by a signal. */
export class InterruptedError extends BertfleetError {
  override readonly name = 'InterruptedError';
  constructor(readonly signalName: NodeJS.Signals) {
    super(`interrupted by ${signalName}`);
  }
}

const CODES: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143 };

export interface SignalHandling {
  readonly signal: AbortSignal;
  exitCode(): number;
  dispose(): void;
}

export function installSignalHandlers(log: Logger, opts: { graceMs: number; onForce?: () => void }): SignalHandling {
  const ac = new AbortController();
  let received: NodeJS.Signals | null = null;
  const force = (): void => {
    opts.onForce?.();
    process.exit(CODES[received ?? 'SIGTERM'] ?? 1);
  };
  const handler = (sig: NodeJS.Signals): void => {
    if (received !== null) {
      log.warn({ signal: sig }, 'second signal; stopping now');
      force();
      return;
    }
    received = sig;
    log.warn({ signal: sig, graceMs: opts.graceMs }, 'signal received; shutting down');
    setTimeout(() => {
      log.warn({ graceMs: opts.graceMs }, 'shutdown took too long; forcing it');
      force();
    }, opts.graceMs).unref();
    ac.abort(new InterruptedError(sig));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    signal: ac.signal,
    exitCode: () => CODES[received ?? 'SIGTERM'] ?? 1,
    dispose: () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}

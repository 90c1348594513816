/**
 * Command-line parsing shared by the subcommands: node's `parseArgs` with
 * strict checking, plus typed readers that name the flag and the expected form
 * when a value is wrong (never a silent default).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BertfleetError } from '../shared/errors.js';

export class UsageError extends BertfleetError {
  override readonly name = 'UsageError';
}

export type Options = NonNullable<ParseArgsConfig['options']>;

export function parseFlags(argv: string[], options: Options, help: string): Record<string, string | boolean | undefined> | null {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${help}\n`);
    return null;
  }
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as Record<string, string | boolean | undefined>;
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n\n${help}`);
  }
}

export function intFlag(values: Record<string, unknown>, name: string, opts: { min?: number; max?: number } = {}): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || (opts.min !== undefined && n < opts.min) || (opts.max !== undefined && n > opts.max)) {
    const bounds = [opts.min !== undefined ? `>= ${opts.min}` : '', opts.max !== undefined ? `<= ${opts.max}` : ''].filter((b) => b !== '').join(' and ');
    throw new UsageError(`--${name} must be an integer${bounds !== '' ? ` ${bounds}` : ''}, got "${String(raw)}"`);
  }
  return n;
}

export function requiredString(values: Record<string, unknown>, name: string): string {
  const raw = values[name];
  if (typeof raw !== 'string' || raw.length === 0) throw new UsageError(`--${name} is required`);
  return raw;
}

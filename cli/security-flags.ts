/**
 * The security flags of `bertfleet coordinator`, `worker` and `reducer`:
 * where this process's TLS files and NATS credentials file are, or
 * `--insecure` for plaintext without authentication. Each flag has an
 * environment variable (BERTFLEET_TLS_CA, _CERT, _KEY, BERTFLEET_NATS_CREDS);
 * a flag wins over its variable. Only paths come here, never a secret: the
 * files are read and checked (shared/security/tls-material.ts,
 * shared/control/connect.ts) before anything starts.
 *
 * The config file's `tls` block is not part of the run config: TLS files
 * belong to one process, while the run config is the run's (handed to every
 * worker, compared at resume), so the block is taken out before validation.
 *
 * NATS uses the same TLS material as gRPC (the same CA, this process's
 * certificate as its client certificate): with TLS on, the nats-server must
 * present a certificate of that CA naming its host, and require ours.
 *
 * Without TLS files and without `--insecure` a command refuses to start,
 * saying what to pass. Reads no environment itself: the caller hands it one.
 */
import type { Logger } from '../shared/log.js';
import type { PeerRole } from '../shared/security/identity.js';
import type { TlsFiles } from '../shared/security/throwaway-pki.js';
import { loadTlsMaterial, type TlsMaterial } from '../shared/security/tls-material.js';
import { UsageError, type Options } from './args.js';

export const TLS_ENV = { ca: 'BERTFLEET_TLS_CA', cert: 'BERTFLEET_TLS_CERT', key: 'BERTFLEET_TLS_KEY' } as const;
export const NATS_CREDS_ENV = 'BERTFLEET_NATS_CREDS';
/** Every variable this module reads: `bertfleet cluster` keeps them from its children, which get flags. */
export const SECURITY_ENV: readonly string[] = [...Object.values(TLS_ENV), NATS_CREDS_ENV];

export const tlsOptions: Options = {
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  insecure: { type: 'boolean' },
};

export const natsCredsOptions: Options = { 'nats-creds': { type: 'string' } };

export const TLS_HELP = `  --tls-ca FILE         the CA certificate(s) to trust (PEM); env ${TLS_ENV.ca}
  --tls-cert FILE       this process's certificate (PEM, intermediates after it); env ${TLS_ENV.cert}
  --tls-key FILE        its private key (PEM, unencrypted, mode 0600 or 0400); env ${TLS_ENV.key}
  --insecure            plaintext gRPC and NATS without authentication: anyone who can reach
                        the ports can join the run and change it (logged as a warning)`;

export const NATS_CREDS_HELP = `  --nats-creds FILE     NATS credentials file of this role (JSON, mode 0600; \`bertfleet pki init\`
                        writes one per role); env ${NATS_CREDS_ENV}. With TLS on, NATS uses
                        TLS too, with the same CA and certificate`;

export interface SecurityChoice {
  /** null: plaintext (`--insecure`). */
  tlsFiles: TlsFiles | null;
  natsCredentialsFile?: string;
  insecure: boolean;
}

function given(values: Record<string, unknown>, flag: string, env: NodeJS.ProcessEnv, name: string): string | undefined {
  const v = values[flag];
  if (typeof v === 'string' && v !== '') return v;
  const e = env[name];
  return e !== undefined && e !== '' ? e : undefined;
}

/** The TLS files from flags, then environment; null when none of the three is given. */
export function tlsFilesGiven(values: Record<string, unknown>, env: NodeJS.ProcessEnv): TlsFiles | null {
  const files = {
    ca: given(values, 'tls-ca', env, TLS_ENV.ca),
    cert: given(values, 'tls-cert', env, TLS_ENV.cert),
    key: given(values, 'tls-key', env, TLS_ENV.key),
  };
  const missing = (['ca', 'cert', 'key'] as const).filter((k) => files[k] === undefined);
  if (missing.length === 3) return null;
  if (missing.length > 0) {
    throw new UsageError(`TLS needs all three files; missing ${missing.map((k) => `--tls-${k} (or ${TLS_ENV[k]})`).join(', ')}`);
  }
  return files as TlsFiles;
}

/**
 * What `command` was asked to run with. `needsNats`: it connects to NATS
 * (coordinator, worker), so with TLS on a credentials file is required too.
 * `fallback`: TLS files and credentials from elsewhere (a worker's `--join`),
 * used when no flag or variable names them.
 */
export function securityChoice(
  values: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  command: string,
  o: {
    needsNats: boolean;
    fallback?: { tlsFiles: TlsFiles; natsCredentialsFile: string };
    /** The command reads a `--config` file, whose `tls` block (if any) is `fromConfig`. */
    readsConfig?: boolean;
    /** The `tls` block of the `--config` file: below flags and variables, above `fallback`. */
    fromConfig?: { tlsFiles: TlsFiles; natsCredentialsFile?: string };
  },
): SecurityChoice {
  const explicit = tlsFilesGiven(values, env);
  const creds = o.needsNats ? given(values, 'nats-creds', env, NATS_CREDS_ENV) ?? o.fromConfig?.natsCredentialsFile : undefined;
  if (values['insecure'] === true) {
    // A flag wins over a config file: --insecure over its tls block (the start-up warning says so).
    if (explicit !== null || given(values, 'nats-creds', env, NATS_CREDS_ENV) !== undefined) {
      throw new UsageError(`bertfleet ${command}: --insecure and TLS files or NATS credentials: give one or the other (check ${SECURITY_ENV.join(', ')})`);
    }
    return { tlsFiles: null, insecure: true };
  }
  const fallback = explicit === null ? (o.fromConfig ?? o.fallback) : undefined;
  const tlsFiles = explicit ?? fallback?.tlsFiles ?? null;
  if (tlsFiles === null) {
    throw new UsageError(
      `bertfleet ${command} runs with TLS by default: pass --tls-ca FILE --tls-cert FILE --tls-key FILE ` +
        `(or set ${TLS_ENV.ca}, ${TLS_ENV.cert}, ${TLS_ENV.key}${o.readsConfig === true ? ', or a "tls" block in --config' : ''})${o.needsNats ? ` and --nats-creds FILE (or ${NATS_CREDS_ENV})` : ''}, ` +
        `or --insecure to run plaintext without authentication; \`bertfleet pki init\` makes the files`,
    );
  }
  const natsCredentialsFile = creds ?? fallback?.natsCredentialsFile;
  if (o.needsNats && natsCredentialsFile === undefined) {
    throw new UsageError(`bertfleet ${command}: TLS files given but no NATS credentials: pass --nats-creds FILE (or ${NATS_CREDS_ENV}), or --insecure`);
  }
  return { tlsFiles, insecure: false, ...(natsCredentialsFile !== undefined && { natsCredentialsFile }) };
}

/** What WIRE's runCoordinator / runWorker / the reducer take. */
export interface SecurityParts {
  tls: TlsMaterial | null;
  natsCredentialsFile?: string;
  /** TLS to nats-server: the same CA and certificate as gRPC. */
  natsTls?: { ca: Buffer; cert: Buffer; key: Buffer };
}

/** Reads and checks the files (TlsConfigError naming a file); `id` is the id the certificate must name. */
export function loadSecurity(choice: SecurityChoice, role: PeerRole, id?: string): SecurityParts {
  if (choice.tlsFiles === null) return { tls: null };
  const tls = loadTlsMaterial(choice.tlsFiles, { role, ...(id !== undefined && { id }) });
  return {
    tls,
    ...(choice.natsCredentialsFile !== undefined && { natsCredentialsFile: choice.natsCredentialsFile, natsTls: { ca: tls.ca, cert: tls.cert, key: tls.key } }),
  };
}

/** The start-up line saying how this process is secured; a warning when it is not. */
export function logSecurity(log: Logger, parts: SecurityParts): void {
  if (parts.tls === null) {
    log.warn(
      { tls: false, natsAuth: false },
      'running without TLS or authentication (--insecure): anyone who can reach the coordinator, reducers or NATS can join the run, send gradients and change its state',
    );
    return;
  }
  log.info(
    { tls: true, identity: parts.tls.identity, certNotAfter: parts.tls.notAfter.toISOString(), cert: parts.tls.files.cert, natsCredentials: parts.natsCredentialsFile ?? null },
    'mTLS on',
  );
}

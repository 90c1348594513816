/**
 * The NATS connection of the control plane. `connectControl` retries the first
 * connection with exponential backoff, then throws UnreachableError naming the
 * servers; once connected, nats.js reconnects forever on its own
 * (`reconnect: true, maxReconnectAttempts: -1`, every `reconnectTimeWaitMs`
 * plus jitter), so a nats-server restart costs only the time it is down: a
 * publish made meanwhile is buffered, a JetStream request times out and its
 * caller retries (run-control.ts, lease.ts), and status listeners hear of each
 * disconnect and reconnect so watches re-open (run-state-watch.ts).
 *
 * Authentication: `credentialsFile` names a JSON file (mode 0600, written by
 * nats-auth.ts or by hand) holding a role's nkey seed and reply-inbox prefix;
 * secrets never come on a command line. A server that refuses the
 * credentials is a ConfigError at once, not retried. `tls` adds TLS with a
 * client certificate. Credentials inside a server URL (`nats://u:p@host`) are
 * redacted from every log line and error.
 *
 * shared/control is the only importer of `nats`; callers hold a
 * ControlConnection and pass it to run-state.ts and subjects.ts. Knows nothing
 * of subjects, buckets or the run.
 */
import { connect, nkeyAuthenticator, type ConnectionOptions, type NatsConnection, type Status } from 'nats';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError, UnreachableError } from '../errors.js';
import type { Logger } from '../log.js';
import { checkPrivateFile } from '../security/private-files.js';
import { retryWithBackoff } from '../wire/backoff.js';

/** A credentials file: one role's nkey seed and the inbox prefix its permissions allow. */
export const NatsCredentialsSchema = z.strictObject({
  role: z.string().min(1),
  nkey_seed: z.string().regex(/^SU[A-Z2-7]{56}$/, 'must be an nkey user seed (SU followed by 56 base32 characters)'),
  inbox_prefix: z.string().regex(/^[A-Za-z0-9_-]+$/, 'must be one subject token of [A-Za-z0-9_-]'),
});
export type NatsCredentialsFile = z.infer<typeof NatsCredentialsSchema>;

/** Reads and checks a credentials file; ConfigError naming the file and every problem. */
export function readNatsCredentials(file: string): NatsCredentialsFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`nats credentials file ${file}: cannot read it: ${(err as Error).message}`], { cause: err });
  }
  checkPrivateFile(file, 'nats credentials file');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError([`nats credentials file ${file}: expected JSON {role, nkey_seed, inbox_prefix}, got text that does not parse`], { cause: err });
  }
  const parsed = NatsCredentialsSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map((i) => `nats credentials file ${file}: ${i.path.join('.') || '(root)'} ${i.message}`));
  return parsed.data;
}

/** `nats://user:pass@host:4222` → `nats://***@host:4222`, wherever such a URL appears in `text`. */
export function redactServerUrl(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^@/\s"]*@/gi, '$1***@');
}

export interface ControlConnectOptions {
  /** `nats://host:port`, one or several. */
  servers: string | string[];
  /** Shown by the server for this client, e.g. `coordinator` or `worker-3`. */
  name?: string;
  log: Logger;
  /** How long one connection attempt may take. */
  connectTimeoutMs?: number;
  /** First-connection attempts in total. */
  maxAttempts?: number;
  /** Give up on the first connection after this long, even with attempts left. */
  maxWaitMs?: number;
  /** Wait before the second attempt; doubles per failure up to maxDelayMs. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** After a connection is lost: wait between reconnect attempts (they never stop). */
  reconnectTimeWaitMs?: number;
  /** Ping the server this often; 3 unanswered pings count as a lost connection (a host gone without closing it). */
  pingIntervalMs?: number;
  /** A credentials file (readNatsCredentials); absent: connect without credentials. */
  credentialsFile?: string;
  /** TLS to nats-server: the CA to trust and this client's certificate and key (PEM). */
  tls?: { ca: string | Buffer; cert: string | Buffer; key: string | Buffer };
}

/** A connection lifecycle change, as nats.js reports it. */
export interface ControlStatus {
  type: 'disconnect' | 'reconnect' | 'reconnecting' | 'error' | 'ldm' | 'update' | 'other';
  detail: string;
}

export type StatusListener = (status: ControlStatus) => void;

export class ControlConnection {
  private readonly listeners = new Set<StatusListener>();
  private readonly statusIter: AsyncIterable<Status> & { stop?: () => void };
  private readonly statusLoop: Promise<void>;

  /** @internal Only shared/control touches the nats connection itself. */
  constructor(
    readonly nc: NatsConnection,
    /** As shown in logs: credentials in a URL are redacted. */
    readonly servers: readonly string[],
    private readonly log: Logger,
  ) {
    this.statusIter = nc.status();
    this.statusLoop = this.forwardStatus();
  }

  /** Calls `listener` on every status change until the returned function is called. */
  onStatus(listener: StatusListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Flushes pending publishes, closes, and waits for the status loop to end. */
  async close(): Promise<void> {
    if (!this.nc.isClosed()) await this.nc.drain();
    // nats.js 2.29 does not end a connection's status iterators on close; end ours.
    this.statusIter.stop?.();
    await this.statusLoop;
  }

  /**
   * Like `close()`, but gives up draining after `timeoutMs` and closes at once
   * (pending publishes are dropped): for shutdowns where nats-server may
   * already be gone, so a reconnecting connection never keeps a process alive.
   */
  async closeWithin(timeoutMs: number): Promise<'drained' | 'closed'> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), timeoutMs);
    });
    const drained = this.close().then(() => 'drained' as const, (err: unknown) => {
      this.log.warn({ err }, 'nats connection did not drain cleanly');
      return 'failed' as const;
    });
    const outcome = await Promise.race([drained, late]);
    clearTimeout(timer);
    if (outcome === 'drained') return 'drained';
    if (!this.nc.isClosed()) await this.nc.close();
    this.statusIter.stop?.();
    return 'closed';
  }

  private async forwardStatus(): Promise<void> {
    for await (const s of this.statusIter) {
      const status = toControlStatus(s);
      if (status.type === 'disconnect') this.log.warn({ server: status.detail }, 'nats connection lost; reconnecting');
      else if (status.type === 'reconnect') this.log.info({ server: status.detail }, 'nats reconnected');
      else this.log.debug({ status }, 'nats status');
      for (const l of this.listeners) {
        try {
          l(status);
        } catch (err) {
          // A failing listener must not stop the others from hearing of later changes.
          this.log.error({ err, status }, 'status listener failed');
        }
      }
    }
  }
}

function toControlStatus(s: Status): ControlStatus {
  const known = ['disconnect', 'reconnect', 'reconnecting', 'error', 'ldm', 'update'] as const;
  const type = (known as readonly string[]).includes(s.type) ? (s.type as ControlStatus['type']) : 'other';
  return { type, detail: redactServerUrl(typeof s.data === 'object' ? JSON.stringify(s.data) : String(s.data)) };
}

function isAuthRefusal(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'AUTHORIZATION_VIOLATION' || code === 'AUTHENTICATION_EXPIRED' || code === 'AUTHENTICATION_TIMEOUT';
}

function authOptions(opts: ControlConnectOptions): { options: Partial<ConnectionOptions>; as: string } {
  const options: Partial<ConnectionOptions> = {};
  let as = 'no credentials';
  if (opts.credentialsFile !== undefined) {
    const creds = readNatsCredentials(opts.credentialsFile);
    options.authenticator = nkeyAuthenticator(new TextEncoder().encode(creds.nkey_seed));
    options.inboxPrefix = creds.inbox_prefix;
    as = `role ${creds.role} (credentials file ${opts.credentialsFile})`;
  }
  if (opts.tls !== undefined) options.tls = { ca: opts.tls.ca, cert: opts.tls.cert, key: opts.tls.key } as ConnectionOptions['tls'];
  return { options, as };
}

/**
 * Connects to NATS, retrying with backoff; UnreachableError names the
 * servers. A refusal of the credentials is a ConfigError at once.
 */
export async function connectControl(opts: ControlConnectOptions): Promise<ControlConnection> {
  const servers = typeof opts.servers === 'string' ? [opts.servers] : [...opts.servers];
  const shown = servers.map(redactServerUrl);
  const log = opts.log.child({ component: 'nats', servers: shown });
  const connectTimeoutMs = opts.connectTimeoutMs ?? 2_000;
  const auth = authOptions(opts);
  let refused: unknown = null;
  const nc = await retryWithBackoff(
    async () => {
      try {
        return await connect({
          servers,
          ...(opts.name !== undefined && { name: opts.name }),
          ...auth.options,
          timeout: connectTimeoutMs,
          reconnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: opts.reconnectTimeWaitMs ?? 1_000,
          pingInterval: opts.pingIntervalMs ?? 10_000,
          maxPingOut: 3,
        });
      } catch (err) {
        // Wrong credentials do not get better by waiting: end the retries (null) and throw below.
        if (!isAuthRefusal(err)) throw err;
        refused = err;
        return null;
      }
    },
    {
      initialDelayMs: opts.initialDelayMs ?? 200,
      maxDelayMs: opts.maxDelayMs ?? 5_000,
      maxAttempts: opts.maxAttempts ?? 10,
      ...(opts.maxWaitMs !== undefined && { maxWaitMs: opts.maxWaitMs }),
      onRetry: ({ attempts, delayMs, lastError }) => log.warn({ attempts, delayMs, err: lastError }, 'nats not reachable yet; retrying'),
      onExhausted: ({ attempts, elapsedMs, lastError }) =>
        new UnreachableError(
          `nats-server at ${shown.join(', ')} unreachable: no connection after ${attempts} attempts in ${elapsedMs} ms ` +
            `(connectTimeoutMs ${connectTimeoutMs})`,
          { cause: lastError },
        ),
    },
  );
  if (nc === null) {
    throw new ConfigError([`nats-server at ${shown.join(', ')} refused to authenticate ${auth.as}: ${(refused as Error).message}`], { cause: refused });
  }
  log.info({ as: auth.as, tls: opts.tls !== undefined }, 'connected to nats');
  return new ControlConnection(nc, shown, log);
}

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
 * shared/control is the only importer of `nats`; callers hold a
 * ControlConnection and pass it to run-state.ts and subjects.ts. Knows nothing
 * of subjects, buckets or the run.
 */
import { connect, type NatsConnection, type Status } from 'nats';
import { UnreachableError } from '../errors.js';
import type { Logger } from '../log.js';
import { retryWithBackoff } from '../wire/backoff.js';

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
  return { type, detail: typeof s.data === 'object' ? JSON.stringify(s.data) : String(s.data) };
}

/** Connects to NATS, retrying with backoff; UnreachableError names the servers. */
export async function connectControl(opts: ControlConnectOptions): Promise<ControlConnection> {
  const servers = typeof opts.servers === 'string' ? [opts.servers] : [...opts.servers];
  const log = opts.log.child({ component: 'nats', servers });
  const connectTimeoutMs = opts.connectTimeoutMs ?? 2_000;
  const nc = await retryWithBackoff(
    () =>
      connect({
        servers,
        ...(opts.name !== undefined && { name: opts.name }),
        timeout: connectTimeoutMs,
        reconnect: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: opts.reconnectTimeWaitMs ?? 1_000,
        pingInterval: opts.pingIntervalMs ?? 10_000,
        maxPingOut: 3,
      }),
    {
      initialDelayMs: opts.initialDelayMs ?? 200,
      maxDelayMs: opts.maxDelayMs ?? 5_000,
      maxAttempts: opts.maxAttempts ?? 10,
      ...(opts.maxWaitMs !== undefined && { maxWaitMs: opts.maxWaitMs }),
      onRetry: ({ attempts, delayMs, lastError }) => log.warn({ attempts, delayMs, err: lastError }, 'nats not reachable yet; retrying'),
      onExhausted: ({ attempts, elapsedMs, lastError }) =>
        new UnreachableError(
          `nats-server at ${servers.join(', ')} unreachable: no connection after ${attempts} attempts in ${elapsedMs} ms ` +
            `(connectTimeoutMs ${connectTimeoutMs})`,
          { cause: lastError },
        ),
    },
  );
  log.info('connected to nats');
  return new ControlConnection(nc, servers, log);
}

/**
 * The client edge of the gRPC adapter: `createCoordinatorClient` opens the
 * two connections of a CoordinatorClient (client.ts) to the coordinator or a
 * reducer, and GrpcTransport turns grpc-js calls into promises and async
 * iterables, restoring the server's bertfleet errors (status-codes.ts). With
 * TLS material it presents this party's certificate and accepts only a
 * server certificate from the CA naming the role it meant to reach; a
 * refused handshake is reported at once, saying why (tls-probe.ts).
 *
 * Knows nothing of what a call means.
 */
import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { ProtocolError, UnreachableError } from '../errors.js';
import { serverIdentityCheck } from '../security/peer-identity.js';
import type { TlsMaterial } from '../security/tls-material.js';
import { retryWithBackoff } from './backoff.js';
import { CoordinatorClient } from './client.js';
import { channelOptions, loadCoordinatorService } from './grpc-common.js';
import { resolveClient, type ClientOptions } from './options.js';
import type { RpcTransport } from './service.js';
import { ERROR_TRAILER_KEY, fromWireError } from './status-codes.js';
import { probeTlsHandshake } from './tls-probe.js';

/**
 * mTLS client credentials: our certificate and key, the CA the server's must
 * chain to, and a check that it names `role`. The host name check is
 * Node's: an address `127.0.0.1:port` matches an IP SAN, `localhost:port` a
 * DNS one (the throwaway PKI's server certificates carry both), so no
 * `grpc.ssl_target_name_override` is needed.
 */
function channelCredentials(tls: TlsMaterial | null, role: 'coordinator' | 'reducer'): grpc.ChannelCredentials {
  if (tls === null) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(tls.ca, tls.key, tls.cert, { checkServerIdentity: serverIdentityCheck(role) });
}

/** `host:port` or `[v6]:port` → parts, for the TLS probe; null when it is not that shape (a `dns:` target...). */
function splitAddress(address: string): { host: string; port: number } | null {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(address) ?? /^([^:]+):(\d+)$/.exec(address);
  return m === null ? null : { host: m[1]!, port: Number(m[2]) };
}

/** Marks a failed connection attempt whose cause is the TLS handshake: retrying will not help. */
class HandshakeRefused extends Error {
  override readonly name = 'HandshakeRefused';
}

/**
 * After grpc-js failed to connect: with TLS, whether the handshake is what
 * failed (tls-probe.ts), as a HandshakeRefused; otherwise the error as is.
 */
async function explainConnectFailure(err: unknown, address: string, tls: TlsMaterial | null, role: 'coordinator' | 'reducer', timeoutMs: number): Promise<unknown> {
  const at = tls === null ? null : splitAddress(address);
  if (tls === null || at === null) return err;
  const why = await probeTlsHandshake({ ...at, ca: tls.ca, cert: tls.cert, key: tls.key, checkServerIdentity: serverIdentityCheck(role) }, timeoutMs);
  return why === null ? err : new HandshakeRefused(`TLS handshake failed: ${why}`, { cause: err });
}

/**
 * Connects to the coordinator (or, with `serverRole: 'reducer'`, a reducer)
 * at `address` (`host:port`), retrying with exponential backoff; throws
 * UnreachableError naming the address when every attempt fails, or at once
 * when the TLS handshake is refused, saying why ("TLS handshake failed: the
 * server refused this client's certificate ...").
 */
export async function createCoordinatorClient(address: string, opts: ClientOptions): Promise<CoordinatorClient> {
  const o = resolveClient(opts);
  const role = o.serverRole;
  const log = opts.log.child({ component: 'grpc-client', address });
  const options = {
    ...channelOptions(o),
    'grpc.initial_reconnect_backoff_ms': o.connectInitialDelayMs,
    'grpc.max_reconnect_backoff_ms': o.connectMaxDelayMs,
    'grpc-node.flow_control_window': o.flowControlWindowBytes,
  };
  const creds = channelCredentials(opts.tls, role);
  const client = new grpc.Client(address, creds, options);
  // Uploads get a TCP connection of their own (a private subchannel pool): on one
  // HTTP/2 session, a worker's upload and the reduced gradient streaming back at the
  // same time stall each other for good once messages exceed ~100 KB (Node 20's
  // http2; the test 'streams both ways at once' in wire-grpc.test.ts hangs on one
  // connection). On two, each direction flows at full speed.
  const uploads = new grpc.Client(address, creds, { ...options, 'grpc.use_local_subchannel_pool': 1 });
  const closeAll = (): void => {
    client.close();
    uploads.close();
  };
  await retryWithBackoff(async () => {
    try {
      await waitForReady(client, o.connectTimeoutMs);
      await waitForReady(uploads, o.connectTimeoutMs);
    } catch (err) {
      throw await explainConnectFailure(err, address, opts.tls, role, o.connectTimeoutMs);
    }
  }, {
    initialDelayMs: o.connectInitialDelayMs,
    maxDelayMs: o.connectMaxDelayMs,
    maxAttempts: o.connectMaxAttempts,
    stopOn: (err) => err instanceof HandshakeRefused,
    onRetry: ({ attempts, delayMs, lastError }) => log.warn({ attempts, delayMs, err: lastError }, `${role} not reachable yet; retrying`),
    onExhausted: ({ attempts, elapsedMs, lastError }) => {
      closeAll();
      if (lastError instanceof HandshakeRefused) {
        return new UnreachableError(`${role} at ${address} unreachable: ${lastError.message}`, { cause: lastError });
      }
      return new UnreachableError(
        `${role} at ${address} unreachable: no connection after ${attempts} attempts in ${elapsedMs} ms ` +
          `(connectTimeoutMs ${o.connectTimeoutMs}${opts.tls === null ? ', plaintext' : ', TLS'})`,
        { cause: lastError },
      );
    },
  });
  log.debug({ tls: opts.tls !== null, serverRole: role }, 'connected');
  const def = loadCoordinatorService();
  return new CoordinatorClient(new GrpcTransport(client, address, def), {
    timeouts: o.timeouts, chunkBytes: o.chunkBytes, uploads: new GrpcTransport(uploads, address, def),
  });
}

function waitForReady(client: grpc.Client, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    client.waitForReady(Date.now() + timeoutMs, (err) => (err ? reject(err) : resolve()));
  });
}

type Method = grpc.MethodDefinition<unknown, unknown>;

/** RpcTransport over one grpc-js Client; every failure leaves as a bertfleet error. */
class GrpcTransport implements RpcTransport {
  constructor(
    private readonly client: grpc.Client,
    readonly address: string,
    private readonly def: grpc.ServiceDefinition,
  ) {}

  unary(method: string, req: unknown, timeoutMs: number, signal?: AbortSignal): Promise<never> {
    const m = this.method(method);
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = (): void => {
        call.cancel();
        reject(signal!.reason);
      };
      const call = this.client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs },
        (err, res) => {
          signal?.removeEventListener('abort', onAbort);
          if (err) reject(this.mapError(err, method, timeoutMs));
          else resolve(res as never);
        });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  async clientStream(method: string, source: Iterable<unknown>, timeoutMs: number): Promise<never> {
    const m = this.method(method);
    let finished = false;
    let call!: grpc.ClientWritableStream<unknown>;
    const result = new Promise<never>((resolve, reject) => {
      call = this.client.makeClientStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, new grpc.Metadata(), { deadline: Date.now() + timeoutMs },
        (err, res) => {
          finished = true;
          if (err) reject(this.mapError(err, method, timeoutMs));
          else resolve(res as never);
        });
    });
    // Settles with the call, whatever its outcome: only used to stop waiting for 'drain'.
    const ended = result.then(() => undefined, () => undefined);
    for (const msg of source) {
      if (finished) break;
      if (!call.write(msg)) await Promise.race([once(call, 'drain'), ended]);
    }
    call.end();
    return result;
  }

  async *serverStream(method: string, req: unknown, timeoutMs: number): AsyncGenerator<never> {
    const m = this.method(method);
    const call = this.client.makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, req, new grpc.Metadata(), {
      deadline: Date.now() + timeoutMs,
    });
    try {
      for await (const msg of call) yield msg as never;
    } catch (err) {
      throw isServiceError(err) ? this.mapError(err, method, timeoutMs) : err;
    } finally {
      call.cancel(); // no-op when the stream completed; stops it when the consumer left early
    }
  }

  close(): void {
    this.client.close();
  }

  private method(name: string): Method {
    const m = this.def[name];
    if (m === undefined) throw new ProtocolError(`service Coordinator has no method ${name}`);
    return m as Method;
  }

  private mapError(err: grpc.ServiceError, method: string, timeoutMs: number): Error {
    const [trailer] = err.metadata?.get(ERROR_TRAILER_KEY) ?? [];
    return fromWireError(
      { code: err.code, details: err.details, trailer: Buffer.isBuffer(trailer) ? trailer : null, call: `${method} on ${this.address}`, timeoutMs },
      err,
    );
  }
}

function isServiceError(err: unknown): err is grpc.ServiceError {
  return err instanceof Error && typeof (err as { code?: unknown }).code === 'number' && 'details' in err;
}

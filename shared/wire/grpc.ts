/**
 * The gRPC adapter: the only importer of @grpc/grpc-js and @grpc/proto-loader.
 * It loads proto/bertfleet.proto at run time, serves a `CoordinatorHandlers`
 * (service.ts) and opens `CoordinatorClient`s (client.ts), converting between
 * grpc-js calls and promises/async iterables, and between thrown bertfleet
 * errors and status codes (the table is status-codes.ts). Message limits and
 * keepalive (options.ts) are set explicitly and identically on both sides.
 *
 * Knows nothing of what the coordinator does with a call or what a tensor means.
 */
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ConfigError, ProtocolError, UnreachableError } from '../errors.js';
import type { Logger } from '../log.js';
import { retryWithBackoff } from './backoff.js';
import { WIRE_CHUNK_BYTES } from './chunks.js';
import { CoordinatorClient } from './client.js';
import { MAX_MESSAGE_BYTES, resolveChannel, resolveClient, type ChannelTuning, type ClientOptions, type ResolvedChannel } from './options.js';
import type { CallContext, CoordinatorHandlers, RpcTransport } from './service.js';
import { ERROR_TRAILER_KEY, fromWireError, toWireError } from './status-codes.js';

export const PROTO_PATH = fileURLToPath(new URL('../../proto/bertfleet.proto', import.meta.url));

/** uint64 as JS number (steps and byte counts stay far below 2^53). */
export const PROTO_LOADER_OPTIONS = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };

export { MAX_MESSAGE_BYTES, WIRE_CHUNK_BYTES };
export type { ChannelTuning, ClientOptions };

function channelOptions(t: ResolvedChannel): grpc.ChannelOptions {
  return {
    'grpc.max_receive_message_length': t.maxMessageBytes,
    'grpc.max_send_message_length': t.maxMessageBytes,
    'grpc.keepalive_time_ms': t.keepaliveTimeMs,
    'grpc.keepalive_timeout_ms': t.keepaliveTimeoutMs,
    'grpc.keepalive_permit_without_calls': 1,
  };
}

let service: grpc.ServiceDefinition | undefined;

/** The Coordinator service definition, parsed once from PROTO_PATH. */
export function loadCoordinatorService(): grpc.ServiceDefinition {
  if (service === undefined) {
    const pkg = protoLoader.loadSync(PROTO_PATH, PROTO_LOADER_OPTIONS);
    const def = pkg['bertfleet.v1.Coordinator'];
    if (def === undefined || !('Register' in def)) throw new ProtocolError(`${PROTO_PATH} defines no service bertfleet.v1.Coordinator`);
    service = def as grpc.ServiceDefinition;
  }
  return service;
}

// ---------------------------------------------------------------- server edge

export interface CoordinatorServer {
  /** Binds and serves; port 0 picks a free port. Resolves to the bound port. */
  startServer(host: string, port: number): Promise<number>;
  /** Lets calls finish for `graceMs`, then cancels the rest; resolves when the port is released. */
  stop(opts?: { graceMs?: number }): Promise<void>;
}

export interface ServerOptions extends ChannelTuning {
  log: Logger;
  /**
   * HTTP/2 receive window of the server (per stream and per connection), as
   * the client's `flowControlWindowBytes`: uploads go ~1.5-2.5x faster on
   * loopback than through the 64 KiB default. Default 16 MiB.
   */
  flowControlWindowBytes?: number;
}

export function createServer(impl: CoordinatorHandlers, opts: ServerOptions): CoordinatorServer {
  const log = opts.log.child({ component: 'grpc-server' });
  const server = new grpc.Server(channelOptions(resolveChannel(opts)));
  const window = opts.flowControlWindowBytes ?? 16 * 1024 * 1024;
  if (!(Number.isInteger(window) && window >= 65_535 && window < 2 ** 31)) {
    throw new ConfigError([`flowControlWindowBytes must be an integer in [65535, 2^31), got ${window}`]);
  }
  const widened = widenReceiveWindow(server, window);
  const fail = (method: string, err: unknown): Partial<grpc.StatusObject> => {
    const w = toWireError(err);
    if (w.trailer === null) log.error({ err, method }, 'handler failed');
    else log.debug({ method, code: w.code, details: w.details }, 'call refused');
    const metadata = new grpc.Metadata();
    if (w.trailer !== null) metadata.set(ERROR_TRAILER_KEY, Buffer.from(w.trailer));
    return { code: w.code, details: w.details, metadata };
  };
  // Unary and client-streaming calls both end in one callback: call it exactly once.
  const reply = <Arg, Res>(method: string, fn: (a: Arg, ctx: CallContext) => Promise<Res>, arg: Arg, call: SurfaceCall, callback: grpc.sendUnaryData<Res>) =>
    void (async () => {
      const { ctx, done } = callContext(call);
      let res: Res;
      try {
        res = await fn(arg, ctx);
      } catch (err) {
        callback(fail(method, err));
        return;
      } finally {
        done();
      }
      callback(null, res);
    })();
  const unary =
    <Req, Res>(method: string, fn: (req: Req, ctx: CallContext) => Promise<Res>): grpc.handleUnaryCall<Req, Res> =>
    (call, callback) => reply(method, fn, call.request, call, callback);
  const clientStream =
    <Req, Res>(method: string, fn: (r: AsyncIterable<Req>, ctx: CallContext) => Promise<Res>): grpc.handleClientStreamingCall<Req, Res> =>
    (call, callback) => reply(method, fn, call, call, callback);
  const serverStream =
    <Req, Res>(method: string, fn: (req: Req, ctx: CallContext) => AsyncIterable<Res>): grpc.handleServerStreamingCall<Req, Res> =>
    (call) =>
      void (async () => {
        const { ctx, done } = callContext(call);
        try {
          for await (const msg of fn(call.request, ctx)) {
            if (!call.write(msg)) await once(call, 'drain', { signal: ctx.signal });
          }
          call.end();
        } catch (err) {
          if (ctx.signal.aborted) log.debug({ method, err }, 'stream abandoned by client');
          else call.emit('error', fail(method, err));
        } finally {
          done();
        }
      })();
  server.addService(loadCoordinatorService(), {
    GetRunConfig: unary('GetRunConfig', impl.getRunConfig.bind(impl)),
    Register: unary('Register', impl.register.bind(impl)),
    NextAssignment: unary('NextAssignment', impl.nextAssignment.bind(impl)),
    PushGradient: clientStream('PushGradient', impl.pushGradient.bind(impl)),
    PullReduced: serverStream('PullReduced', impl.pullReduced.bind(impl)),
    Heartbeat: unary('Heartbeat', impl.heartbeat.bind(impl)),
    PushEvalResults: unary('PushEvalResults', impl.pushEvalResults.bind(impl)),
    FetchState: serverStream('FetchState', impl.fetchState.bind(impl)),
    ReportChecksum: unary('ReportChecksum', impl.reportChecksum.bind(impl)),
    ReportAudit: unary('ReportAudit', impl.reportAudit.bind(impl)),
    ReportMetrics: unary('ReportMetrics', impl.reportMetrics.bind(impl)),
    Leave: unary('Leave', impl.leave.bind(impl)),
    OpenStep: unary('OpenStep', impl.openStep.bind(impl)),
    Reassign: unary('Reassign', impl.reassign.bind(impl)),
  });
  return {
    startServer: async (host, port) => {
      const bound = await bind(server, host, port);
      widened.afterBind();
      log.debug({ flowControlWindowBytes: window, widened: widened.applied }, 'listening');
      return bound;
    },
    stop: ({ graceMs = 5_000 } = {}) => shutdown(server, graceMs, log),
  };
}

/**
 * grpc-js 1.14 has no server option for HTTP/2 flow control, so every upload
 * would crawl through the 64 KiB default window (a WINDOW_UPDATE round trip
 * per 64 KiB). Its http2 server options (`commonServerOptions`) and servers
 * (`http2Servers`) are plain fields of the pinned version: announce a larger
 * initial stream window in the SETTINGS it sends, and widen each session's
 * connection window as it opens. Where the fields are missing (another
 * grpc-js), nothing is changed and `applied` says so.
 */
function widenReceiveWindow(server: grpc.Server, bytes: number): { applied: boolean; afterBind: () => void } {
  const internals = server as unknown as {
    commonServerOptions?: { settings?: Record<string, unknown> };
    http2Servers?: Map<{ on(event: 'session', l: (s: { setLocalWindowSize?: (n: number) => void }) => void): unknown }, unknown>;
  };
  const options = internals.commonServerOptions;
  if (typeof options !== 'object' || options === null || !(internals.http2Servers instanceof Map)) return { applied: false, afterBind: () => {} };
  options.settings = { ...options.settings, initialWindowSize: bytes };
  const seen = new Set<unknown>();
  return {
    applied: true,
    afterBind: () => {
      for (const h of internals.http2Servers!.keys()) {
        if (seen.has(h)) continue;
        seen.add(h);
        h.on('session', (session) => session.setLocalWindowSize?.(bytes));
      }
    },
  };
}

/** What every server call object offers (grpc-js does not export a name for it). */
interface SurfaceCall {
  on(event: 'cancelled', listener: () => void): unknown;
  off(event: 'cancelled', listener: () => void): unknown;
  getPeer(): string;
}

function callContext(call: SurfaceCall): { ctx: CallContext; done: () => void } {
  const ac = new AbortController();
  const onCancel = (): void => ac.abort();
  call.on('cancelled', onCancel);
  return { ctx: { signal: ac.signal, peer: call.getPeer() }, done: () => call.off('cancelled', onCancel) };
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function bind(server: grpc.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(hostPort(host, port), grpc.ServerCredentials.createInsecure(), (err, bound) => {
      if (err) reject(new ConfigError([`coordinator cannot listen on ${hostPort(host, port)}: ${err.message}`], { cause: err }));
      else resolve(bound);
    });
  });
}

function shutdown(server: grpc.Server, graceMs: number, log: Logger): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      log.warn({ graceMs }, 'calls still open after grace period; cancelling them');
      server.forceShutdown();
    }, graceMs);
    // Called once every listener and connection is closed, forced or not.
    server.tryShutdown((err) => {
      clearTimeout(timer);
      if (err) {
        log.warn({ err }, 'graceful shutdown failed; forcing it');
        server.forceShutdown();
      }
      resolve();
    });
  });
}

// ---------------------------------------------------------------- client edge

/**
 * Connects to the coordinator at `address` (`host:port`), retrying with
 * exponential backoff; throws UnreachableError naming the address when every
 * attempt fails.
 */
export async function createCoordinatorClient(address: string, opts: ClientOptions): Promise<CoordinatorClient> {
  const o = resolveClient(opts);
  const log = opts.log.child({ component: 'grpc-client', address });
  const options = {
    ...channelOptions(o),
    'grpc.initial_reconnect_backoff_ms': o.connectInitialDelayMs,
    'grpc.max_reconnect_backoff_ms': o.connectMaxDelayMs,
    'grpc-node.flow_control_window': o.flowControlWindowBytes,
  };
  const client = new grpc.Client(address, grpc.credentials.createInsecure(), options);
  // Uploads get a TCP connection of their own (a private subchannel pool): on one
  // HTTP/2 session, a worker's upload and the reduced gradient streaming back at the
  // same time stall each other for good once messages exceed ~100 KB (Node 20's
  // http2; the test 'streams both ways at once' in wire-grpc.test.ts hangs on one
  // connection). On two, each direction flows at full speed.
  const uploads = new grpc.Client(address, grpc.credentials.createInsecure(), { ...options, 'grpc.use_local_subchannel_pool': 1 });
  const closeAll = (): void => {
    client.close();
    uploads.close();
  };
  await retryWithBackoff(async () => {
    await waitForReady(client, o.connectTimeoutMs);
    await waitForReady(uploads, o.connectTimeoutMs);
  }, {
    initialDelayMs: o.connectInitialDelayMs,
    maxDelayMs: o.connectMaxDelayMs,
    maxAttempts: o.connectMaxAttempts,
    onRetry: ({ attempts, delayMs, lastError }) => log.warn({ attempts, delayMs, err: lastError }, 'coordinator not reachable yet; retrying'),
    onExhausted: ({ attempts, elapsedMs, lastError }) => {
      closeAll();
      return new UnreachableError(
        `coordinator at ${address} unreachable: no connection after ${attempts} attempts in ${elapsedMs} ms ` +
          `(connectTimeoutMs ${o.connectTimeoutMs})`,
        { cause: lastError },
      );
    },
  });
  log.debug('connected');
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

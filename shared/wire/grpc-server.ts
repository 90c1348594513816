/**
 * The server edge of the gRPC adapter: serves a `CoordinatorHandlers`
 * (service.ts) over grpc-js, turning calls into promises and async iterables
 * and thrown bertfleet errors into status codes (status-codes.ts). With TLS
 * material it speaks mTLS: a client certificate signed by the CA is required
 * at the handshake (refusals are logged), and each handler gets the caller's
 * identity (CallContext.identity) to bind what the call claims
 * (peer-binding.ts). `tls: null` (plaintext) is never a default.
 *
 * Knows nothing of what the coordinator does with a call.
 */
import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { AuthError, ConfigError, PermissionError } from '../errors.js';
import type { Logger } from '../log.js';
import type { PeerIdentity } from '../security/identity.js';
import { identityOfAuthContext } from '../security/peer-identity.js';
import type { TlsMaterial } from '../security/tls-material.js';
import { channelOptions, loadCoordinatorService } from './grpc-common.js';
import { resolveChannel, type ChannelTuning } from './options.js';
import type { CallContext, CoordinatorHandlers } from './service.js';
import { ERROR_TRAILER_KEY, toWireError } from './status-codes.js';

export interface CoordinatorServer {
  /** Binds and serves; port 0 picks a free port. Resolves to the bound port. */
  startServer(host: string, port: number): Promise<number>;
  /** Lets calls finish for `graceMs`, then cancels the rest; resolves when the port is released. */
  stop(opts?: { graceMs?: number }): Promise<void>;
}

export interface ServerOptions extends ChannelTuning {
  log: Logger;
  /**
   * mTLS: the server's certificate and key, and the CA every client
   * certificate must chain to (clients without one are refused at the
   * handshake). null serves plaintext: only by an explicit choice upstream.
   */
  tls: TlsMaterial | null;
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
  if ((opts.tls as unknown) === undefined) throw new ConfigError(['tls must be the TLS material or null (plaintext, chosen explicitly), got undefined']);
  const secure = opts.tls !== null;
  const widened = widenReceiveWindow(server, window);
  const fail = (method: string, err: unknown): Partial<grpc.StatusObject> => {
    const w = toWireError(err);
    if (w.trailer === null) log.error({ err, method }, 'handler failed');
    else if (err instanceof AuthError || err instanceof PermissionError) log.warn({ method, code: w.code, details: w.details }, 'call refused: identity');
    else log.debug({ method, code: w.code, details: w.details }, 'call refused');
    const metadata = new grpc.Metadata();
    if (w.trailer !== null) metadata.set(ERROR_TRAILER_KEY, Buffer.from(w.trailer));
    return { code: w.code, details: w.details, metadata };
  };
  // Unary and client-streaming calls both end in one callback: call it exactly once.
  const reply = <Arg, Res>(method: string, fn: (a: Arg, ctx: CallContext) => Promise<Res>, arg: Arg, call: SurfaceCall, callback: grpc.sendUnaryData<Res>) =>
    void (async () => {
      let res: Res;
      let done = (): void => {};
      try {
        const c = callContext(call, secure);
        done = c.done;
        res = await fn(arg, c.ctx);
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
        let started: ReturnType<typeof callContext>;
        try {
          started = callContext(call, secure);
        } catch (err) {
          call.emit('error', fail(method, err));
          return;
        }
        const { ctx, done } = started;
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
      const bound = await bind(server, host, port, serverCredentials(opts.tls));
      widened.afterBind();
      logRefusedHandshakes(server, log);
      log.debug({ flowControlWindowBytes: window, widened: widened.applied, tls: secure }, 'listening');
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

function serverCredentials(tls: TlsMaterial | null): grpc.ServerCredentials {
  if (tls === null) return grpc.ServerCredentials.createInsecure();
  // true: a client certificate is required and must chain to tls.ca.
  return grpc.ServerCredentials.createSsl(tls.ca, [{ cert_chain: tls.cert, private_key: tls.key }], true);
}

/**
 * A refused handshake (no client certificate, another CA) never reaches a
 * handler; the TLS servers grpc-js keeps in `http2Servers` (a plain field of
 * the pinned version, as in widenReceiveWindow) report it as
 * 'tlsClientError'. Logged at warn with the peer, the one trace of it.
 */
const handshakeWatched = new WeakSet<object>();

function logRefusedHandshakes(server: grpc.Server, log: Logger): void {
  const servers = (server as unknown as { http2Servers?: Map<{ on(e: string, l: (...a: unknown[]) => void): unknown }, unknown> }).http2Servers;
  if (!(servers instanceof Map)) return;
  for (const h of servers.keys()) {
    // Node's own listener (it destroys the socket) stays; this one only logs.
    if (handshakeWatched.has(h)) continue;
    handshakeWatched.add(h);
    // The TLS socket may be torn down by then: remember each peer's address as its TCP connection opens.
    const peers = new WeakMap<object, string>();
    h.on('connection', (socket) => {
      const s = socket as { remoteAddress?: string; remotePort?: number };
      peers.set(socket as object, `${s.remoteAddress ?? '?'}:${s.remotePort ?? '?'}`);
    });
    h.on('tlsClientError', (err, socket) => {
      const tcp = (socket as { _parent?: object } | undefined)?._parent ?? socket;
      const fields = { peer: peers.get(tcp as object) ?? '?', reason: (err as Error).message.split('\n')[0] };
      // A peer that closes before sending a handshake (a port probe: is the server up?) was not refused.
      if ((err as NodeJS.ErrnoException).code === 'ECONNRESET' && /socket hang up/.test(fields.reason ?? '')) log.debug(fields, 'connection closed before a TLS handshake');
      else log.warn(fields, 'TLS handshake refused');
    });
  }
}

/** What every server call object offers (grpc-js does not export a name for it). */
interface SurfaceCall {
  on(event: 'cancelled', listener: () => void): unknown;
  off(event: 'cancelled', listener: () => void): unknown;
  getPeer(): string;
  getAuthContext(): { sslPeerCertificate?: { raw?: Uint8Array | null } | null };
}

/**
 * The caller's identity on a secure server. A certificate signed by the CA
 * that names no bertfleet identity (or several) can call nothing: AuthError,
 * thrown before the handler runs.
 */
function identityOf(call: SurfaceCall, secure: boolean): PeerIdentity | null {
  if (!secure) return null;
  try {
    return identityOfAuthContext(call.getAuthContext());
  } catch (err) {
    throw new AuthError(`client certificate of ${call.getPeer()}: ${(err as Error).message}`, { cause: err });
  }
}

function callContext(call: SurfaceCall, secure: boolean): { ctx: CallContext; done: () => void } {
  const identity = identityOf(call, secure);
  const ac = new AbortController();
  const onCancel = (): void => ac.abort();
  call.on('cancelled', onCancel);
  return { ctx: { signal: ac.signal, peer: call.getPeer(), secure, identity }, done: () => call.off('cancelled', onCancel) };
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function bind(server: grpc.Server, host: string, port: number, creds: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(hostPort(host, port), creds, (err, bound) => {
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

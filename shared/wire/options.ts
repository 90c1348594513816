/**
 * The knobs of the gRPC adapter, their defaults and their validation, in one
 * place and without any grpc import: message limits, keepalive, connection
 * retry, flow control. `resolve*` fills the defaults and checks every value
 * once, throwing one ConfigError that lists every bad option.
 */
import { ConfigError } from '../errors.js';
import type { Logger } from '../log.js';
import type { TlsMaterial } from '../security/tls-material.js';
import { WIRE_CHUNK_BYTES } from './chunks.js';
import type { CallTimeouts } from './client.js';

/** 16 MiB on both sides; chunks are WIRE_CHUNK_BYTES (1 MiB), far inside it. */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

export interface ChannelTuning {
  maxMessageBytes?: number;
  /** Ping the peer this often, to notice a dead connection. */
  keepaliveTimeMs?: number;
  /** Drop the connection when a ping is not answered in this time. */
  keepaliveTimeoutMs?: number;
}

export interface ClientOptions extends ChannelTuning {
  log: Logger;
  /**
   * mTLS: this party's certificate and key and the CA the server's must chain
   * to; null for plaintext, which only an explicit `--insecure` upstream chooses.
   */
  tls: TlsMaterial | null;
  /** The role the server's certificate must name (default 'coordinator'); the coordinator reaching a reducer says 'reducer'. */
  serverRole?: 'coordinator' | 'reducer';
  /** How long one connection attempt may take. */
  connectTimeoutMs?: number;
  /** Wait before the second attempt; doubles per failure up to connectMaxDelayMs. */
  connectInitialDelayMs?: number;
  connectMaxDelayMs?: number;
  connectMaxAttempts?: number;
  timeouts?: Partial<CallTimeouts>;
  chunkBytes?: number;
  /**
   * HTTP/2 receive window of the client: a large one speeds PullReduced ~1.3x
   * on loopback. grpc-js servers have no such option; grpc.ts widens the
   * server's window itself (ServerOptions.flowControlWindowBytes) for uploads.
   */
  flowControlWindowBytes?: number;
}

export type ResolvedChannel = Readonly<Required<ChannelTuning>>;
export type ResolvedClient = ResolvedChannel &
  Readonly<Required<Omit<ClientOptions, 'log' | 'timeouts' | 'tls' | keyof ChannelTuning>>> & { timeouts: Partial<CallTimeouts> };

export function resolveChannel(t: ChannelTuning): ResolvedChannel {
  const r = {
    maxMessageBytes: t.maxMessageBytes ?? MAX_MESSAGE_BYTES,
    keepaliveTimeMs: t.keepaliveTimeMs ?? 20_000,
    keepaliveTimeoutMs: t.keepaliveTimeoutMs ?? 10_000,
  };
  const problems = positive(r);
  if (r.maxMessageBytes < 2 * WIRE_CHUNK_BYTES) {
    problems.push(`maxMessageBytes (${r.maxMessageBytes}) must be at least twice the chunk size (${WIRE_CHUNK_BYTES})`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(r);
}

export function resolveClient(o: ClientOptions): ResolvedClient {
  const own = {
    connectTimeoutMs: o.connectTimeoutMs ?? 5_000,
    connectInitialDelayMs: o.connectInitialDelayMs ?? 200,
    connectMaxDelayMs: o.connectMaxDelayMs ?? 5_000,
    connectMaxAttempts: o.connectMaxAttempts ?? 6,
    chunkBytes: o.chunkBytes ?? WIRE_CHUNK_BYTES,
    flowControlWindowBytes: o.flowControlWindowBytes ?? 16 * 1024 * 1024,
  };
  const serverRole = o.serverRole ?? 'coordinator';
  const channel = resolveChannel(o);
  const problems = positive(own);
  if (own.connectMaxDelayMs < own.connectInitialDelayMs) {
    problems.push(`connectMaxDelayMs (${own.connectMaxDelayMs}) must be >= connectInitialDelayMs (${own.connectInitialDelayMs})`);
  }
  if (own.chunkBytes > channel.maxMessageBytes / 2) {
    problems.push(`chunkBytes (${own.chunkBytes}) must be at most half of maxMessageBytes (${channel.maxMessageBytes})`);
  }
  if ((o.tls as unknown) === undefined) problems.push('tls must be the TLS material or null (plaintext, chosen explicitly), got undefined');
  if (serverRole !== 'coordinator' && serverRole !== 'reducer') problems.push(`serverRole must be coordinator or reducer, got ${JSON.stringify(serverRole)}`);
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze({ ...channel, ...own, serverRole, timeouts: { ...o.timeouts } });
}

function positive(values: Record<string, number>): string[] {
  return Object.entries(values)
    .filter(([, v]) => !(Number.isFinite(v) && v > 0))
    .map(([k, v]) => `${k} must be a positive number, got ${v}`);
}

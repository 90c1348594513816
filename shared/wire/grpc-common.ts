/**
 * What both edges of the gRPC adapter share: the Coordinator service
 * definition, loaded from proto/bertfleet.proto at run time, and the channel
 * options (message limits, keepalive; options.ts) set identically on both
 * sides. grpc.ts, grpc-server.ts and grpc-client.ts are the only importers of
 * @grpc/grpc-js and @grpc/proto-loader.
 */
import { fileURLToPath } from 'node:url';
import type * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ProtocolError } from '../errors.js';
import type { ResolvedChannel } from './options.js';

export const PROTO_PATH = fileURLToPath(new URL('../../proto/bertfleet.proto', import.meta.url));

/** uint64 as JS number (steps and byte counts stay far below 2^53). */
export const PROTO_LOADER_OPTIONS = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };

export function channelOptions(t: ResolvedChannel): grpc.ChannelOptions {
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


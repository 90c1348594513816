/**
 * The gRPC adapter: shared/wire/grpc*.ts are the only importers of
 * @grpc/grpc-js and @grpc/proto-loader. It loads proto/bertfleet.proto at run
 * time (grpc-common.ts), serves a `CoordinatorHandlers` (grpc-server.ts) and
 * opens `CoordinatorClient`s (grpc-client.ts), converting between grpc-js
 * calls and promises/async iterables, and between thrown bertfleet errors and
 * status codes (the table is status-codes.ts). Message limits and keepalive
 * (options.ts) are set explicitly and identically on both sides. With TLS
 * material both sides speak mTLS: the server requires a client certificate
 * signed by its CA and hands each handler the caller's identity
 * (CallContext.identity); the client checks the server's certificate names
 * the role it meant to reach. `tls: null` (plaintext) is never a default.
 *
 * Callers import from here; knows nothing of what the coordinator does with a
 * call or what a tensor means.
 */
export { WIRE_CHUNK_BYTES } from './chunks.js';
export { createCoordinatorClient } from './grpc-client.js';
export { loadCoordinatorService, PROTO_LOADER_OPTIONS, PROTO_PATH } from './grpc-common.js';
export { createServer, type CoordinatorServer, type ServerOptions } from './grpc-server.js';
export { MAX_MESSAGE_BYTES, type ChannelTuning, type ClientOptions } from './options.js';

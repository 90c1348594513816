/**
 * mTLS over real grpc-js on loopback with a trivial service defined here
 * (no bertfleet wire code): the server requires client certificates from its
 * CA, and the handler reads the caller's identity from
 * `call.getAuthContext()`. A worker's certificate binds its id; a client with
 * no certificate, or with one from another CA, is refused at the handshake
 * (UNAVAILABLE); a client refuses a server certificate of the wrong role.
 * The openssl commands of the README make a PKI that loadTlsMaterial and the
 * same gRPC connection accept.
 */
import * as grpc from '@grpc/grpc-js';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PeerIdentity } from '../../shared/security/identity.js';
import { identityOfAuthContext, serverIdentityCheck } from '../../shared/security/peer-identity.js';
import { makeThrowawayPki, type ThrowawayPki, type TlsFiles } from '../../shared/security/throwaway-pki.js';
import { loadTlsMaterial, type TlsMaterial } from '../../shared/security/tls-material.js';
import { makeTempDir } from '../helpers/tmp.js';

/** The README's commands for users who bring their own PKI (run with bash in an empty folder). */
export const OPENSSL_PKI_SCRIPT = `set -eu
umask 077
# 1. The CA (keep ca.key offline; it signs every certificate below).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \\
  -subj "/CN=bertfleet CA" -keyout ca.key -out ca.pem \\
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign"
# 2. One certificate per party: NAME, its SAN URI (the identity), its key usage, its host names.
issue() {
  printf 'basicConstraints=critical,CA:FALSE\\nkeyUsage=critical,digitalSignature\\nextendedKeyUsage=%s\\nsubjectAltName=URI:%s%s\\n' "$3" "$2" "$4" > "$1.ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" -keyout "$1.key" -out "$1.csr"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 90 -extfile "$1.ext" -out "$1.pem"
  rm "$1.csr" "$1.ext"
}
issue coordinator bertfleet:coordinator serverAuth,clientAuth ",DNS:coordinator.example.org,DNS:localhost,IP:127.0.0.1"
issue reducer-1   bertfleet:reducer:1   serverAuth,clientAuth ",DNS:reducer-1.example.org,DNS:localhost,IP:127.0.0.1"
issue nats        bertfleet:nats        serverAuth            ",DNS:nats.example.org,DNS:localhost,IP:127.0.0.1"
issue worker-w1   bertfleet:worker:w1   clientAuth            ""
`;

const identityService = {
  whoAmI: {
    path: '/bertfleet.test.Identity/WhoAmI',
    requestStream: false,
    responseStream: false,
    requestSerialize: (v: Buffer) => v,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (v: Buffer) => v,
    responseDeserialize: (b: Buffer) => b,
  },
} satisfies grpc.ServiceDefinition;
const IdentityClient = grpc.makeGenericClientConstructor(identityService, 'Identity');

interface Server {
  port: number;
  stop(): Promise<void>;
}

async function startServer(m: TlsMaterial): Promise<Server> {
  const server = new grpc.Server();
  server.addService(identityService, {
    whoAmI: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const ctx = call.getAuthContext();
      cb(null, Buffer.from(JSON.stringify({ transport: ctx.transportSecurityType, who: identityOfAuthContext(ctx) })));
    },
  });
  const creds = grpc.ServerCredentials.createSsl(m.ca, [{ cert_chain: m.cert, private_key: m.key }], true);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))));
  return { port, stop: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())) };
}

/** Calls WhoAmI with the given client credentials; resolves with the answer or the gRPC status code. */
async function whoAmI(port: number, creds: grpc.ChannelCredentials): Promise<{ transport?: string; who: PeerIdentity | null } | { code: grpc.status }> {
  const client = new IdentityClient(`127.0.0.1:${port}`, creds);
  try {
    return await new Promise((resolve) => {
      client.makeUnaryRequest(
        identityService.whoAmI.path,
        (v: Buffer) => v,
        (b: Buffer) => b,
        Buffer.alloc(0),
        { deadline: Date.now() + 10_000 },
        (err: grpc.ServiceError | null, res?: Buffer) => resolve(err ? { code: err.code } : JSON.parse(res!.toString())),
      );
    });
  } finally {
    client.close();
  }
}

const clientCreds = (m: TlsMaterial, expect: 'coordinator' | 'reducer' = 'coordinator') =>
  grpc.credentials.createSsl(m.ca, m.key, m.cert, { checkServerIdentity: serverIdentityCheck(expect) });

describe('mTLS with the throwaway PKI', () => {
  let pki: ThrowawayPki;
  let stranger: ThrowawayPki;
  let server: Server;

  beforeAll(async () => {
    pki = await makeThrowawayPki({ workerIds: ['w1'], reducers: 1 });
    stranger = await makeThrowawayPki({ workerIds: ['w1'] });
    server = await startServer(loadTlsMaterial(pki.coordinator, { role: 'coordinator' }));
  });

  afterAll(async () => {
    await server?.stop();
    pki?.remove();
    stranger?.remove();
  });

  it("binds a worker's id to its certificate", async () => {
    const w1 = loadTlsMaterial(pki.workers.get('w1')!, { role: 'worker', id: 'w1' });
    expect(await whoAmI(server.port, clientCreds(w1))).toEqual({ transport: 'ssl', who: { role: 'worker', id: 'w1' } });
  });

  it('knows the coordinator when it calls as a client (of a reducer)', async () => {
    const coordinator = loadTlsMaterial(pki.coordinator, { role: 'coordinator' });
    expect(await whoAmI(server.port, clientCreds(coordinator))).toEqual({ transport: 'ssl', who: { role: 'coordinator' } });
  });

  it('refuses a client without a certificate at the handshake', async () => {
    const ca = loadTlsMaterial(pki.coordinator).ca;
    expect(await whoAmI(server.port, grpc.credentials.createSsl(ca))).toEqual({ code: grpc.status.UNAVAILABLE });
  });

  it('refuses a client whose certificate comes from another CA', async () => {
    const foreign = loadTlsMaterial(stranger.workers.get('w1')!);
    const ourCa = loadTlsMaterial(pki.coordinator).ca;
    // It trusts our CA, so only the server's check of the client certificate can refuse it.
    expect(await whoAmI(server.port, grpc.credentials.createSsl(ourCa, foreign.key, foreign.cert))).toEqual({ code: grpc.status.UNAVAILABLE });
  });

  it('refuses a plaintext client', async () => {
    expect(await whoAmI(server.port, grpc.credentials.createInsecure())).toEqual({ code: grpc.status.UNAVAILABLE });
  });

  it('makes a client refuse a server certificate of another role', async () => {
    const w1 = loadTlsMaterial(pki.workers.get('w1')!);
    expect(await whoAmI(server.port, clientCreds(w1, 'reducer'))).toEqual({ code: grpc.status.UNAVAILABLE });
  });
});

describe("a user's own PKI made with the README's openssl commands", () => {
  let dir: { dir: string; remove: () => Promise<void> };
  let server: Server;
  const files = (name: string): TlsFiles => ({ ca: join(dir.dir, 'ca.pem'), cert: join(dir.dir, `${name}.pem`), key: join(dir.dir, `${name}.key`) });

  beforeAll(async () => {
    dir = await makeTempDir('openssl-pki');
    execFileSync('bash', ['-c', OPENSSL_PKI_SCRIPT], { cwd: dir.dir, stdio: 'pipe' });
  });

  afterAll(async () => {
    await server?.stop();
    await dir?.remove();
  });

  it('passes loadTlsMaterial for every role', () => {
    expect(loadTlsMaterial(files('coordinator'), { role: 'coordinator' }).identity).toEqual({ role: 'coordinator' });
    expect(loadTlsMaterial(files('reducer-1'), { role: 'reducer', id: '1' }).identity).toEqual({ role: 'reducer', id: '1' });
    expect(loadTlsMaterial(files('nats'), { role: 'nats' }).identity).toEqual({ role: 'nats' });
    expect(loadTlsMaterial(files('worker-w1'), { role: 'worker', id: 'w1' }).identity).toEqual({ role: 'worker', id: 'w1' });
  });

  it('carries a worker identity over a gRPC mTLS connection', async () => {
    server = await startServer(loadTlsMaterial(files('coordinator'), { role: 'coordinator' }));
    const w1 = loadTlsMaterial(files('worker-w1'), { role: 'worker', id: 'w1' });
    expect(await whoAmI(server.port, clientCreds(w1))).toEqual({ transport: 'ssl', who: { role: 'worker', id: 'w1' } });
  });
});

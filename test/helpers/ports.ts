/**
 * Loopback ports for integration tests: a free one to hand to a server, and a
 * check that a stopped server really released its port. A port found free can
 * be taken by someone else before it is used; tests that can let the server
 * pick (port 0) should.
 */
import { createServer } from 'node:net';
import { freeLoopbackPort } from '../../cli/child-processes.js';

/** A TCP port on `host` that nothing listened on a moment ago (the same helper the local cluster uses). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return freeLoopbackPort(host);
}

/** True when a listener can bind `host:port` now (and releases it again). */
export function isPortFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' ? resolve(false) : reject(err)));
    srv.listen(port, host, () => srv.close((err) => (err ? reject(err) : resolve(true))));
  });
}

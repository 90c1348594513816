/**
 * Why a TLS connection to a gRPC peer fails, in words. grpc-js only says
 * "Failed to connect before the deadline" when a handshake is refused (and
 * nothing at all when the server refuses our certificate after a TLS 1.3
 * handshake), so after a failed connection the client opens one plain TLS
 * connection of its own with the same material and checks, and reports what
 * went wrong: the server's certificate is not from our CA or not of the role
 * expected, or the server refused ours (no certificate, another CA).
 *
 * Knows node:tls only; nothing of gRPC or of what the peer serves.
 */
import { connect, type PeerCertificate } from 'node:tls';

export interface TlsProbeTarget {
  host: string;
  port: number;
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  checkServerIdentity: (hostname: string, cert: PeerCertificate) => Error | undefined;
}

/** How long a server has, after the handshake, to refuse the client's certificate (a TLS 1.3 alert arrives then). */
const ALERT_WAIT_MS = 500;

/**
 * Resolves to a sentence saying why the TLS handshake failed, or null when
 * it succeeded or the failure is not TLS's (nothing listens, the host is
 * unknown): those are for the caller's usual "unreachable".
 */
export function probeTlsHandshake(t: TlsProbeTarget, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (why: string | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(why);
    };
    const socket = connect({
      host: t.host, port: t.port, ca: t.ca, cert: t.cert, key: t.key, ALPNProtocols: ['h2'],
      checkServerIdentity: t.checkServerIdentity,
      // No SNI for an IP address (RFC 6066); a host name is sent as is.
      ...(isIpLiteral(t.host) ? {} : { servername: t.host }),
    });
    const timer = setTimeout(() => done(null), timeoutMs);
    socket.once('secureConnect', () => {
      if (!socket.authorized) {
        done(`the server's certificate was refused: ${socket.authorizationError?.toString() ?? 'not authorized'}`);
        return;
      }
      // Accepted so far; a TLS 1.3 server refusing our certificate does so right after (an alert, or it just closes).
      setTimeout(() => done(null), ALERT_WAIT_MS).unref();
      socket.once('close', () => done("the server closed the connection right after the handshake: it refused this client's certificate (not signed by its CA?)"));
    });
    socket.on('data', () => undefined);
    socket.once('error', (err: NodeJS.ErrnoException) => done(describeTlsError(err)));
  });
}

function isIpLiteral(host: string): boolean {
  return /^[0-9.]+$/.test(host) || host.includes(':');
}

/** null for socket-level failures (no TLS involved), else what the handshake error means. */
function describeTlsError(err: NodeJS.ErrnoException): string | null {
  const code = err.code ?? '';
  if (['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE'].includes(code)) return null;
  const msg = err.message.split('\n')[0]!.replace(/^[0-9A-F]+:error:[0-9A-F]+:SSL routines:[^:]*:/, '').replace(/:\.\.\/deps\/openssl.*$/, '');
  if (/alert certificate required/i.test(msg)) return `the server requires a client certificate and got none (${msg})`;
  if (/alert (unknown ca|bad certificate|certificate unknown|unsupported certificate|handshake failure|decrypt error)/i.test(msg)) {
    return `the server refused this client's certificate (not signed by its CA?) (${msg})`;
  }
  if (code.startsWith('ERR_TLS_') || code.includes('CERT') || code === 'SELF_SIGNED_CERT_IN_CHAIN' || /certificate|peer certificate/i.test(msg)) {
    return `the server's certificate was refused: ${msg}`;
  }
  if (/SSL|TLS|alert|wrong version number|packet length/i.test(msg)) return msg;
  return null;
}

/**
 * Services of emulated pods on one host. A ClusterIP Service port is a TCP
 * proxy on 127.0.0.1 that, like kube-proxy, sends each new connection to one
 * ready endpoint (a pod its selector matches, ready and not terminating;
 * round robin) at the pod's local port for the targetPort; with no ready
 * endpoint the connection is closed at once, as a refused one would be.
 * Open connections outlive a change of endpoints until either side closes,
 * as conntrack keeps them. Headless Services (clusterIP: None) have no proxy:
 * `<pod>.<service>` names the pod itself (k8s-rewrite.ts resolves it).
 * Also the kubelet's service-link environment variables.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { Service } from './k8s-manifest.js';

export interface Endpoint {
  /** The local port of the pod's container port that the Service port targets. */
  port: number;
}

export interface ServicePortProxy {
  service: string;
  servicePort: number;
  name?: string;
  /** The local port that stands for the Service's virtual IP and port. */
  localPort: number;
}

export class ServiceProxies {
  readonly ports: ServicePortProxy[] = [];
  private readonly servers: Server[] = [];
  private readonly sockets = new Set<Socket>();
  private turn = 0;

  /** `endpoints(service, servicePort)`: the ready endpoints right now. */
  constructor(private readonly endpoints: (svc: Service, servicePort: number) => Endpoint[]) {}

  async add(svc: Service): Promise<void> {
    for (const p of svc.spec.ports) {
      const server = createServer((client) => this.forward(client, svc, p.port));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve());
      });
      this.servers.push(server);
      const address = server.address();
      if (address === null || typeof address === 'string') throw new Error(`service ${svc.metadata.name}: proxy has no TCP address`);
      this.ports.push({ service: svc.metadata.name, servicePort: p.port, ...(p.name !== undefined && { name: p.name }), localPort: address.port });
    }
  }

  localPort(service: string, servicePort: number): number | undefined {
    return this.ports.find((p) => p.service === service && p.servicePort === servicePort)?.localPort;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }

  private forward(client: Socket, svc: Service, servicePort: number): void {
    this.track(client);
    const ready = this.endpoints(svc, servicePort);
    if (ready.length === 0) {
      client.destroy();
      return;
    }
    const target = ready[this.turn++ % ready.length]!;
    const upstream = this.track(createConnection({ host: '127.0.0.1', port: target.port }));
    client.pipe(upstream);
    upstream.pipe(client);
    // Either side failing or closing ends the pair; errors are the peer going away.
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  private track(s: Socket): Socket {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    return s;
  }
}

/** `bertfleet-nats` → `BERTFLEET_NATS`, as the kubelet names service-link variables. */
function envName(service: string): string {
  return service.toUpperCase().replace(/-/g, '_');
}

/**
 * The service-link variables (enableServiceLinks, on by default) for every
 * ClusterIP Service, with 127.0.0.1 and the proxy's local port standing for
 * the virtual IP and Service port.
 */
export function serviceLinkEnv(services: readonly Service[], proxies: ServiceProxies): Record<string, string> {
  const env: Record<string, string> = {};
  for (const svc of services) {
    const ports = proxies.ports.filter((p) => p.service === svc.metadata.name);
    if (ports.length === 0) continue;
    const n = envName(svc.metadata.name);
    env[`${n}_SERVICE_HOST`] = '127.0.0.1';
    env[`${n}_SERVICE_PORT`] = String(ports[0]!.localPort);
    env[`${n}_PORT`] = `tcp://127.0.0.1:${ports[0]!.localPort}`;
    for (const p of ports) {
      if (p.name !== undefined) env[`${n}_SERVICE_PORT_${envName(p.name)}`] = String(p.localPort);
      const prefix = `${n}_PORT_${p.localPort}_TCP`;
      env[prefix] = `tcp://127.0.0.1:${p.localPort}`;
      env[`${prefix}_PROTO`] = 'tcp';
      env[`${prefix}_PORT`] = String(p.localPort);
      env[`${prefix}_ADDR`] = '127.0.0.1';
    }
  }
  return env;
}

/**
 * The pod emulator's kubelet and kube-proxy semantics, without processes:
 * `$(VAR)` expansion (cases from the kubelet's expansion tests), env built in
 * order with fieldRef, the rewrites for one shared host and their undoing,
 * image names, a Service proxy that routes only to ready endpoints, and the
 * Secret commands taken from k8s/README.md.
 */
import { readFileSync } from 'node:fs';
import { createServer, connect, type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { containerEnv, expand, type PodFields } from '../helpers/k8s-expansion.js';
import { GUIDE, guideSecretCommands } from '../helpers/k8s-guide.js';
import { imageName } from '../helpers/k8s-images.js';
import { rewriteValue, undoRewrites, type Rewrite, type RewriteContext } from '../helpers/k8s-rewrite.js';
import { ServiceProxies } from '../helpers/k8s-services.js';
import type { Service } from '../helpers/k8s-manifest.js';

describe('$(VAR) expansion, as the kubelet does it', () => {
  const vars: Record<string, string> = { VAR_A: 'A', VAR_B: 'B', VAR_EMPTY: '' };
  const lookup = (n: string): string | undefined => vars[n];
  it.each([
    ['$(VAR_A)', 'A'],
    ['___$(VAR_B)___', '___B___'],
    ['$(VAR_A)-$(VAR_B)', 'A-B'],
    ['x$(VAR_EMPTY)y', 'xy'],
    ['$(VAR_DNE)', '$(VAR_DNE)'],
    ['$$(VAR_A)', '$(VAR_A)'],
    ['$$$(VAR_A)', '$A'],
    ['$$$$$$(VAR_A)', '$$$(VAR_A)'],
    ['$(VAR_A', '$(VAR_A'],
    ['$VAR_A', '$VAR_A'],
    ['foo$()bar', 'foo$()bar'],
    ['trailing $', 'trailing $'],
  ])('%s → %s', (input, want) => {
    expect(expand(input, lookup)).toBe(want);
  });

  it('builds env in order: a value sees the variables before it, fieldRef gives the pod name', () => {
    const pod: PodFields = { name: 'bertfleet-worker-3', namespace: 'default', labels: { 'apps.kubernetes.io/pod-index': '3' }, annotations: {}, podIP: '127.0.0.1' };
    const env = containerEnv([
      { name: 'EARLY', value: 'x-$(POD_NAME)' },
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'INDEX', valueFrom: { fieldRef: { fieldPath: "metadata.labels['apps.kubernetes.io/pod-index']" } } },
      { name: 'CERT', value: '/tls/worker-$(POD_NAME).pem' },
      { name: 'LINK', value: '$(SVC_HOST)' },
    ], { SVC_HOST: '127.0.0.1' }, pod);
    expect(env).toEqual([
      { name: 'EARLY', value: 'x-$(POD_NAME)' },
      { name: 'POD_NAME', value: 'bertfleet-worker-3' },
      { name: 'INDEX', value: '3' },
      { name: 'CERT', value: '/tls/worker-bertfleet-worker-3.pem' },
      { name: 'LINK', value: '127.0.0.1' },
    ]);
  });
});

describe('rewrites for one shared host', () => {
  const ctx: RewriteContext = {
    mounts: [
      { mountPath: '/etc/bertfleet', hostPath: '/h/cm' },
      { mountPath: '/etc/bertfleet-tls', hostPath: '/h/secret' },
      { mountPath: '/tmp', hostPath: '/tmp/emu/tmp' },
    ],
    ownPorts: new Map([[50051, 40001], [9400, 40002], [4222, 40003]]),
    resolve: (host, port) => (host === 'bertfleet-nats' && port === 4222 ? { port: 41000, what: 'service' } : undefined),
  };

  it.each([
    ['--listen=0.0.0.0:50051', '--listen=0.0.0.0:40001'],
    ['--health-port=9400', '--health-port=40002'],
    ['4222', '40003'],
    ['--nats=nats://bertfleet-nats:4222', '--nats=nats://127.0.0.1:41000'],
    ['--config=/etc/bertfleet/run-config.json', '--config=/h/cm/run-config.json'],
    ['/etc/bertfleet-tls/ca.pem', '/h/secret/ca.pem'],
    ['--x=/tmp/a', '--x=/tmp/emu/tmp/a'],
    ['--workers=2', '--workers=2'],
    ['--coordinator=elsewhere:50051', '--coordinator=elsewhere:50051'],
    ['/etc/bertfleetx/file', '/etc/bertfleetx/file'],
  ])('%s → %s, and back', (spec, want) => {
    const records: Rewrite[] = [];
    const got = rewriteValue(spec, 'args[0]', ctx, records);
    expect(got).toBe(want);
    expect(undoRewrites(got, records)).toBe(spec);
  });

  it('a change without its record is not undone', () => {
    expect(undoRewrites('--nats=nats://127.0.0.1:41000', [])).not.toBe('--nats=nats://bertfleet-nats:4222');
  });
});

describe('images and the guide', () => {
  it.each([
    ['bertfleet:0.1.0', 'bertfleet'],
    ['registry.example.com:5000/team/bertfleet:0.1.0@sha256:abc', 'bertfleet'],
    ['nats', 'nats'],
  ])('image %s is %s', (image, want) => expect(imageName(image)).toBe(want));

  it("takes k8s/README.md's pki init and every kubectl create secret", () => {
    const commands = guideSecretCommands(readFileSync(GUIDE, 'utf8'));
    expect(commands[0]).toMatch(/^bertfleet pki init /);
    const names = commands.slice(1).map((c) => /^kubectl create secret generic (\S+)/.exec(c)?.[1]);
    expect(names).toEqual(['bertfleet-nats-tls', 'bertfleet-coordinator-tls', 'bertfleet-worker-tls', 'bertfleet-reducer-tls']);
  });
});

describe('a Service proxy', () => {
  it('closes connections while no endpoint is ready and forwards once one is', async () => {
    const backend = createServer((s) => s.end('pong'));
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', () => r()));
    let ready = false;
    const proxies = new ServiceProxies(() => (ready ? [{ port: (backend.address() as AddressInfo).port }] : []));
    const svc: Service = { kind: 'Service', metadata: { name: 'svc' }, spec: { selector: { app: 'x' }, ports: [{ port: 80 }] } };
    await proxies.add(svc);
    const read = (): Promise<string> => new Promise((resolve) => {
      let got = '';
      const s = connect(proxies.localPort('svc', 80)!, '127.0.0.1');
      s.on('data', (d) => (got += d.toString()));
      s.on('close', () => resolve(got));
      s.on('error', () => resolve(got));
    });
    try {
      expect(await read()).toBe('');
      ready = true;
      expect(await read()).toBe('pong');
    } finally {
      await proxies.close();
      await new Promise((r) => backend.close(r));
    }
  });
});

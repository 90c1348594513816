/**
 * k8s/ agrees with the program it runs (test/helpers/k8s-checks.ts), on the
 * rendered base and every overlay: every flag a container passes is one its
 * `bertfleet` command reads (the CLI's option tables, parsed as the CLI
 * parses them, values checked by its own readers) and every environment
 * variable one it reads; ports agree across args, containerPorts, Services,
 * probes, Prometheus annotations and NetworkPolicies (every address a pod
 * dials resolves, and the policies let that pod in); the ConfigMap's
 * run-config.json is exactly a run config; paths in args and env lie on
 * volume mounts, the output on a persistent writable volume, the caches a
 * read-only root needs on writable ones. Each check is also shown to catch
 * the mistake it is for, on a mutated copy of a render.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseDockerfile, workdirOf } from '../helpers/dockerfile.js';
import { flagAndEnvProblems, hygieneProblems, networkProblems, portProblems, volumeProblems } from '../helpers/k8s-checks.js';
import { OVERLAYS } from '../helpers/k8s-objects.js';
import { parseYamlDocuments, renderOverlay, REPO_ROOT, type K8sObject } from '../helpers/kubectl.js';

const renders = new Map<string, K8sObject[]>();
const fetchPod = parseYamlDocuments(readFileSync(join(REPO_ROOT, 'k8s/fetch-results.yaml'), 'utf8'), 'k8s/fetch-results.yaml')[0]!;
const stages = parseDockerfile(readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8'));
/** The CPU image's WORKDIR, against which a relative data.cacheDir lands. */
const WORKDIR = workdirOf(stages, stages.at(-1)!);

beforeAll(async () => {
  for (const dir of OVERLAYS) renders.set(dir, await renderOverlay(dir));
});

const CHECKS: Record<string, (objs: K8sObject[]) => string[]> = {
  'flags and environment': flagAndEnvProblems,
  ports: portProblems,
  'addresses and NetworkPolicies': networkProblems,
  'volumes and the run config': (objs) => volumeProblems(objs, WORKDIR),
  'resources, security context and images': (objs) => hygieneProblems(objs, fetchPod),
};

describe('k8s/ agrees with bertfleet', () => {
  for (const dir of OVERLAYS) {
    for (const [name, check] of Object.entries(CHECKS)) {
      it(`${dir}: ${name}`, () => {
        expect(check(renders.get(dir)!)).toEqual([]);
      });
    }
  }

  it('gives the GPU overlay the base\'s run config but for the backend', () => {
    const runConfig = (dir: string) => JSON.parse(renders.get(dir)!.find((o) => o.kind === 'ConfigMap' && String(o.metadata.name).startsWith('bertfleet-run'))!.data['run-config.json']);
    const { backend: gpuBackend, ...gpu } = runConfig('k8s/overlays/gpu');
    const { backend: _cpuBackend, ...base } = runConfig('k8s/base');
    expect(gpuBackend).toBe('tfjs-node-gpu');
    expect(gpu).toEqual(base);
  });
});

/** A mutated copy of a render; `at` finds the object to change. */
function mutated(dir: string, change: (find: (kind: string, name: string) => K8sObject) => void): K8sObject[] {
  const objs = structuredClone(renders.get(dir)!);
  change((kind, name) => {
    const o = objs.find((x) => x.kind === kind && String(x.metadata.name).startsWith(name));
    if (o === undefined) throw new Error(`${dir} has no ${kind} ${name}`);
    return o;
  });
  return objs;
}

const container = (o: K8sObject): K8sObject => o.spec.template.spec.containers[0];

describe('the checks catch', () => {
  const cases: [string, keyof typeof CHECKS, string, (find: (kind: string, name: string) => K8sObject) => void, RegExp][] = [
    ['a misspelt flag', 'flags and environment', 'k8s/base', (f) => container(f('StatefulSet', 'bertfleet-worker')).args.push('--health-prot=1'), /refuses its args: Unknown option '--health-prot'/],
    ['a bad flag value', 'flags and environment', 'k8s/base', (f) => container(f('StatefulSet', 'bertfleet-coordinator')).args.push('--when-done=linger'), /--when-done must be exit or stay/],
    ['a backend flag', 'flags and environment', 'k8s/overlays/gpu', (f) => container(f('StatefulSet', 'bertfleet-worker')).args.push('--backend=tfjs-node-gpu'), /--backend in args/],
    ['an environment variable no one reads', 'flags and environment', 'k8s/base', (f) => container(f('StatefulSet', 'bertfleet-worker')).env.push({ name: 'BERTFLEET_TLS_CERTS', value: '/x' }), /env BERTFLEET_TLS_CERTS is read by no one/],
    ['an undefined $(VAR)', 'flags and environment', 'k8s/base', (f) => container(f('StatefulSet', 'bertfleet-coordinator')).args.push('--worker-id=$(POD_NAME)'), /refuses its args|\$\(POD_NAME\) is not defined/],
    ['a health port that is not the named one', 'ports', 'k8s/base', (f) => { container(f('StatefulSet', 'bertfleet-worker')).ports[0].containerPort = 9999; }, /--health-port 9401 is not the container port named health \(9999\)/],
    ['a Prometheus annotation on the wrong port', 'ports', 'k8s/base', (f) => { f('StatefulSet', 'bertfleet-coordinator').spec.template.metadata.annotations['prometheus.io/port'] = '50051'; }, /prometheus.io\/port 9400 expected/],
    ['a probe on the gRPC port', 'ports', 'k8s/base', (f) => { container(f('StatefulSet', 'bertfleet-coordinator')).readinessProbe.httpGet.port = 'grpc'; }, /readinessProbe is not an HTTP GET on the health port/],
    ['a Service targetPort no container has', 'ports', 'k8s/base', (f) => { f('Service', 'bertfleet-coordinator').spec.ports[0].targetPort = 'grpcc'; }, /targetPort grpcc is no container port/],
    ['a loopback health host', 'ports', 'k8s/base', (f) => container(f('StatefulSet', 'bertfleet-worker')).args.push('--health-host=127.0.0.1'), /is loopback/],
    ['an address no Service serves', 'addresses and NetworkPolicies', 'k8s/base', (f) => { const a = container(f('StatefulSet', 'bertfleet-worker')).args; a[a.findIndex((x: string) => x.startsWith('--coordinator='))] = '--coordinator=bertfleet-coordinator:50052'; }, /Service bertfleet-coordinator has no port 50052/],
    ['a NetworkPolicy that shuts workers out', 'addresses and NetworkPolicies', 'k8s/base', (f) => { f('NetworkPolicy', 'bertfleet-nats').spec.ingress[0].from[0].podSelector.matchExpressions[0].values = ['bertfleet-coordinator']; }, /bertfleet-worker -> bertfleet-nats:4222 .* blocked by NetworkPolicy/],
    ['a NetworkPolicy that shuts workers out of a reducer', 'addresses and NetworkPolicies', 'k8s/overlays/reducers', (f) => { f('NetworkPolicy', 'bertfleet-reducer').spec.ingress[0].from[0].podSelector.matchExpressions[0].values = ['bertfleet-coordinator']; }, /bertfleet-worker -> bertfleet-reducer-0.bertfleet-reducer:50061 .* blocked/],
    ['a reducer pod missing from --reducers', 'addresses and NetworkPolicies', 'k8s/overlays/reducers', (f) => { f('StatefulSet', 'bertfleet-reducer').spec.replicas = 3; }, /the reducer pods are bertfleet-reducer-0, bertfleet-reducer-1, bertfleet-reducer-2/],
    ['a config path on no ConfigMap key', 'volumes and the run config', 'k8s/base', (f) => { const a = container(f('StatefulSet', 'bertfleet-coordinator')).args; a[a.findIndex((x: string) => x.startsWith('--config='))] = '--config=/etc/bertfleet/run.json'; }, /ConfigMap bertfleet-run-\w+ has no key run.json/],
    ['an unknown run-config key', 'volumes and the run config', 'k8s/base', (f) => { const cm = f('ConfigMap', 'bertfleet-run'); cm.data['run-config.json'] = JSON.stringify({ ...JSON.parse(cm.data['run-config.json']), backnd: 'cpu' }); }, /Unrecognized key.*backnd/],
    ['a TLS file on no mount', 'volumes and the run config', 'k8s/base', (f) => { container(f('StatefulSet', 'bertfleet-worker')).volumeMounts.shift(); }, /\/etc\/bertfleet-tls\/ca.pem is on no volume mount/],
    ['an output on a scratch volume', 'volumes and the run config', 'k8s/base', (f) => { const a = container(f('StatefulSet', 'bertfleet-coordinator')).args; a[a.findIndex((x: string) => x.startsWith('--output='))] = '--output=/tmp/run'; }, /--output \/tmp\/run is not on a writable volume claim/],
    ['no writable /tmp', 'volumes and the run config', 'k8s/base', (f) => { const c = container(f('StatefulSet', 'bertfleet-worker')); c.volumeMounts = c.volumeMounts.filter((m: K8sObject) => m.mountPath !== '/tmp'); }, /\/tmp is not on a writable volume/],
    ['no writable data cache', 'volumes and the run config', 'k8s/base', (f) => { const c = container(f('StatefulSet', 'bertfleet-worker')); c.volumeMounts = c.volumeMounts.filter((m: K8sObject) => !String(m.mountPath).endsWith('.cache')); }, /data.cacheDir \/opt\/bertfleet\/.cache\/bertfleet is not on a writable volume/],
    ['a container without limits', 'resources, security context and images', 'k8s/base', (f) => { delete container(f('StatefulSet', 'bertfleet-nats')).resources.limits; }, /bertfleet-nats\/nats: no limits.cpu/],
    ['a NATS image without its digest', 'resources, security context and images', 'k8s/base', (f) => { container(f('StatefulSet', 'bertfleet-nats')).image = 'nats:2.10.22-alpine'; }, /the official NATS image is pinned by digest/],
    ['a second reference to the image', 'resources, security context and images', 'k8s/base', (f) => { container(f('StatefulSet', 'bertfleet-worker')).image = 'bertfleet:0.2.0'; }, /image bertfleet under two references/],
  ];
  for (const [what, check, dir, change, message] of cases) {
    it(what, () => {
      const problems = CHECKS[check]!(mutated(dir, change));
      expect(problems.join('\n')).toMatch(message);
    });
  }
});

/**
 * k8s/ rendered as `kubectl kustomize` renders it (the base and every
 * overlay) and every object validated against the Kubernetes API schemas with
 * unknown fields rejected, offline (test/helpers/k8s-schema.ts); the same for
 * k8s/fetch-results.yaml, which no kustomization includes. The validator is
 * shown to reject what it must: an unknown field at any depth, a wrong type,
 * a bad enum value, a missing required field.
 */
import { readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { describeProblems, validateObject } from '../helpers/k8s-schema.js';
import { OVERLAYS } from '../helpers/k8s-objects.js';
import { kubectlPath, parseYamlDocuments, renderOverlay, REPO_ROOT, type K8sObject } from '../helpers/kubectl.js';

const rendered = new Map<string, K8sObject[]>();

beforeAll(async () => {
  for (const dir of OVERLAYS) rendered.set(dir, await renderOverlay(dir));
});

function fetchResults(): K8sObject[] {
  return parseYamlDocuments(readFileSync(join(REPO_ROOT, 'k8s/fetch-results.yaml'), 'utf8'), 'k8s/fetch-results.yaml');
}

async function problemsOf(objs: readonly K8sObject[]): Promise<string[]> {
  const out: string[] = [];
  for (const o of objs) out.push(...describeProblems(o, await validateObject(o)));
  return out;
}

describe('k8s/ renders', () => {
  it('renders the base and every overlay to objects that all have a kind and a name', () => {
    for (const dir of OVERLAYS) {
      const objs = rendered.get(dir)!;
      expect(objs.length, dir).toBeGreaterThan(5);
      for (const o of objs) {
        expect(typeof o.kind, `${dir}: ${JSON.stringify(o).slice(0, 80)}`).toBe('string');
        expect(typeof o.metadata?.name, `${dir}: a ${String(o.kind)} without a name`).toBe('string');
      }
    }
  });

  it('gives every object of a render a distinct kind and name', () => {
    for (const dir of OVERLAYS) {
      const keys = rendered.get(dir)!.map((o) => `${o.kind}/${o.metadata.name}`);
      expect(keys.filter((k, i) => keys.indexOf(k) !== i), dir).toEqual([]);
    }
  });
});

describe('k8s/ against the Kubernetes schemas (unknown fields rejected)', () => {
  for (const dir of OVERLAYS) {
    it(`validates every object of ${dir}`, async () => {
      expect(await problemsOf(rendered.get(dir)!)).toEqual([]);
    });
  }

  it('validates k8s/fetch-results.yaml', async () => {
    const objs = fetchResults();
    expect(objs.map((o) => o.kind)).toEqual(['Pod']);
    expect(await problemsOf(objs)).toEqual([]);
  });
});

describe('the schema validator', () => {
  const worker = (): K8sObject => structuredClone(rendered.get('k8s/overlays/cpu')!.find((o) => o.kind === 'StatefulSet' && o.metadata.name === 'bertfleet-worker')!);

  it('rejects an unknown field, at the top and deep in a container', async () => {
    const o = worker();
    o.spec.replica = 3;
    o.spec.template.spec.containers[0].livenessProbe.httpGet.portt = 'health';
    o.metadata.label = { a: 'b' };
    const paths = (await validateObject(o)).map((p) => `${p.path} ${p.message}`);
    expect(paths).toEqual(expect.arrayContaining([
      '/spec/replica unknown field (not in the schema)',
      '/spec/template/spec/containers/0/livenessProbe/httpGet/portt unknown field (not in the schema)',
      '/metadata/label unknown field (not in the schema)',
    ]));
    expect(paths).toHaveLength(3);
  });

  it('rejects a wrong type, a bad enum value and a missing required field', async () => {
    const o = worker();
    o.spec.replicas = '2';
    o.spec.template.spec.containers[0].imagePullPolicy = 'Sometimes';
    delete o.spec.template.spec.containers[0].name;
    const problems = await validateObject(o);
    expect(problems.map((p) => p.path).sort()).toEqual([
      '/spec/replicas',
      '/spec/template/spec/containers/0',
      '/spec/template/spec/containers/0/imagePullPolicy',
    ]);
  });

  it('accepts any key in maps: labels, annotations, ConfigMap data, resource limits', async () => {
    const o = worker();
    o.spec.template.metadata.labels['example.com/any'] = 'x';
    o.spec.template.metadata.annotations = { ...o.spec.template.metadata.annotations, 'example.com/note': 'y' };
    o.spec.template.spec.containers[0].resources.limits['example.com/device'] = 2;
    expect(await validateObject(o)).toEqual([]);
    const cm = rendered.get('k8s/base')!.find((x) => x.kind === 'ConfigMap')!;
    expect(await validateObject({ ...cm, data: { ...cm.data, 'other.json': '{}' } })).toEqual([]);
  });

  it('refuses a kind it has no schema for', async () => {
    expect(await validateObject({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } }))
      .toEqual([{ path: '/', message: 'no Kubernetes schema for example.com/v1 Widget' }]);
  });
});

describe('kubectlPath', () => {
  it('finds kubectl on PATH, else .tools/kubectl, else says to run scripts/setup.sh', () => {
    const saved = process.env['PATH'];
    try {
      expect(kubectlPath()).toMatch(/kubectl$/);
      process.env['PATH'] = ['/nonexistent-a', '/nonexistent-b'].join(delimiter);
      let found: string | Error;
      try {
        found = kubectlPath();
      } catch (err) {
        found = err as Error;
      }
      // Which of the two depends on the machine: .tools/kubectl exists where setup had to extract it.
      if (typeof found === 'string') expect(found).toBe(join(REPO_ROOT, '.tools', 'kubectl'));
      else expect(found.message).toMatch(/run scripts\/setup\.sh/);
    } finally {
      process.env['PATH'] = saved;
    }
  });
});

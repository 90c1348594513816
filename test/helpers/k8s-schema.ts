/**
 * Offline validation of Kubernetes objects against the API's own schemas,
 * with unknown fields rejected, as `kubectl apply --validate=strict` would
 * against a server (no cluster here).
 *
 * The schemas are those of the npm package kubernetes-models (generated from
 * the Kubernetes OpenAPI spec, one compiled ajv validator per type; 4.5.1
 * has the API of Kubernetes 1.32, e.g. PodSpec.resources). Its validators check types, enums, formats and
 * required fields but, like the API's OpenAPI spec, allow unknown fields. So
 * the object is validated through a proxy that records every field the
 * validator reads: a compiled validator reads exactly the properties its
 * schema lists, and every key of a map (labels, annotations, ConfigMap data,
 * resource limits: `additionalProperties` schemas, which it iterates). A key
 * it never read is a field the schema does not have. That holds for every
 * type with listed properties or a map schema; a free-form object
 * (`x-kubernetes-preserve-unknown-fields`, RawExtension) would be reported
 * whole, and bertfleet's manifests have none.
 */
import type { K8sObject } from './kubectl.js';

/** One problem with an object: where (a JSON pointer) and what. */
export interface SchemaProblem {
  path: string;
  message: string;
}

interface ModelClass {
  prototype: { validate(this: unknown): void };
}

/** The kubernetes-models class of `apiVersion`/`kind` (e.g. apps/v1 StatefulSet); undefined when the package has none. */
async function modelOf(apiVersion: string, kind: string): Promise<ModelClass | undefined> {
  if (!/^[a-z0-9.]*\/?v[0-9a-z]+$/.test(apiVersion) || !/^[A-Z][A-Za-z0-9]*$/.test(kind)) return undefined;
  try {
    const mod = (await import(`kubernetes-models/${apiVersion}/${kind}`)) as Record<string, ModelClass | undefined>;
    return mod[kind];
  } catch (err) {
    // Node says ERR_MODULE_NOT_FOUND / ERR_PACKAGE_PATH_NOT_EXPORTED; vitest's resolver only says it in words.
    const { code, message } = err as NodeJS.ErrnoException;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'ERR_PACKAGE_PATH_NOT_EXPORTED' || /is not exported|Cannot find module/.test(message)) return undefined;
    throw err;
  }
}

/** A deep proxy of `root` and, per object reached through it, the keys that were read. */
function tracked(root: object): { proxy: object; reads: WeakMap<object, Set<string>> } {
  const reads = new WeakMap<object, Set<string>>();
  const proxies = new WeakMap<object, object>();
  const wrap = (value: unknown): unknown => {
    if (value === null || typeof value !== 'object') return value;
    let p = proxies.get(value);
    if (p === undefined) {
      const seen = new Set<string>();
      reads.set(value, seen);
      p = new Proxy(value, {
        get(target, key, receiver) {
          if (typeof key === 'string') seen.add(key);
          return wrap(Reflect.get(target, key, receiver));
        },
      });
      proxies.set(value, p);
    }
    return p;
  };
  return { proxy: wrap(root) as object, reads };
}

const pointer = (parts: readonly (string | number)[]): string =>
  parts.length === 0 ? '/' : parts.map((p) => `/${String(p).replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');

/** Fields of objects the validator reached but never read: unknown to the schema. Not below an unknown field. */
function unknownFields(value: unknown, reads: WeakMap<object, Set<string>>, at: (string | number)[]): SchemaProblem[] {
  if (value === null || typeof value !== 'object') return [];
  const seen = reads.get(value);
  if (seen === undefined) return []; // never reached: its parent's check reports it
  if (Array.isArray(value)) return value.flatMap((v, i) => unknownFields(v, reads, [...at, i]));
  return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) =>
    seen.has(k) ? unknownFields(v, reads, [...at, k]) : [{ path: pointer([...at, k]), message: 'unknown field (not in the schema)' }],
  );
}

/** Every problem with `obj` against the schema of its apiVersion/kind, unknown fields included; [] when valid. */
export async function validateObject(obj: K8sObject): Promise<SchemaProblem[]> {
  const { apiVersion, kind } = obj;
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') {
    return [{ path: '/', message: `expected string apiVersion and kind, got ${JSON.stringify(apiVersion)} and ${JSON.stringify(kind)}` }];
  }
  const model = await modelOf(apiVersion, kind);
  if (model === undefined) return [{ path: '/', message: `no Kubernetes schema for ${apiVersion} ${kind}` }];
  const { proxy, reads } = tracked(obj);
  const problems: SchemaProblem[] = [];
  try {
    model.prototype.validate.call(proxy);
  } catch (err) {
    const errors = (err as { errors?: { instancePath: string; message?: string; params?: unknown }[] }).errors;
    if (errors === undefined) throw err;
    for (const e of errors) problems.push({ path: e.instancePath === '' ? '/' : e.instancePath, message: `${e.message ?? 'invalid'} ${JSON.stringify(e.params)}` });
  }
  return [...problems, ...unknownFields(obj, reads, [])];
}

/** `kind/name: path message` lines for an assertion message. */
export function describeProblems(obj: K8sObject, problems: readonly SchemaProblem[]): string[] {
  const name = `${String(obj['kind'])}/${String(obj['metadata']?.name)}`;
  return problems.map((p) => `${name}: ${p.path} ${p.message}`);
}

/**
 * `$(VAR)` references in a container's command, args and env, expanded as the
 * kubelet does (k8s.io/kubernetes third_party/forked/golang/expansion):
 * `$(NAME)` becomes the variable's value when NAME is defined and stays as
 * written when it is not; `$$` is a literal `$`; any other `$` is kept. An
 * env value sees the variables defined before it (service links first, then
 * the container's env in order); command and args see them all. Env values
 * from `fieldRef` come from the pod's metadata; other `valueFrom` sources are
 * refused (UnsupportedSpecError).
 */
import { UnsupportedSpecError, type EnvVar } from './k8s-manifest.js';

/** expansion.Expand: `lookup` returns undefined for a name that is not defined. */
export function expand(input: string, lookup: (name: string) => string | undefined): string {
  let out = '';
  let checkpoint = 0;
  for (let cursor = 0; cursor < input.length; cursor++) {
    if (input[cursor] !== '$' || cursor + 1 >= input.length) continue;
    out += input.slice(checkpoint, cursor);
    const { read, isVar, advance } = readVariableName(input.slice(cursor + 1));
    out += isVar ? (lookup(read) ?? `$(${read})`) : read;
    cursor += advance;
    checkpoint = cursor + 1;
  }
  return out + input.slice(checkpoint);
}

/** expansion.tryReadVariableName. */
function readVariableName(input: string): { read: string; isVar: boolean; advance: number } {
  if (input[0] === '$') return { read: '$', isVar: false, advance: 1 };
  if (input[0] === '(') {
    const close = input.indexOf(')', 1);
    if (close >= 0) return { read: input.slice(1, close), isVar: true, advance: close + 1 };
    return { read: '$(', isVar: false, advance: 1 };
  }
  return { read: `$${input[0]}`, isVar: false, advance: 1 };
}

export interface PodFields {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  podIP: string;
}

/** A downward-API fieldRef, for the paths a StatefulSet pod can use. */
export function fieldValue(fieldPath: string, pod: PodFields): string {
  const label = /^metadata\.labels\['(.+)'\]$/.exec(fieldPath);
  if (label) return pod.labels[label[1]!] ?? '';
  const annotation = /^metadata\.annotations\['(.+)'\]$/.exec(fieldPath);
  if (annotation) return pod.annotations[annotation[1]!] ?? '';
  switch (fieldPath) {
    case 'metadata.name':
      return pod.name;
    case 'metadata.namespace':
      return pod.namespace;
    case 'status.podIP':
    case 'status.hostIP':
      return pod.podIP;
    default:
      throw new UnsupportedSpecError(`fieldRef ${fieldPath} is not emulated`);
  }
}

/**
 * The container's environment as the kubelet builds it: `base` (service
 * links) first, then each env entry expanded against what precedes it.
 * Returns the spec's own entries (in order) apart from the base.
 */
export function containerEnv(env: readonly EnvVar[], base: Readonly<Record<string, string>>, pod: PodFields): Array<{ name: string; value: string }> {
  const defined = new Map(Object.entries(base));
  const out: Array<{ name: string; value: string }> = [];
  for (const e of env) {
    let value: string;
    if (e.valueFrom !== undefined) {
      const keys = Object.keys(e.valueFrom);
      if (keys.length !== 1 || e.valueFrom.fieldRef === undefined) throw new UnsupportedSpecError(`env ${e.name}: valueFrom ${keys.join(',')} is not emulated (fieldRef only)`);
      value = fieldValue(e.valueFrom.fieldRef.fieldPath, pod);
    } else {
      value = expand(e.value ?? '', (n) => defined.get(n));
    }
    defined.set(e.name, value);
    out.push({ name: e.name, value });
  }
  return out;
}

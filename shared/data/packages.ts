/**
 * Finds the installed npm packages that ship bertfleet's embedded data
 * (vocabulary, corpora, sentiment sentences) and reports their versions, which
 * go into cache keys. Reads package.json only; knows nothing of the data inside.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { InputError } from '../errors.js';

export interface InstalledPackage {
  name: string;
  version: string;
  /** Absolute directory of the installed package. */
  dir: string;
}

const require = createRequire(import.meta.url);
const found = new Map<string, InstalledPackage>();

/**
 * Locates `name` as Node resolves it from this file. Some packages (e.g.
 * @huggingface/tokenizers) hide package.json behind `exports`, so we resolve
 * the main entry and walk up to the package.json carrying that name.
 */
export function installedPackage(name: string): InstalledPackage {
  const cached = found.get(name);
  if (cached) return cached;
  let entry: string;
  try {
    entry = require.resolve(name);
  } catch (err) {
    throw new InputError(`package ${name} is not installed (run npm ci in the repository root)`, { cause: err });
  }
  for (let dir = dirname(entry); ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      const pkg = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === name && typeof pkg.version === 'string') {
        const info = { name, version: pkg.version, dir };
        found.set(name, info);
        return info;
      }
    }
    if (dirname(dir) === dir) break;
  }
  throw new InputError(`package ${name}: found ${entry} but no package.json named ${name} above it`);
}

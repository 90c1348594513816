/**
 * The Secrets of k8s/README.md, made as its guide says: the `bertfleet pki
 * init` and `kubectl create secret generic` commands of the guide's first
 * shell block that runs `bertfleet pki init`, run as written (bash, in a
 * scratch folder) with `bertfleet` standing for this repo's bin/bertfleet and
 * `kubectl` given `--dry-run=client -o json`, so each command prints the
 * Secret it would create instead of sending it to a cluster.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BIN } from './cli.js';
import type { Secret } from './k8s-manifest.js';
import { kubectlPath, REPO_ROOT } from './kubectl.js';

const run = promisify(execFile);

export const GUIDE = join(REPO_ROOT, 'k8s', 'README.md');

/** The shell commands (continuation lines joined) of the guide's block that runs `bertfleet pki init`. */
export function guideSecretCommands(readme: string): string[] {
  const blocks = [...readme.matchAll(/```(?:sh|bash|shell)\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const block = blocks.find((b) => /^bertfleet pki init /m.test(b));
  if (block === undefined) throw new Error(`${GUIDE}: no sh block running \`bertfleet pki init\``);
  const commands = block.replace(/\\\n\s*/g, ' ').split('\n').map((l) => l.trim());
  const wanted = commands.filter((l) => l.startsWith('bertfleet pki init ') || l.startsWith('kubectl create secret generic '));
  if (!wanted.some((l) => l.startsWith('kubectl'))) throw new Error(`${GUIDE}: no \`kubectl create secret generic\` after \`bertfleet pki init\``);
  return wanted;
}

/** Runs the guide's Secret commands in `dir` (created); the Secrets they would create. */
export async function secretsFromGuide(dir: string): Promise<{ secrets: Secret[]; commands: string[] }> {
  const commands = guideSecretCommands(readFileSync(GUIDE, 'utf8'));
  const shims = join(dir, '.shims');
  mkdirSync(shims, { recursive: true });
  symlinkSync(BIN, join(shims, 'bertfleet'));
  writeFileSync(join(shims, 'kubectl'), `#!/bin/sh\nexec '${kubectlPath()}' "$@" --dry-run=client -o json\n`);
  chmodSync(join(shims, 'kubectl'), 0o755);
  const env = { ...process.env, PATH: `${shims}:${process.env['PATH'] ?? ''}` };
  const secrets: Secret[] = [];
  for (const command of commands) {
    let stdout: string;
    try {
      ({ stdout } = await run('bash', ['-euo', 'pipefail', '-c', command], { cwd: dir, env, maxBuffer: 16 * 1024 * 1024 }));
    } catch (err) {
      throw new Error(`k8s/README.md command failed: ${command}\n${(err as { stderr?: string }).stderr ?? ''}`, { cause: err });
    }
    if (command.startsWith('kubectl')) secrets.push(JSON.parse(stdout) as Secret);
  }
  return { secrets, commands };
}

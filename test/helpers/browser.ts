/**
 * Debian's chromium (scripts/setup.sh installs it) driven by playwright-core,
 * headless, in a fresh profile removed by `close`: no sandbox (tests run as
 * root), no GPU, and none of the browser's own network traffic (updates,
 * sync, QUIC). Screenshots go to test-artifacts/ at the repository root
 * (gitignored), kept after the run.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const ARTIFACTS = join(import.meta.dirname, '../../test-artifacts');

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is not installed: run scripts/setup.sh (apt-get install chromium)`);
  const profile = mkdtempSync(join(tmpdir(), 'bertfleet-chromium-'));
  // launchPersistentContext: the profile folder is ours (playwright refuses --user-data-dir among args).
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 1600 },
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Where a screenshot named `name` is kept (the folder is made). */
export function artifact(name: string): string {
  mkdirSync(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}

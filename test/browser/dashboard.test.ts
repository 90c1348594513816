/**
 * The dashboard and the report in a real browser (Debian's chromium through
 * playwright-core): during a `bertfleet cluster --workers 2` run the
 * coordinator's dashboard loads and its loss curve gains points as steps
 * arrive; after the run, OUTPUT/report.html opens from a file with the
 * network cut off and draws every step of steps.jsonl, the evaluation with
 * its confusion matrices and the final metrics beside the majority
 * baseline; `bertfleet report` rebuilds the same page from the files.
 * Screenshots of both pages are kept in test-artifacts/.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { artifact, launchChromium, type Browser } from '../helpers/browser.js';
import { runCli } from '../helpers/cli.js';
import { fields, spawnBertfleet, type LoggedProcess } from '../helpers/logged-process.js';
import { pipelineArgs } from '../helpers/pipeline.js';

const work = mkdtempSync(join(tmpdir(), 'bertfleet-browser-'));
const output = join(work, 'run');
let browser: Browser | null = null;
let cluster: LoggedProcess | null = null;
afterAll(async () => {
  await browser?.close();
  if (cluster !== null && cluster.proc.exitCode === null) {
    cluster.proc.kill('SIGINT');
    await cluster.exited;
  }
  rmSync(work, { recursive: true, force: true });
});

/** Enough steps that the run is still training when the page has loaded. */
const STEPS = ['--pretrain-steps', '30', '--finetune-steps', '30'];
const TOTAL = 60;

/** The loss chart's points, as the page counts them. */
const LOSS_POINTS = 'Number(document.body.dataset.lossPoints || 0)';

/** Non-transparent pixels of a canvas: a chart that drew something has many. */
const inkOf = (id: string): string => `(() => {
  const c = document.getElementById(${JSON.stringify(id)});
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
  return n;
})()`;

describe('the dashboard and the report in chromium', () => {
  it('shows a loss curve that grows while a cluster trains', async () => {
    cluster = spawnBertfleet(['cluster', '--workers', '2', ...pipelineArgs(output, STEPS)], { cwd: work });
    const url = fields(await cluster.waitFor(/"msg":"dashboard serving"/, 180_000))['url'] as string;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    browser = await launchChromium();
    const page = await browser.context.newPage();
    await page.goto(url);
    // Strings, not functions: they run in the page (the tests are type-checked without the DOM's types).
    const points = async (): Promise<number> => Number(await page.evaluate(LOSS_POINTS));
    await page.waitForFunction(`${LOSS_POINTS} > 0`, null, { timeout: 120_000 });
    const first = await points();
    expect(first, 'the run finished before the dashboard showed it training; give it more steps').toBeLessThan(TOTAL);
    await page.waitForFunction(`${LOSS_POINTS} > ${first}`, null, { timeout: 120_000 });
    expect(await points()).toBeGreaterThan(first);
    expect(await page.textContent('#status')).toMatch(/live: (pretrain|finetune) step \d+\/30|run finished/);
    expect(Number(await page.getAttribute('#loss-pretrain', 'data-points'))).toBeGreaterThan(0);
    // A fuller picture for the screenshot (the run finishing first is fine: the page keeps its points).
    await page.waitForFunction(`${LOSS_POINTS} >= ${Math.min(first + 20, TOTAL)}`, null, { timeout: 120_000 });
    await page.screenshot({ path: artifact('dashboard.png'), fullPage: true });
    expect((await cluster.exited).code).toBe(0);
  }, 300_000);

  it('opens report.html offline and draws every step, the evaluation and the final metrics', async () => {
    const steps = readFileSync(join(output, 'steps.jsonl'), 'utf8').trim().split('\n').length;
    expect(steps).toBe(TOTAL);
    browser ??= await launchChromium();
    const blocked: string[] = [];
    await browser.context.route('**/*', (route) => {
      if (route.request().url().startsWith('file:')) return route.continue();
      blocked.push(route.request().url());
      return route.abort();
    });
    await browser.context.setOffline(true);
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto(pathToFileURL(join(output, 'report.html')).href);
    await page.waitForFunction('Number(document.body.dataset.rendered || 0) > 0');
    const counts = (await page.evaluate('window.bertfleetView.counts')) as Record<string, number>;
    expect(counts['lossPoints']).toBe(steps);
    expect(counts['steps']).toBe(steps);
    expect(counts['accuracyPoints']).toBe(TOTAL / 2);
    expect(counts['throughputPoints']).toBe(steps);
    expect(counts['workerPoints']).toBeGreaterThan(0);
    expect(counts['timelinePoints']).toBeGreaterThan(0);
    expect(counts['finalSplits']).toBe(2);
    expect(await page.locator('table.matrix').count()).toBe(2);
    expect(await page.textContent('#final-body')).toMatch(/majority baseline/);
    expect(await page.textContent('#status')).toMatch(/run finished/);
    for (const id of ['loss-pretrain', 'loss-finetune', 'acc-finetune', 'throughput', 'workers', 'timeline', 'final-chart']) {
      expect(await page.evaluate(inkOf(id)), `canvas #${id} is blank`).toBeGreaterThan(500);
    }
    expect(errors).toEqual([]);
    expect(blocked).toEqual([]);
    await page.screenshot({ path: artifact('report.png'), fullPage: true });
  });

  it('is rebuilt the same by `bertfleet report OUTPUT` from the run\'s files', async () => {
    const file = join(output, 'report.html');
    const atEnd = readFileSync(file, 'utf8');
    const r = await runCli(['report', output], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(file);
    const withoutDate = (html: string): string => html.replace(/"generatedAt":"[^"]*"/, '');
    expect(withoutDate(readFileSync(file, 'utf8'))).toBe(withoutDate(atEnd));
  });
});

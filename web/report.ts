/**
 * OUTPUT/report.html: the dashboard's page with the run inlined — Chart.js,
 * the client script and the run's data as JSON — so it opens offline, from
 * a file, anywhere. Written at the end of every run (the live events are
 * first appended to OUTPUT/run-events.jsonl, so a later `bertfleet report`
 * rebuilds the same page), and by `bertfleet report OUTPUT` for any past run.
 */
import { appendFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { RunEvent } from '../coordinator/run-events.js';
import { writeFileAtomic } from '../shared/fs-atomic.js';
import { renderPage } from './page.js';
import { readRunForReport, REPORT_FILE, RUN_EVENTS_FILE } from './report-data.js';

export { REPORT_FILE, RUN_EVENTS_FILE };

/** Appends a process's live events to OUTPUT/run-events.jsonl (what the report takes step times, membership and phases from). */
export function keepRunEvents(dir: string, events: readonly RunEvent[]): void {
  if (events.length === 0) return;
  appendFileSync(join(dir, RUN_EVENTS_FILE), events.map((e) => `${JSON.stringify(e)}\n`).join(''));
}

/** Writes `dir/report.html` from the run's files; its path. InputError for a folder that is not a run. */
export function writeReport(dir: string, now: Date = new Date()): string {
  const inputs = readRunForReport(dir);
  const html = renderPage({ mode: 'report', generatedAt: now.toISOString(), ...inputs }, `bertfleet report: ${basename(resolve(dir))}`);
  const file = join(dir, REPORT_FILE);
  writeFileAtomic(file, html);
  return file;
}

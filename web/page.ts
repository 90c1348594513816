/**
 * The page (web/page.html + web/client.js + Chart.js) as one HTML string:
 * live, it reads the run's events from an event stream; as a report, the
 * events and the run's files are inlined as JSON. Either way nothing is
 * fetched from anywhere else, so a report opens offline.
 *
 * Knows nothing of HTTP or of how the events were gathered.
 */
import { readFileSync } from 'node:fs';
import type { RunEvent } from '../coordinator/run-events.js';
import { BertfleetError } from '../shared/errors.js';
import { chartLibrarySource } from './chart-library.js';

export type PageBoot =
  | { mode: 'live'; eventsUrl: string; output: string }
  | {
      mode: 'report';
      output: string;
      generatedAt: string;
      events: readonly RunEvent[] | readonly Record<string, unknown>[];
      /** metrics.json, when the run finished. */
      metrics: unknown;
      /** run-summary.json (stage timings, per-worker totals), when written. */
      summary: unknown;
      /** What the report could not show, in words. */
      notes: readonly string[];
    };

const TEMPLATE = new URL('./page.html', import.meta.url);
const CLIENT = new URL('./client.js', import.meta.url);

export function renderPage(boot: PageBoot, title: string): string {
  const slots: Record<string, string> = {
    '{{TITLE}}': escapeHtml(title),
    '/*{{CHART_LIB}}*/': scriptSafe(chartLibrarySource()),
    '/*{{BOOT}}*/': jsonForScript(boot),
    '/*{{CLIENT}}*/': scriptSafe(readFileSync(CLIENT, 'utf8')),
  };
  let html = readFileSync(TEMPLATE, 'utf8');
  for (const [slot, value] of Object.entries(slots)) {
    if (!html.includes(slot)) throw new BertfleetError(`${TEMPLATE.pathname}: expected the slot ${slot}, found none`);
    // A function, so `$&` and the like in the inlined code stay as they are.
    html = html.replace(slot, () => value);
  }
  return html;
}

/** JSON that cannot end its <script> early: every `<` escaped (also covers `<!--`), and U+2028/9. */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/** Code inlined into a <script>: a literal `</script` inside a string would end it. */
function scriptSafe(code: string): string {
  return code.replace(/<\/(script)/gi, '<\\/$1');
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The dashboard's server on a real loopback port (web/dashboard.ts): the
 * page at / holds the chart library and fetches nothing else, and /events
 * is a server-sent event stream that starts with `hello`, replays the hub's
 * history, then carries each new event live; closing the dashboard ends the
 * stream after its last event.
 */
import { describe, expect, it } from 'vitest';
import { RunEvents } from '../../coordinator/run-events.js';
import { silentLogger } from '../../shared/log.js';
import { startDashboard } from '../../web/dashboard.js';

/** Reads server-sent events from a fetch body as {event, data} records. */
async function* sse(body: ReadableStream<Uint8Array>): AsyncGenerator<{ event: string; data: string }> {
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(chunk, { stream: true });
    let cut: number;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      if (block.startsWith(':')) continue;
      const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
      const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
      yield { event, data };
    }
  }
}

describe('the live dashboard server', () => {
  it('serves the page, then replays the history and streams new events until closed', async () => {
    const events = new RunEvents({ log: silentLogger() });
    events.phase('pretrain', 0);
    events.step('pretrain', 1, 3, 2.5, { lr: 1, gradNorm: 1, sequences: 4, durationMs: 10 });
    const dash = await startDashboard({ host: '127.0.0.1', port: 0, events, output: '/runs/x', log: silentLogger() });
    try {
      expect(dash.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      const page = await fetch(dash.url);
      expect(page.headers.get('content-type')).toMatch(/text\/html/);
      const html = await page.text();
      expect(html).toContain('"eventsUrl":"/events"');
      expect(html).not.toMatch(/<script[^>]+src=/i);
      expect(html).not.toMatch(/<link[^>]+href=/i);

      const res = await fetch(`${dash.url}events`);
      expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
      const stream = sse(res.body!);
      const next = async () => (await stream.next()).value as { event: string; data: string };
      expect((await next()).event).toBe('hello');
      expect(JSON.parse((await next()).data)).toMatchObject({ seq: 1, type: 'phase', phase: 'pretrain' });
      expect(JSON.parse((await next()).data)).toMatchObject({ seq: 2, type: 'step', step: 1, loss: 2.5 });
      events.step('pretrain', 2, 3, 2.0, { lr: 1, gradNorm: 1, sequences: 4, durationMs: 10 });
      expect(JSON.parse((await next()).data)).toMatchObject({ seq: 3, type: 'step', step: 2 });
      events.ended('finished');
      const closing = dash.close();
      expect(JSON.parse((await next()).data)).toMatchObject({ seq: 4, type: 'finished' });
      expect((await stream.next()).done).toBe(true);
      await closing;
    } finally {
      await dash.close();
    }
  });
});

/**
 * Reads a Prometheus /metrics endpoint as a scraper would: the text
 * exposition, parsed by an independent parser (parse-prometheus-text-format),
 * into samples a test can look up by name and labels.
 */
import parsePrometheusTextFormat from 'parse-prometheus-text-format';

export interface Sample {
  labels: Record<string, string>;
  value: number;
}

export interface ScrapedMetric {
  type: string;
  help: string;
  samples: Sample[];
}

export type Scrape = Map<string, ScrapedMetric>;

/** The parsed text of a scrape. */
export function parseExposition(text: string): Scrape {
  const out: Scrape = new Map();
  for (const family of parsePrometheusTextFormat(text)) {
    const samples = family.metrics
      .filter((m): m is { value: string; labels?: Record<string, string> } => 'value' in m && typeof m.value === 'string')
      .map((m) => ({ labels: m.labels ?? {}, value: Number(m.value) }));
    out.set(family.name, { type: family.type.toLowerCase(), help: family.help, samples });
  }
  return out;
}

/** GETs `url` + /metrics (status 200 expected) and parses it. */
export async function scrape(baseUrl: string): Promise<Scrape> {
  const res = await fetch(`${baseUrl}/metrics`);
  if (res.status !== 200) throw new Error(`GET ${baseUrl}/metrics: expected 200, got ${res.status}`);
  const type = res.headers.get('content-type') ?? '';
  if (!type.startsWith('text/plain')) throw new Error(`GET ${baseUrl}/metrics: expected text/plain, got ${type}`);
  return parseExposition(await res.text());
}

/** The value of `name` with exactly these labels among its samples (undefined when absent). */
export function valueOf(s: Scrape, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels);
  const found = s.get(name)?.samples.find((x) => Object.keys(x.labels).length === want.length && want.every(([k, v]) => x.labels[k] === v));
  return found?.value;
}

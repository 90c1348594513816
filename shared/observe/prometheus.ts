/**
 * The one adapter over prom-client: a registry per process with the default
 * process metrics (process_*, nodejs_*: CPU, memory, event-loop lag, GC), the
 * metric classes, the naming rule every bertfleet metric follows, and the
 * text exposition a scrape reads. coordinator/metrics.ts and
 * worker/metrics.ts define their metrics with these.
 *
 * Names follow Prometheus conventions: `bertfleet_` then lower-case words,
 * base units (seconds, bytes) as suffixes, `_total` on counters and on
 * nothing else (`checkName`).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export type { Counter, Gauge, Histogram, Registry };

/** Every bertfleet metric's name. */
export const METRIC_NAME = /^bertfleet_[a-z_]+$/;

/** The default metrics' prefixes (prom-client's own names, which dashboards expect as they are). */
export const DEFAULT_METRIC_PREFIXES = ['process_', 'nodejs_'] as const;

/** Units that must be spelled out in base units, never these. */
const NOT_BASE_UNITS = /_(ms|milliseconds|minutes|hours|kb|mb|gb|kilobytes|megabytes|percent)(_|$)/;

/** A fresh registry with the default process metrics. */
export function createRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** RangeError when `name` breaks the rule for a metric of `type`. */
export function checkName(name: string, type: 'counter' | 'gauge' | 'histogram'): void {
  const problems: string[] = [];
  if (!METRIC_NAME.test(name)) problems.push(`expected ${METRIC_NAME.source}`);
  if (NOT_BASE_UNITS.test(name)) problems.push('expected base units (seconds, bytes, ratio)');
  if (type === 'counter' && !name.endsWith('_total')) problems.push('a counter ends in _total');
  if (type !== 'counter' && name.endsWith('_total')) problems.push(`a ${type} does not end in _total`);
  if (problems.length > 0) throw new RangeError(`metric ${name}: ${problems.join('; ')}`);
}

/** The registry's own metrics (not the default ones): name, type and label names seen. */
export async function ownMetrics(registry: Registry): Promise<{ name: string; type: string; help: string }[]> {
  const all = await registry.getMetricsAsJSON();
  return all
    .map((m) => ({ name: m.name, type: String(m.type), help: m.help }))
    .filter((m) => !DEFAULT_METRIC_PREFIXES.some((p) => m.name.startsWith(p)));
}

/** A gauge in `registry`, its name checked. */
export function gauge<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[] = []): Gauge<L> {
  checkName(name, 'gauge');
  return new Gauge({ name, help, labelNames, registers: [registry] });
}

/** A counter in `registry`, its name checked. */
export function counter<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
  checkName(name, 'counter');
  return new Counter({ name, help, labelNames, registers: [registry] });
}

/** An unlabelled histogram in `registry` (buckets in the metric's unit), its name checked. */
export function histogram(registry: Registry, name: string, help: string, buckets: number[]): Histogram {
  checkName(name, 'histogram');
  return new Histogram({ name, help, buckets, registers: [registry] });
}

/** The text a scrape reads, and its content type. */
export async function exposition(registry: Registry): Promise<{ contentType: string; body: string }> {
  return { contentType: registry.contentType, body: await registry.metrics() };
}

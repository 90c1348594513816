/**
 * Control-plane events on core NATS subjects: their names, their payloads
 * (zod schemas, types inferred) and `publishEvent`/`subscribeEvents`. Events
 * are notifications, delivered at most once to whoever listens at the time;
 * the truth about a run is the KV run state (run-state.ts), never an event.
 * Payload fields are snake_case like the wire messages; times are `at_ms`.
 *
 * | subject                                      | published by | payload                                                    |
 * | -------------------------------------------- | ------------ | ---------------------------------------------------------- |
 * | `bertfleet.<run>.events.worker.joined`       | coordinator  | `{worker_id, hostname, pid, step, at_ms}`                   |
 * | `bertfleet.<run>.events.worker.left`         | coordinator  | `{worker_id, reason, detail, at_ms}`; reason: drained, heartbeat_timeout, error |
 * | `bertfleet.<run>.events.checkpoint.written`  | coordinator  | `{phase, step, path, at_ms}`                                |
 * | `bertfleet.<run>.events.phase.changed`       | coordinator  | `{from, to, step, at_ms}`; from is null for the first phase |
 * | `bertfleet.<run>.events.step.metrics`        | coordinator  | `{phase, step, loss, lr, seq_per_sec, duration_ms, at_ms}`  |
 *
 * Subscribe to `bertfleet.<run>.events.>` for all of one run's events.
 * Knows nothing of who publishes or what a listener does with an event.
 */
import type { Msg, Subscription } from 'nats';
import { z } from 'zod';
import { InputError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ControlConnection } from './connect.js';
import { checkRunId, RUN_PHASES } from './run-state-schema.js';

const phase = z.enum(RUN_PHASES);
const atMs = z.number().int().nonnegative();

export const EVENT_SCHEMAS = {
  'worker.joined': z.strictObject({
    worker_id: z.string().min(1),
    hostname: z.string(),
    pid: z.number().int().nonnegative(),
    step: z.number().int().nonnegative(),
    at_ms: atMs,
  }),
  'worker.left': z.strictObject({
    worker_id: z.string().min(1),
    reason: z.enum(['drained', 'heartbeat_timeout', 'error']),
    detail: z.string().nullable(),
    at_ms: atMs,
  }),
  'checkpoint.written': z.strictObject({ phase, step: z.number().int().nonnegative(), path: z.string().min(1), at_ms: atMs }),
  'phase.changed': z.strictObject({ from: phase.nullable(), to: phase, step: z.number().int().nonnegative(), at_ms: atMs }),
  'step.metrics': z.strictObject({
    phase,
    step: z.number().int().nonnegative(),
    loss: z.number(),
    lr: z.number(),
    seq_per_sec: z.number().nonnegative(),
    duration_ms: z.number().nonnegative(),
    at_ms: atMs,
  }),
} as const;

export type EventKind = keyof typeof EVENT_SCHEMAS;
export const EVENT_KINDS = Object.keys(EVENT_SCHEMAS) as EventKind[];
export type EventPayload<K extends EventKind> = z.infer<(typeof EVENT_SCHEMAS)[K]>;
/** One received event, discriminated by `kind`. */
export type ControlEvent = { [K in EventKind]: { kind: K; subject: string; payload: EventPayload<K> } }[EventKind];

/** `bertfleet.<run>.events.<kind>` */
export function eventSubject(runId: string, kind: EventKind): string {
  return `bertfleet.${checkRunId(runId)}.events.${kind}`;
}

/** Every event of one run: `bertfleet.<run>.events.>` */
export function allEventsSubject(runId: string): string {
  return `bertfleet.${checkRunId(runId)}.events.>`;
}

/** Publishes one event (validated first); at most once, buffered by the connection. */
export function publishEvent<K extends EventKind>(conn: ControlConnection, runId: string, kind: K, payload: EventPayload<K>): void {
  const parsed = EVENT_SCHEMAS[kind].safeParse(payload);
  if (!parsed.success) throw new InputError(`event ${kind} for run ${runId} is invalid: ${z.prettifyError(parsed.error)}`);
  conn.nc.publish(eventSubject(runId, kind), new TextEncoder().encode(JSON.stringify(parsed.data)));
}

export interface EventSubscription {
  /** Unsubscribes and waits until the handler has returned for the last event. */
  stop(): Promise<void>;
}

/**
 * Calls `handler` for each event of `kinds` (default all) of run `runId`, one
 * at a time in arrival order. Resolves once the server has registered the
 * subscription. An event that fails validation is logged and skipped; a
 * handler that throws is logged and the next event still delivered.
 */
export async function subscribeEvents(
  conn: ControlConnection,
  runId: string,
  handler: (event: ControlEvent) => void | Promise<void>,
  opts: { log: Logger; kinds?: readonly EventKind[] },
): Promise<EventSubscription> {
  const log = opts.log.child({ component: 'events', runId });
  const subjects = opts.kinds === undefined ? [allEventsSubject(runId)] : opts.kinds.map((k) => eventSubject(runId, k));
  const subs = subjects.map((s) => conn.nc.subscribe(s));
  const loops = subs.map((sub) => deliver(sub, handler, log));
  await conn.nc.flush();
  return {
    stop: async () => {
      for (const s of subs) s.unsubscribe();
      await Promise.all(loops);
    },
  };
}

async function deliver(sub: Subscription, handler: (e: ControlEvent) => void | Promise<void>, log: Logger): Promise<void> {
  for await (const msg of sub) {
    const event = decodeEvent(msg, log);
    if (event === null) continue;
    try {
      await handler(event);
    } catch (err) {
      log.error({ err, subject: msg.subject }, 'event handler failed');
    }
  }
}

function decodeEvent(msg: Msg, log: Logger): ControlEvent | null {
  const kind = msg.subject.split('.').slice(3).join('.') as EventKind;
  const schema = EVENT_SCHEMAS[kind];
  if (schema === undefined) {
    log.warn({ subject: msg.subject }, 'unknown event subject; skipped');
    return null;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(msg.data));
  } catch (err) {
    log.warn({ err, subject: msg.subject }, 'event is not JSON; skipped');
    return null;
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    log.warn({ subject: msg.subject, problems: z.prettifyError(parsed.error) }, 'invalid event; skipped');
    return null;
  }
  return { kind, subject: msg.subject, payload: parsed.data } as ControlEvent;
}

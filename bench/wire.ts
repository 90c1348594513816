/**
 * The wire benchmark: how fast the gRPC adapter moves a float32 gradient over
 * loopback, push (worker -> coordinator, reassembled and CRC-checked) and pull
 * (coordinator -> worker, same checks), for 17 MB and 110 MB gradients (4.25 M
 * and 27.5 M parameters; BERT-base is 110 M parameters = 440 MB). The
 * coordinator side runs in a child process, as it would on another pod, so
 * each side has its own event loop. Prints one JSON line per (size, direction)
 * and the CRC-32 rate alone.
 * With --both-ways, the pull runs during the push (see BOTH_WAYS).
 *   npx tsx bench/wire.ts [--reps N] [--chunk-bytes N] [--fresh] [--same-process] [--both-ways]
 */
import { spawn } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../shared/log.js';
import { collectGradient, gradientDataChunk, gradientHeaderChunk, gradientStream, readGradient } from '../shared/wire/gradient-stream.js';
import { WIRE_CHUNK_BYTES } from '../shared/wire/chunks.js';
import { crc32 } from '../shared/wire/crc32.js';
import { createCoordinatorClient, createServer } from '../shared/wire/grpc.js';
import type { GradientChunk, GradientHeader } from '../shared/wire/messages.js';
import type { CallContext, CoordinatorHandlers } from '../shared/wire/service.js';

const SIZES_MB = [17, 110];
const flag = (name: string): number | undefined => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : undefined;
};
const REPS = flag('--reps') ?? 5;
const CHUNK_BYTES = flag('--chunk-bytes');
/**
 * `--both-ways`: the pull runs during the push and gets each chunk as soon as the
 * server has it (the coordinator's streamed reduction, without the sums): the
 * exchange's floor on this wire.
 */
const BOTH_WAYS = process.argv.includes('--both-ways');
/** `--fresh`: allocate every received gradient anew instead of reusing buffers. */
const REUSE = !process.argv.includes('--fresh');

/** Keeps the last pushed gradient per step and serves it back. */
function benchCoordinator(): CoordinatorHandlers {
  const store = new Map<number, Float32Array>();
  const uploads = new Map<number, Float32Array>();
  const live = new Map<number, { header: GradientHeader; pieces: Uint8Array[] }>();
  const ready = new EventEmitter();
  const unused = (): never => {
    throw new Error('not used by the wire benchmark');
  };
  return {
    getRunConfig: async () => unused(),
    register: async () => unused(),
    pushEvalResults: async () => unused(),
    nextAssignment: async () => unused(),
    heartbeat: async () => unused(),
    reportChecksum: async () => unused(),
    reportAudit: async () => unused(),
    reportMetrics: async () => ({}),
    leave: async () => ({ reassigned: 0 }),
    openStep: async () => unused(),
    reassign: async () => unused(),
    fetchState: () => unused(),
    pushGradient: async (chunks: AsyncIterable<GradientChunk>) => {
      if (BOTH_WAYS) {
        // Each checked chunk is kept and served to the pull at once, as the coordinator does with reduced chunks.
        let header: GradientHeader | undefined;
        for await (const m of readGradient(chunks)) {
          if (m.header !== undefined) {
            header = m.header;
            live.set(header.step, { header, pieces: [] });
          } else {
            live.get(header!.step)!.pieces.push(Uint8Array.from(m.piece.bytes));
          }
          ready.emit('piece');
        }
        return { step: header!.step, range: header!.range, received_bytes: header!.total_bytes };
      }
      // A coordinator keeps one buffer per (range, size) and reuses it every step.
      const into = (h: GradientHeader): Float32Array => pooled(uploads, h.total_bytes / 4);
      const { header, gradient } = await collectGradient(chunks, REUSE ? { into } : {});
      store.set(header.step, gradient);
      ready.emit(`step-${header.step}`);
      return { step: header.step, range: header.range, received_bytes: gradient.byteLength };
    },
    pullReduced: async function* (req: { step: number }, ctx: CallContext) {
      if (BOTH_WAYS) {
        while (!live.has(req.step)) await once(ready, 'piece', { signal: ctx.signal });
        const s = live.get(req.step)!;
        yield gradientHeaderChunk({ ...s.header, worker_id: '' }, s.header.total_bytes, s.header.chunk_bytes);
        const count = Math.ceil(s.header.total_bytes / s.header.chunk_bytes);
        for (let i = 0; i < count; i++) {
          while (s.pieces.length <= i) await once(ready, 'piece', { signal: ctx.signal });
          yield gradientDataChunk(s.pieces[i]!);
        }
        live.delete(req.step);
        return;
      }
      if (!store.has(req.step)) await once(ready, `step-${req.step}`, { signal: ctx.signal });
      const header = { worker_id: '', step: req.step, phase: 'pretrain', range: { lo: 0, hi: 1 }, stats_json: '' };
      yield* gradientStream(header, store.get(req.step)!, CHUNK_BYTES ?? WIRE_CHUNK_BYTES);
    },
  };
}

/** One reusable buffer per length, as a coordinator keeps one per subtree. */
function pooled(pool: Map<number, Float32Array>, length: number): Float32Array {
  let buf = pool.get(length);
  if (buf === undefined) pool.set(length, (buf = new Float32Array(length)));
  return buf;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** `--serve`: run the coordinator side, print its port, stop when stdin closes. */
async function serve(): Promise<void> {
  const server = createServer(benchCoordinator(), { log: silentLogger(), tls: null });
  console.log(await server.startServer('127.0.0.1', 0));
  process.stdin.resume();
  await once(process.stdin, 'end');
  await server.stop({ graceMs: 1_000 });
}

/** The coordinator side: a child process (default) or this one. Resolves to its port and a stop function. */
async function startCoordinatorSide(): Promise<{ port: number; stop: () => Promise<void> }> {
  if (process.argv.includes('--same-process')) {
    const server = createServer(benchCoordinator(), { log: silentLogger(), tls: null });
    return { port: await server.startServer('127.0.0.1', 0), stop: () => server.stop({ graceMs: 1_000 }) };
  }
  const args = [...process.execArgv, fileURLToPath(import.meta.url), '--serve'];
  if (CHUNK_BYTES !== undefined) args.push('--chunk-bytes', String(CHUNK_BYTES));
  if (!REUSE) args.push('--fresh');
  if (BOTH_WAYS) args.push('--both-ways');
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = once(child, 'exit');
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
  return {
    port: Number(line),
    stop: async () => {
      child.stdin!.end();
      await exited;
    },
  };
}

async function main(): Promise<void> {
  const log = silentLogger();
  const server = await startCoordinatorSide();
  const port = server.port;
  const client = await createCoordinatorClient(`127.0.0.1:${port}`, { log, tls: null, ...(CHUNK_BYTES !== undefined && { chunkBytes: CHUNK_BYTES }) });
  const downloads = new Map<number, Float32Array>();
  let step = 0;
  try {
    for (const mb of SIZES_MB) {
      const gradient = new Float32Array((mb * 1e6) / 4);
      for (let i = 0; i < gradient.length; i++) gradient[i] = (i % 1000) / 7;
      const pushMs: number[] = [];
      const pullMs: number[] = [];
      for (let r = 0; r < REPS + 1; r++) {
        step++;
        let t = performance.now();
        const into = REUSE ? { into: pooled(downloads, gradient.length) } : {};
        if (BOTH_WAYS) {
          const pulling = client.pullReduced({ worker_id: 'bench', step, phase: 'pretrain' }, into);
          await client.pushGradient({ worker_id: 'bench', step, phase: 'pretrain', range: { lo: 0, hi: 1 }, stats_json: '' }, gradient);
          const push = performance.now() - t;
          const back = await pulling;
          if (back.length !== gradient.length) throw new Error(`pulled ${back.length} floats, expected ${gradient.length}`);
          if (r > 0) pushMs.push(push), pullMs.push(performance.now() - t);
          continue;
        }
        await client.pushGradient({ worker_id: 'bench', step, phase: 'pretrain', range: { lo: 0, hi: 1 }, stats_json: '' }, gradient);
        const push = performance.now() - t;
        t = performance.now();
        const back = await client.pullReduced({ worker_id: 'bench', step, phase: 'pretrain' }, into);
        const pull = performance.now() - t;
        if (back.length !== gradient.length) throw new Error(`pulled ${back.length} floats, expected ${gradient.length}`);
        if (r > 0) pushMs.push(push), pullMs.push(pull); // the first round warms up the JIT and the connection
      }
      const names = BOTH_WAYS ? (['push', 'push+pull'] as const) : (['push', 'pull'] as const);
      for (const [direction, ms] of [[names[0], pushMs], [names[1], pullMs]] as const) {
        const m = median(ms);
        console.log(JSON.stringify({ bench: 'wire', direction, size_mb: mb, reps: REPS, median_ms: Math.round(m), mb_per_s: Math.round(mb / (m / 1000)) }));
      }
    }
    const buf = new Uint8Array(110e6).fill(7);
    crc32(buf.subarray(0, 1e6));
    const t = performance.now();
    crc32(buf);
    const ms = performance.now() - t;
    console.log(JSON.stringify({ bench: 'crc32', size_mb: 110, ms: Math.round(ms), mb_per_s: Math.round(110 / (ms / 1000)) }));
  } finally {
    client.close();
    await server.stop();
  }
}

if (process.argv.includes('--serve')) await serve();
else await main();

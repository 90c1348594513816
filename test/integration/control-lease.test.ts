/**
 * The run lease on a real nats-server: acquired, renewed and released; a
 * second owner refused naming the first; a crashed holder on this host (pid
 * gone) taken over at once, and the holder it replaced told it lost the run;
 * a lease that cannot be renewed for its TTL reported lost; and one that
 * survives a nats-server restart on the same port and store.
 */
import { hostname } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectControl, type ControlConnection } from '../../shared/control/connect.js';
import { LeaseLostError, readRunLease, RunLease, RunOwnedError, type RunLeaseOptions } from '../../shared/control/lease.js';
import { silentLogger } from '../../shared/log.js';
import { startNats, type TestNats } from '../helpers/nats.js';
import { makeTempDir } from '../helpers/tmp.js';
import { capturingLogger, deadPid } from '../helpers/observe.js';

const log = silentLogger();
const HERE = hostname();

function connectTo(server: TestNats, name: string): Promise<ControlConnection> {
  return connectControl({ servers: server.url, name, log, reconnectTimeWaitMs: 100 });
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function lostPromise(lease: RunLease): Promise<LeaseLostError> {
  return new Promise((resolve) => lease.onLost(resolve));
}

let seq = 0;
/** A fresh bucket per test: a bucket's TTL is fixed when it is created. */
function opts(over: Partial<RunLeaseOptions> & { ttlMs: number }): RunLeaseOptions {
  return { runId: 'run-lease', ownerId: `owner-${++seq}`, hostname: 'host-a', pid: process.pid, log, bucket: `leases_${process.pid}_${seq}`, ...over };
}

describe('run lease on a real nats-server', () => {
  let server: TestNats;
  let conn: ControlConnection;
  let other: ControlConnection;

  beforeAll(async () => {
    server = await startNats();
    conn = await connectTo(server, 'coordinator-a');
    other = await connectTo(server, 'coordinator-b');
  });

  afterAll(async () => {
    await other?.close();
    await conn?.close();
    await server?.stop();
  });

  it('is acquired, renewed while held, and released', async () => {
    const o = opts({ ttlMs: 900 });
    const lease = await RunLease.acquire(conn, o);
    const first = await readRunLease(conn, o.runId, { bucket: o.bucket! });
    expect(first).toMatchObject({ owner_id: o.ownerId, hostname: 'host-a', pid: process.pid, run_id: 'run-lease' });
    // Renewed several times over more than its TTL: still there, still ours.
    await until('three renewals', async () => ((await readRunLease(conn, o.runId, { bucket: o.bucket! }))?.revision ?? 0) >= first!.revision + 3);
    expect(await readRunLease(conn, o.runId, { bucket: o.bucket! })).toMatchObject({ owner_id: o.ownerId });
    expect(lease.lost).toBeNull();
    await lease.release();
    expect(await readRunLease(conn, o.runId, { bucket: o.bucket! })).toBeNull();
    // Released: the next owner gets it without waiting.
    const next = await RunLease.acquire(other, { ...o, ownerId: 'next', hostname: 'host-b' });
    expect(await readRunLease(conn, o.runId, { bucket: o.bucket! })).toMatchObject({ owner_id: 'next' });
    await next.release();
  });

  it('refuses a second owner with RunOwnedError naming the holder and the run', async () => {
    const o = opts({ ttlMs: 1_500 });
    const holder = await RunLease.acquire(conn, o);
    const second = RunLease.acquire(other, { ...o, ownerId: 'second', hostname: 'host-b', pid: 4242 });
    await expect(second).rejects.toBeInstanceOf(RunOwnedError);
    await expect(second).rejects.toThrow(`run run-lease is already owned by coordinator ${o.ownerId} (pid ${process.pid} on host-a)`);
    await expect(second).rejects.toThrow(/stop that coordinator first/);
    expect(holder.lost).toBeNull();
    expect(await readRunLease(conn, o.runId, { bucket: o.bucket! })).toMatchObject({ owner_id: o.ownerId });
    await holder.release();
  });

  it('takes over at once the lease of a holder on this host whose pid is gone, and tells that holder it lost the run', async () => {
    // The "crashed" holder still renews here (so waiting for it to expire would end in RunOwnedError):
    // only its dead pid on this very host lets the successor in.
    const o = opts({ ttlMs: 3_000, hostname: HERE, pid: deadPid() });
    const crashed = await RunLease.acquire(conn, o);
    const lost = lostPromise(crashed);
    const { log: captured, lines } = capturingLogger();
    const successor = await RunLease.acquire(other, { ...o, ownerId: 'successor', pid: process.pid, log: captured });
    expect(lines.find((l) => l['msg'] === 'stale run lease taken over')).toMatchObject({ holderId: o.ownerId, pid: o.pid, reason: 'holder process is gone' });
    expect(await readRunLease(conn, o.runId, { bucket: o.bucket! })).toMatchObject({ owner_id: 'successor', pid: process.pid });

    // The replaced holder learns of it at its next renewal.
    const err = await lost;
    expect(err).toBeInstanceOf(LeaseLostError);
    expect(err.message).toBe(`lease of run run-lease lost: taken over by coordinator successor (pid ${process.pid} on ${HERE}); this coordinator stops`);
    expect(crashed.lost).toBe(err);
    await crashed.release();
    // The lost holder's release does not delete the successor's lease.
    expect(await readRunLease(conn, o.runId, { bucket: o.bucket! })).toMatchObject({ owner_id: 'successor' });
    await successor.release();
  });

  it('takes over a lease not renewed for one TTL (a holder on another host that crashed)', async () => {
    const o = opts({ ttlMs: 1_500, hostname: 'gone-host' });
    const crashedConn = await connectTo(server, 'crashed');
    const crashed = await RunLease.acquire(crashedConn, o);
    // Its process "dies": the connection closes and nothing renews the key any more.
    await crashedConn.closeWithin(0);
    const { log: captured, lines } = capturingLogger();
    const successor = await RunLease.acquire(other, { ...o, ownerId: 'successor', hostname: 'host-b', log: captured });
    expect(await readRunLease(conn, o.runId, { bucket: o.bucket! })).toMatchObject({ owner_id: 'successor' });
    // Either the server expired the key (then a plain create) or the takeover noticed it unrenewed.
    expect(lines.some((l) => l['msg'] === 'run lease held by another coordinator; waiting to see it renewed or expire')).toBe(true);
    await successor.release();
    await crashed.release();
  });
});

describe('run lease across nats-server outages', () => {
  it('keeps the lease through a nats-server restart on the same port and store, down longer than one renewal interval', async () => {
    const store = await makeTempDir('lease-restart');
    let server = await startNats({ storeDir: store.dir });
    const port = server.port;
    const conn = await connectTo(server, 'holder');
    try {
      // Renewed every 3 s; the server stays down 3.5 s, so a renewal falls in the outage (it times out and is retried).
      const o = opts({ ttlMs: 9_000 });
      const lease = await RunLease.acquire(conn, o);
      const before = (await readRunLease(conn, o.runId, { bucket: o.bucket! }))!.revision;
      const reconnected = new Promise<void>((resolve) => conn.onStatus((s) => s.type === 'reconnect' && resolve()));
      await server.stop({ keepStore: true });
      await new Promise((r) => setTimeout(r, 3_500));
      server = await startNats({ storeDir: store.dir, port });
      await reconnected;
      // Renewed after the reconnect, by the same owner, and never reported lost.
      await until('a renewal after the restart', async () => ((await readRunLease(conn, o.runId, { bucket: o.bucket! }))?.revision ?? 0) > before);
      expect(await readRunLease(conn, o.runId, { bucket: o.bucket! })).toMatchObject({ owner_id: o.ownerId });
      expect(lease.lost).toBeNull();
      await lease.release();
      expect(await readRunLease(conn, o.runId, { bucket: o.bucket! })).toBeNull();
    } finally {
      await conn.closeWithin(2_000);
      await server.stop();
      await store.remove();
    }
  });

  it('reports the lease lost when nats-server stays away longer than its TTL', async () => {
    const server = await startNats();
    const conn = await connectTo(server, 'holder');
    try {
      const o = opts({ ttlMs: 1_500 });
      const lease = await RunLease.acquire(conn, o);
      const lost = lostPromise(lease);
      await server.stop();
      const err = await lost;
      expect(err).toBeInstanceOf(LeaseLostError);
      expect(err.message).toBe(
        'lease of run run-lease lost: not renewed for its ttl of 1500 ms (nats-server unreachable); another coordinator may own the run now, so this one stops',
      );
      await lease.release();
    } finally {
      await conn.closeWithin(500);
      await server.stop();
    }
  });
});

/**
 * A container's probes, polled as the kubelet polls them: each probe on its
 * own timer (initialDelaySeconds, then every periodSeconds), an HTTP GET with
 * timeoutSeconds whose status 200-399 is success. Until the startupProbe has
 * succeeded, readiness and liveness are not probed and the container is not
 * ready; failureThreshold startup or liveness failures in a row mean the
 * kubelet kills the container (`onKill`, the pod emulator restarts it);
 * readiness follows successThreshold / failureThreshold. Without a
 * readinessProbe a started container is ready. tcpSocket probes connect;
 * exec and grpc probes are refused (UnsupportedSpecError).
 */
import { createConnection } from 'node:net';
import { UnsupportedSpecError, type Probe } from './k8s-manifest.js';

export type ProbeName = 'startup' | 'readiness' | 'liveness';

export interface ProberOptions {
  startup?: Probe;
  readiness?: Probe;
  liveness?: Probe;
  /** A probe's named or numbered container port → the local port. */
  localPort(port: number | string): number;
  onReadyChange(ready: boolean): void;
  onKill(reason: string): void;
  event(message: string): void;
}

export class Prober {
  private started: boolean;
  private readyNow = false;
  private readonly timers: NodeJS.Timeout[] = [];
  private stopped = false;
  private readonly streak = new Map<ProbeName, { ok: number; bad: number }>();

  constructor(private readonly o: ProberOptions) {
    for (const p of [o.startup, o.readiness, o.liveness]) {
      if (p !== undefined && p.httpGet === undefined && p.tcpSocket === undefined) throw new UnsupportedSpecError('only httpGet and tcpSocket probes are emulated');
    }
    this.started = o.startup === undefined;
  }

  get ready(): boolean {
    return this.readyNow;
  }

  start(): void {
    if (this.started && this.o.readiness === undefined) this.setReady(true);
    for (const name of ['startup', 'readiness', 'liveness'] as const) {
      const probe = this.o[name];
      if (probe === undefined) continue;
      const loop = async (): Promise<void> => {
        if (this.stopped) return;
        await this.tick(name, probe);
        if (!this.stopped && !(name === 'startup' && this.started)) this.timers.push(setTimeout(() => void loop(), (probe.periodSeconds ?? 10) * 1000));
      };
      this.timers.push(setTimeout(() => void loop(), (probe.initialDelaySeconds ?? 0) * 1000));
    }
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.setReady(false);
  }

  private async tick(name: ProbeName, probe: Probe): Promise<void> {
    if (name !== 'startup' && !this.started) return;
    const result = await runProbe(probe, this.o.localPort);
    if (this.stopped) return;
    const s = this.streak.get(name) ?? { ok: 0, bad: 0 };
    if (result.ok) {
      s.ok++;
      s.bad = 0;
    } else {
      s.bad++;
      s.ok = 0;
      this.o.event(`${name} probe failed (${s.bad}/${probe.failureThreshold ?? 3}): ${result.detail}`);
    }
    this.streak.set(name, s);
    const failed = s.bad >= (probe.failureThreshold ?? 3);
    if (name === 'startup') {
      if (result.ok) {
        this.started = true;
        this.o.event('startup probe succeeded');
        if (this.o.readiness === undefined) this.setReady(true);
      } else if (failed) {
        this.o.onKill(`startup probe failed ${s.bad} times`);
      }
    } else if (name === 'readiness') {
      if (s.ok >= (probe.successThreshold ?? 1)) this.setReady(true);
      else if (failed) this.setReady(false);
    } else if (failed) {
      this.o.onKill(`liveness probe failed ${s.bad} times`);
    }
  }

  private setReady(ready: boolean): void {
    if (ready === this.readyNow || (ready && this.stopped)) return;
    this.readyNow = ready;
    this.o.onReadyChange(ready);
  }
}

/** One probe attempt. */
export async function runProbe(probe: Probe, localPort: (port: number | string) => number): Promise<{ ok: boolean; detail: string }> {
  const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
  if (probe.tcpSocket !== undefined) return tcpProbe(localPort(probe.tcpSocket.port), timeoutMs);
  const g = probe.httpGet!;
  if ((g.scheme ?? 'HTTP') !== 'HTTP') throw new UnsupportedSpecError(`httpGet scheme ${g.scheme} is not emulated`);
  if (g.host !== undefined) throw new UnsupportedSpecError('httpGet host is not emulated');
  const url = `http://127.0.0.1:${localPort(g.port)}${g.path ?? '/'}`;
  const headers: Record<string, string> = { 'user-agent': 'kube-probe/1.32', accept: '*/*' };
  for (const h of g.httpHeaders ?? []) headers[h.name.toLowerCase()] = h.value;
  try {
    const res = await fetch(url, { headers, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return { ok: res.status >= 200 && res.status < 400, detail: `GET ${g.path ?? '/'}: HTTP ${res.status}` };
  } catch (err) {
    return { ok: false, detail: `GET ${g.path ?? '/'}: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}` };
  }
}

function tcpProbe(port: number, timeoutMs: number): Promise<{ ok: boolean; detail: string }> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port, timeout: timeoutMs });
    s.once('connect', () => {
      s.destroy();
      resolve({ ok: true, detail: 'connected' });
    });
    s.once('timeout', () => {
      s.destroy();
      resolve({ ok: false, detail: 'timeout' });
    });
    s.once('error', (err) => resolve({ ok: false, detail: err.message }));
  });
}

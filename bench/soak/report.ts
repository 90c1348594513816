/**
 * The soak's verdict: the final weights against the reference run's, byte for
 * byte, and the summary printed at the end (faults tried, recovered and
 * survived by kind, bytes equal, wall times, what went wrong). A fault is
 * survived when the run was seen moving on after it and then finished.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { secs, type FaultKind } from './faults.js';

export const WEIGHTS = ['pretrained/model.safetensors', 'finetuned/model.safetensors'];

export interface FaultRecord {
  n: number;
  kind: FaultKind;
  /** ms since the cluster started. */
  atMs: number;
  /** Where the run was when it was injected, e.g. "pretrain step 14". */
  at: string;
  target: string;
  outcome: 'recovered' | 'failed';
  recoveryMs: number;
  detail: string;
  notes: string[];
}

export interface WeightCheck {
  file: string;
  equal: boolean;
  why?: string;
}

export interface SoakReport {
  title: string;
  faultsRequested: number;
  faults: FaultRecord[];
  referenceMs: number;
  clusterMs: number;
  runFinished: boolean;
  weights: WeightCheck[];
  unexpectedExits: string[];
  /** Odd but harmless events of the cluster (see SoakCluster.notes). */
  notes: string[];
  errorLines: string[];
  failures: string[];
}

export function compareWeights(referenceDir: string, outputDir: string): WeightCheck[] {
  return WEIGHTS.map((file) => {
    const ref = join(referenceDir, file);
    const got = join(outputDir, file);
    if (!existsSync(got)) return { file, equal: false, why: 'missing from the cluster run' };
    if (!existsSync(ref)) return { file, equal: false, why: 'missing from the reference run' };
    const equal = readFileSync(ref).equals(readFileSync(got));
    return equal ? { file, equal } : { file, equal, why: 'bytes differ' };
  });
}

/** Everything that makes the soak fail; empty means PASS. */
export function failuresOf(r: Omit<SoakReport, 'failures'>): string[] {
  const out: string[] = [];
  for (const f of r.faults) if (f.outcome === 'failed') out.push(`fault #${f.n} (${f.kind} on ${f.target}) not recovered: ${f.detail}`);
  if (!r.runFinished) out.push('the cluster run did not finish');
  for (const w of r.weights) if (!w.equal) out.push(`${w.file}: ${w.why}`);
  for (const e of r.unexpectedExits) out.push(`unexpected exit: ${e}`);
  return out;
}

export function printSummary(r: SoakReport): void {
  const say = (s: string): void => void process.stdout.write(`${s}\n`);
  say('');
  say(`soak summary: ${r.title}`);
  say(`  ${'fault'.padEnd(18)}${'tried'.padStart(6)}${'recovered'.padStart(11)}${'survived'.padStart(10)}`);
  const kinds = [...new Set(r.faults.map((f) => f.kind))].sort();
  for (const k of [...kinds, 'total']) {
    const fs = r.faults.filter((f) => k === 'total' || f.kind === k);
    const recovered = fs.filter((f) => f.outcome === 'recovered').length;
    const survived = r.runFinished ? recovered : 0;
    say(`  ${k.padEnd(18)}${String(fs.length).padStart(6)}${String(recovered).padStart(11)}${String(survived).padStart(10)}`);
  }
  if (r.faults.length < r.faultsRequested) say(`  (${r.faultsRequested - r.faults.length} of ${r.faultsRequested} requested not tried: the run ended first)`);
  for (const w of r.weights) say(`  ${w.file}: ${w.equal ? 'byte-identical to the uninterrupted run' : `NOT EQUAL (${w.why})`}`);
  say(`  wall time: train (reference) ${secs(r.referenceMs)}, cluster with faults ${secs(r.clusterMs)}`);
  const notes = r.faults.flatMap((f) => f.notes.map((n) => `#${f.n} ${f.kind}: ${n}`));
  for (const n of [...notes, ...r.notes]) say(`  note: ${n}`);
  if (r.errorLines.length > 0) say(`  note: ${r.errorLines.length} error-level log line(s) from the coordinators, first: ${r.errorLines[0]!.slice(0, 300)}`);
  for (const f of r.failures) say(`  FAILED: ${f}`);
  say(`  result: ${r.failures.length === 0 ? 'PASS' : 'FAIL'}`);
}

/**
 * The one adapter over Chart.js: the text of its UMD build (the global
 * `Chart`, every chart type registered), read from node_modules at run time
 * so the dashboard serves it and report.html inlines it — nothing comes from
 * a CDN. An upgrade that moves the file touches only this list.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { BertfleetError } from '../shared/errors.js';

/** Where Chart.js 4 keeps its UMD build, newest name first. */
const UMD_FILES = ['chart.umd.min.js', 'chart.umd.js'];

let cached: string | null = null;

export function chartLibrarySource(): string {
  if (cached !== null) return cached;
  // The package's main entry is dist/chart.cjs; the UMD build sits beside it.
  let dist: string;
  try {
    dist = dirname(createRequire(import.meta.url).resolve('chart.js'));
  } catch (err) {
    throw new BertfleetError('the chart library chart.js is not installed: run scripts/setup.sh (npm install)', { cause: err });
  }
  const file = UMD_FILES.map((f) => join(dist, f)).find((f) => existsSync(f));
  if (file === undefined) throw new BertfleetError(`chart.js: expected its UMD build (${UMD_FILES.join(' or ')}) in ${dist}, found neither`);
  cached = readFileSync(file, 'utf8');
  return cached;
}

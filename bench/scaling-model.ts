/**
 * Prints the exchange-at-scale model of docs/SCALING.md (bench/scaling-model-lib.ts):
 * for each worker count, the bytes per step on a worker's link and on the
 * busiest link, and the exchange time, for one coordinator, K reducers, a
 * ring all-reduce and K = N reducers colocated on the workers; then the K each
 * worker count needs. Pure arithmetic: nothing is measured or started.
 *   npx tsx bench/scaling-model.ts [--link-gbps=25] [--workers=8,32,128] [--reducers=4,8,16]
 *     [--preset=base | --params=110106428] [--latency-us=50] [--add-gbytes-per-s=12.8,2.75]
 * --reducers: the K of the reducers rows; K = N is always added. --add-gbytes-per-s: the
 * native `a += b` rate (GB of addend per s; the first is used for the rows, every one for the
 * K-needed table). Defaults: `npx tsx bench/vector.ts`, 110 M floats, on this machine
 * (native 34.4 ms, JS 160.2 ms per 440 MB). Prints markdown tables and one JSON line per row.
 */
import { parseArgs } from 'node:util';
import { isPresetName, PRESET_NAMES, type PresetName } from '../shared/model/config.js';
import { ConfigError } from '../shared/errors.js';
import {
  estimate,
  linkBytesPerSecond,
  presetParamCount,
  reducersNeeded,
  type Design,
  type Estimate,
  type LinkModel,
} from './scaling-model-lib.js';

interface Options {
  link: LinkModel;
  addRates: number[];
  workers: number[];
  reducers: number[];
  params: number;
  source: string;
}

function numberList(name: string, raw: string, integer: boolean, problems: string[]): number[] {
  const xs = raw.split(',').map((s) => Number(s.trim()));
  const bad = xs.filter((x) => !Number.isFinite(x) || x <= 0 || (integer && !Number.isInteger(x)));
  if (bad.length > 0 || xs.length === 0) problems.push(`--${name}: expected a comma list of positive ${integer ? 'integers' : 'numbers'}, got "${raw}"`);
  return xs;
}

function options(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      'link-gbps': { type: 'string', default: '25' },
      workers: { type: 'string', default: '8,32,128' },
      reducers: { type: 'string', default: '4,8,16' },
      preset: { type: 'string', default: 'base' },
      params: { type: 'string' },
      'latency-us': { type: 'string', default: '50' },
      'add-gbytes-per-s': { type: 'string', default: '12.8,2.75' },
    },
  });
  const problems: string[] = [];
  const [linkGbps] = numberList('link-gbps', values['link-gbps'], false, problems);
  const latencyUs = Number(values['latency-us']);
  if (!Number.isFinite(latencyUs) || latencyUs < 0) problems.push(`--latency-us: expected a number >= 0, got "${values['latency-us']}"`);
  const addRates = numberList('add-gbytes-per-s', values['add-gbytes-per-s'], false, problems);
  const workers = numberList('workers', values.workers, true, problems);
  const reducers = numberList('reducers', values.reducers, true, problems);
  const preset = values.preset;
  if (!isPresetName(preset)) problems.push(`--preset: expected one of ${PRESET_NAMES.join(', ')}, got "${preset}"`);
  let params = 0;
  let source = '';
  if (values.params !== undefined) {
    [params] = numberList('params', values.params, true, problems);
    source = '--params';
  } else if (isPresetName(preset)) {
    params = presetParamCount(preset as PresetName);
    source = `preset ${preset}, pretraining heads`;
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { link: { linkGbps: linkGbps!, latencyUs, addGBps: addRates[0]! }, addRates, workers, reducers, params: params!, source };
}

const LABEL: Record<Design, string> = {
  coordinator: '(a) one coordinator',
  reducers: '(b) K reducers',
  ring: '(c) ring all-reduce',
  colocated: '(d) K = N reducers on the workers',
};

function rowsFor(o: Options): Estimate[] {
  const out: Estimate[] = [];
  for (const N of o.workers) {
    out.push(estimate('coordinator', N, o.params, o.link));
    const ks = [...new Set([...o.reducers, N])].sort((a, b) => a - b);
    for (const K of ks) out.push(estimate('reducers', N, o.params, o.link, K));
    out.push(estimate('ring', N, o.params, o.link));
    out.push(estimate('colocated', N, o.params, o.link));
  }
  return out;
}

const gb = (bytes: number): string => (bytes / 1e9).toFixed(3);
const ms = (x: number): string => x.toFixed(1);

function printRows(rows: Estimate[]): void {
  console.log('| N | design | K | worker link GB each way | busiest link GB each way | link ms | busiest adder GB | add ms | latency ms | exchange ms/step |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const k = r.reducers === null ? '–' : r.design === 'reducers' && r.reducers === r.workers ? `${r.reducers} (= N)` : String(r.reducers);
    const cells = [r.workers, LABEL[r.design], k, gb(r.workerLinkBytes), gb(r.busiestLinkBytes), ms(r.transferMs), gb(r.busiestAddBytes), ms(r.addMs), ms(r.latencyMs), ms(r.exchangeMs)];
    console.log(`| ${cells.join(' | ')} |`);
  }
}

function printNeeded(o: Options): void {
  const head = o.addRates.map((a) => `K for adds at ${a} GB/s`);
  console.log(`| N | K for links (= N) | ${head.join(' | ')} |`);
  console.log(`|---|---|${head.map(() => '---|').join('')}`);
  for (const N of o.workers) {
    const forAdds = o.addRates.map((a) => reducersNeeded(N, o.link.linkGbps, a).forAdds);
    console.log(`| ${N} | ${N} | ${forAdds.join(' | ')} |`);
  }
}

function main(): void {
  const o = options(process.argv.slice(2));
  const G = o.params * 4;
  const B = linkBytesPerSecond(o.link.linkGbps);
  console.log(
    `P = ${o.params.toLocaleString('en-US')} parameters (${o.source}), G = ${gb(G)} GB of float32 gradient; ` +
      `links ${o.link.linkGbps} Gb/s = ${(B / 1e9).toFixed(3)} GB/s each way, full duplex; ${o.link.latencyUs} µs per hop; ` +
      `adds at ${o.link.addGBps} GB/s, overlapping arrival`,
  );
  console.log('');
  const rows = rowsFor(o);
  printRows(rows);
  console.log('');
  printNeeded(o);
  for (const r of rows) console.log(JSON.stringify({ model: 'scaling', linkGbps: o.link.linkGbps, latencyUs: o.link.latencyUs, addGBps: o.link.addGBps, params: o.params, ...r }));
  for (const N of o.workers) {
    for (const a of o.addRates) console.log(JSON.stringify({ model: 'scaling-reducers-needed', workers: N, linkGbps: o.link.linkGbps, addGBps: a, ...reducersNeeded(N, o.link.linkGbps, a) }));
  }
}

main();

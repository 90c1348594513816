/**
 * `bertfleet report OUTPUT`: (re)builds OUTPUT/report.html — the
 * dashboard's plots and the final metrics, self-contained, viewable offline
 * — from the run's files (steps.jsonl, metrics.json, run-config.json, and
 * run-summary.json and run-events.jsonl where present), for any past run or
 * one still going. Prints the file's path on stdout.
 */
import { parseArgs } from 'node:util';
import { writeReport } from '../web/report.js';
import { UsageError } from './args.js';

const HELP = `usage: bertfleet report OUTPUT

Writes OUTPUT/report.html from the run in OUTPUT (the --output of bertfleet
train or cluster): loss and accuracy curves per phase, throughput, step time
per worker, membership and phases, evaluation with the confusion matrix, the
final metrics beside the majority-class baseline. One file, Chart.js and the
data inlined: it opens offline. Every run writes it when it ends; this
rebuilds it (say, for a run stopped early, or from before reports existed).`;

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  let positionals: string[];
  try {
    ({ positionals } = parseArgs({ args: argv, options: {}, strict: true, allowPositionals: true }));
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n\n${HELP}`);
  }
  if (positionals.length !== 1) throw new UsageError(`expected one run folder, got ${positionals.length === 0 ? 'none' : positionals.map((p) => JSON.stringify(p)).join(' ')}\n\n${HELP}`);
  process.stdout.write(`${writeReport(positionals[0]!)}\n`);
  return 0;
}

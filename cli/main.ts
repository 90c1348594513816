/**
 * The `bertfleet` command: dispatches to one module per subcommand. This is an
 * entry point, so it alone (with the subcommand modules) reads argv and the
 * environment, installs signal handlers and builds the root logger.
 */
import { describeError, RUN_STOPPED_EXIT, stopsRunForGood } from '../shared/errors.js';
import { UsageError } from './args.js';

const COMMANDS: Record<string, { summary: string; load: () => Promise<{ run(argv: string[]): Promise<number> }> }> = {
  infer: { summary: 'run a checkpoint on token ids (BertForPreTraining outputs)', load: () => import('./infer.js') },
  train: { summary: 'pretrain, finetune and evaluate in one process', load: () => import('./train.js') },
  cluster: { summary: 'the same pipeline on a local cluster: nats-server, coordinator, N workers', load: () => import('./cluster.js') },
  coordinator: { summary: 'run a coordinator (for Kubernetes or your own cluster)', load: () => import('./coordinator.js') },
  worker: { summary: 'run a worker that joins a coordinator', load: () => import('./worker.js') },
  reducer: { summary: 'sum one slice of every gradient for a coordinator started with --reducers', load: () => import('./reducer.js') },
  report: { summary: 'write OUTPUT/report.html (plots, evaluation, final metrics; opens offline) from a run folder', load: () => import('./report.js') },
  pki: { summary: 'make a CA, certificates and NATS credentials for a deployment (init, add-worker)', load: () => import('./pki.js') },
  bench: { summary: 'benchmarks beside PyTorch where installed: --suite compute (per backend) or cluster (workers, exchange, DDP)', load: () => import('../bench/main.js') },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(12)} ${c.summary}`);
  return `usage: bertfleet <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nbertfleet <command> --help shows a command's options.`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${usage()}\n`);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version') {
    const { createRequire } = await import('node:module');
    process.stdout.write(`${(createRequire(import.meta.url)('../package.json') as { version: string }).version}\n`);
    return 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    process.stderr.write(`bertfleet: unknown command "${name}"\n\n${usage()}\n`);
    return 2;
  }
  return (await cmd.load()).run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bertfleet: ${describeError(err)}\n`);
    process.exitCode = err instanceof UsageError ? 2 : stopsRunForGood(err) ? RUN_STOPPED_EXIT : 1;
  },
);

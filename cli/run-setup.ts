/**
 * The model and data set-up of `train`, `cluster` and `coordinator`; it lives in
 * shared/run-setup.ts so a worker's compute thread (which must not import cli/)
 * runs the same code. Re-exported here for the commands.
 */
export { prepareRun, resolveModel } from '../shared/run-setup.js';

/**
 * What must be equal in every process of a distributed run for its results
 * to be byte-identical: the protocol version, the model architecture, the
 * vocabulary, the data, and the tensor backend with its thread settings, the
 * OpenBLAS core, the C library and the CPU's numeric features
 * (`backend_fingerprint`, shared/backend/select.ts). Each worker computes all
 * five from what it loaded and sends them at registration. The coordinator
 * computes the first four itself (`inputFingerprints`) and compares them;
 * it runs no tensor code (its update, reduction, checksums and metrics are
 * flat-vector arithmetic that gives the same bytes on any backend and
 * machine), so the backend fingerprint a worker must match is not the
 * coordinator's but the run's compute fingerprint: the first admitted
 * worker's, pinned for the run and kept in its trainer state, so a resumed
 * run refuses workers that compute differently (coordinator/compute-fingerprint.ts).
 * The first mismatch is refused naming the field. What no fingerprint shows
 * (a GPU's atomics, a faulty core) is left to the gradient audit
 * (cluster.auditEverySteps).
 *
 * Knows nothing of gRPC or of how the values were loaded.
 */
import { backendFingerprint, type BackendInfo } from '../backend/select.js';
import type { RunData } from '../data/run-data.js';
import { ProtocolError } from '../errors.js';
import { configFingerprint, type BertConfig } from '../model/config.js';
import { PROTOCOL_VERSION } from '../wire/messages.js';

export interface RunFingerprints {
  protocol_version: number;
  model_config_fingerprint: string;
  vocab_fingerprint: string;
  data_fingerprint: string;
  backend_fingerprint: string;
}

/** What the run's inputs are, whoever computes on them: everything but the backend. */
export type RunInputFingerprints = Omit<RunFingerprints, 'backend_fingerprint'>;

export function inputFingerprints(bert: BertConfig, data: Pick<RunData, 'vocab' | 'datasets'>): RunInputFingerprints {
  return {
    protocol_version: PROTOCOL_VERSION,
    model_config_fingerprint: configFingerprint(bert),
    vocab_fingerprint: data.vocab.fingerprint,
    data_fingerprint: data.datasets.fingerprint,
  };
}

/** A worker's five: the inputs and the backend it computes with. */
export function runFingerprints(bert: BertConfig, data: Pick<RunData, 'vocab' | 'datasets'>, backend: BackendInfo): RunFingerprints {
  return { ...inputFingerprints(bert, data), backend_fingerprint: backendFingerprint(backend) };
}

/** The order fields are checked in: the most basic mismatch is the one reported. */
const INPUT_FIELDS: readonly (keyof RunInputFingerprints)[] = [
  'protocol_version',
  'model_config_fingerprint',
  'vocab_fingerprint',
  'data_fingerprint',
];

/** Throws ProtocolError `<who>: <field> differs: expected X, got Y` on the first mismatch of the inputs. */
export function checkInputFingerprints(expected: RunInputFingerprints, got: RunInputFingerprints, who: string): void {
  for (const field of INPUT_FIELDS) {
    if (expected[field] !== got[field]) {
      throw new ProtocolError(`${who}: ${field} differs: expected ${expected[field]}, got ${got[field]}`);
    }
  }
}

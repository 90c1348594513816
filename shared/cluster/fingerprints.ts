/**
 * What must be equal in every process of a distributed run for its results
 * to be byte-identical: the protocol version, the model architecture, the
 * vocabulary, the data, and the tensor backend with its thread settings, the
 * OpenBLAS core, the C library and the CPU's numeric features
 * (`backend_fingerprint`, shared/backend/select.ts). Each side computes its
 * own from what it loaded; the coordinator compares a worker's at
 * registration and refuses it naming the first field that differs. What no
 * fingerprint shows (a GPU's atomics, a faulty core) is left to the gradient
 * audit (cluster.auditEverySteps).
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

export function runFingerprints(bert: BertConfig, data: Pick<RunData, 'vocab' | 'datasets'>, backend: BackendInfo): RunFingerprints {
  return {
    protocol_version: PROTOCOL_VERSION,
    model_config_fingerprint: configFingerprint(bert),
    vocab_fingerprint: data.vocab.fingerprint,
    data_fingerprint: data.datasets.fingerprint,
    backend_fingerprint: backendFingerprint(backend),
  };
}

/** The order fields are checked in: the most basic mismatch is the one reported. */
const FIELDS: readonly (keyof RunFingerprints)[] = [
  'protocol_version',
  'model_config_fingerprint',
  'vocab_fingerprint',
  'data_fingerprint',
  'backend_fingerprint',
];

/** Throws ProtocolError `<who>: <field> differs: expected X, got Y` on the first mismatch. */
export function checkFingerprints(expected: RunFingerprints, got: RunFingerprints, who: string): void {
  for (const field of FIELDS) {
    if (expected[field] !== got[field]) {
      throw new ProtocolError(`${who}: ${field} differs: expected ${expected[field]}, got ${got[field]}`);
    }
  }
}

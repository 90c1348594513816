/**
 * Splits pretraining documents into a training part and a held-out part for
 * evaluating MLM/NSP on text never trained on. The partition is a shuffle of
 * document indices by the run seed on its own Rng stream (so it does not
 * depend on dupe_factor or any other setting): the first round(n·fraction)
 * documents, at least 2 so that NSP can draw a random next, are held out.
 * Knows nothing of tokens or files.
 */
import { InputError } from '../errors.js';
import { Rng } from './rng.js';

export interface HeldOutChoice {
  fraction: number;
  part: 'train' | 'heldout';
}

/** Rng stream for the partition, apart from the example-making stream 0. */
const HELD_OUT_STREAM = 1;

/** The documents of `choice.part`, in their original order. */
export function selectHeldOutPart<T>(documents: readonly T[], choice: HeldOutChoice, seed: number): T[] {
  const n = documents.length;
  const heldCount = Math.max(2, Math.round(n * choice.fraction));
  if (n - heldCount < 2) {
    throw new InputError(
      `held-out split: ${n} documents cannot give ${heldCount} held-out documents (fraction ${choice.fraction}, at least 2) ` +
        'and still leave 2 or more for training; use a larger corpus or no held-out share',
    );
  }
  const order = Array.from({ length: n }, (_, i) => i);
  new Rng(seed, HELD_OUT_STREAM).shuffle(order);
  const held = new Uint8Array(n);
  for (let k = 0; k < heldCount; k++) held[order[k]!] = 1;
  const want = choice.part === 'heldout' ? 1 : 0;
  return documents.filter((_, i) => held[i] === want);
}

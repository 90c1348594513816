/**
 * Turns documents of sentence strings into documents of WordPiece ids, as
 * create_pretraining_data.py's create_training_instances does while reading:
 * a sentence that tokenizes to nothing is dropped, and so is a document left
 * empty. Counts what it saw for the preparation log. Knows nothing of masking,
 * examples or files.
 */
import type { Document } from './corpora.js';
import type { TokenizedDocument } from './pretraining-examples.js';
import type { Tokenizer } from './tokenizer.js';

export interface TokenizedCorpus {
  documents: TokenizedDocument[];
  sentences: number;
  tokens: number;
  unknownTokens: number;
}

export function tokenizeDocuments(
  documents: readonly Document[],
  tokenizer: Tokenizer,
  onDocument?: (done: number, total: number) => void,
): TokenizedCorpus {
  const unk = tokenizer.vocab.specialIds.unk;
  const out: TokenizedDocument[] = [];
  let sentences = 0;
  let tokens = 0;
  let unknownTokens = 0;
  documents.forEach((doc, d) => {
    const tokenized: Int32Array[] = [];
    for (const sentence of doc) {
      const ids = tokenizer.encodeWords(sentence);
      if (ids.length === 0) continue;
      tokenized.push(Int32Array.from(ids));
      tokens += ids.length;
      for (const id of ids) if (id === unk) unknownTokens++;
    }
    if (tokenized.length > 0) {
      out.push(tokenized);
      sentences += tokenized.length;
    }
    onDocument?.(d + 1, documents.length);
  });
  return { documents: out, sentences, tokens, unknownTokens };
}

/** The counts of a tokenized corpus (or a part of one). */
export function countTokenized(documents: readonly TokenizedDocument[], unkId: number): TokenizedCorpus {
  let sentences = 0;
  let tokens = 0;
  let unknownTokens = 0;
  for (const doc of documents) {
    sentences += doc.length;
    for (const sentence of doc) {
      tokens += sentence.length;
      for (const id of sentence) if (id === unkId) unknownTokens++;
    }
  }
  return { documents: [...documents], sentences, tokens, unknownTokens };
}

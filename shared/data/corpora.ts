/**
 * Pretraining corpus sources: the embedded default (SOTU + Moby-Dick + Brown)
 * and user text files in google-research/bert's format (one sentence per line,
 * a blank line between documents). A source has an identity (package version,
 * or the sha256 of a file's bytes) that goes into the cache key, so the same
 * text gives the same key on every machine whatever its path.
 * Evaluation texts stay out of pretraining: the default classification set
 * (UCI Sentiment Labelled Sentences) is not in these corpora (a test checks it);
 * user corpora are the user's responsibility.
 * This file knows nothing of tokens, examples or caches.
 */
import { createHash } from 'node:crypto';
import { InputError } from '../errors.js';
import { EMBEDDED_CORPORA, readEmbeddedCorpus, type Document, type EmbeddedCorpusName } from './corpus-embedded.js';
import { installedPackage } from './packages.js';
import { readUserFile } from './user-file.js';

export type { Document, EmbeddedCorpusName };

export type CorpusSource =
  | { kind: 'embedded'; name: EmbeddedCorpusName; /** keep only the first N documents */ maxDocuments?: number }
  | { kind: 'file'; path: string };

/** The embedded default pretraining corpus, in this order. */
export const DEFAULT_PRETRAIN_SOURCES: readonly CorpusSource[] = Object.freeze([
  { kind: 'embedded', name: 'sotu' },
  { kind: 'embedded', name: 'moby-dick' },
  { kind: 'embedded', name: 'brown' },
]);

/** What identifies a source's content for the cache key. */
export type SourceIdentity =
  | { kind: 'embedded'; name: EmbeddedCorpusName; package: string; maxDocuments: number | null }
  | { kind: 'file'; sha256: string; bytes: number };

export function sourceIdentity(source: CorpusSource): SourceIdentity {
  if (source.kind === 'embedded') {
    const pkg = installedPackage(EMBEDDED_CORPORA[source.name]);
    return { kind: 'embedded', name: source.name, package: `${pkg.name}@${pkg.version}`, maxDocuments: source.maxDocuments ?? null };
  }
  const bytes = readUserFile(source.path, 'corpus');
  return { kind: 'file', sha256: createHash('sha256').update(bytes).digest('hex'), bytes: bytes.length };
}

export function describeSource(source: CorpusSource): string {
  return source.kind === 'embedded' ? `embedded:${source.name}` : source.path;
}

/** The documents of one source (sentences as strings; empty documents dropped). */
export function readCorpus(source: CorpusSource): Document[] {
  if (source.kind === 'embedded') return readEmbeddedCorpus(source.name, source.maxDocuments);
  return parseCorpusText(readUserFile(source.path, 'corpus').toString('utf8'));
}

/**
 * google-research/bert's input format (create_pretraining_data.py:
 * create_training_instances): each line stripped; an empty line starts a new
 * document; empty documents are removed.
 */
export function parseCorpusText(text: string): Document[] {
  const docs: Document[] = [[]];
  for (const raw of text.replace(/^\uFEFF/, '').split('\n')) {
    const line = raw.trim();
    if (line === '') docs.push([]);
    else docs[docs.length - 1]!.push(line);
  }
  return docs.filter((d) => d.length > 0);
}

/**
 * Next-sentence prediction needs an actual next sentence (a document with two or
 * more sentences) and a random next from another document (two documents or
 * more). `sentenceCounts` are per document, after tokenization dropped empty
 * sentences; `what` names the corpus for the message.
 */
export function assertNspPossible(sentenceCounts: readonly number[], what: string): void {
  if (sentenceCounts.length < 2) {
    throw new InputError(
      `${what}: NSP is impossible: found ${sentenceCounts.length} document(s), need at least 2 ` +
        '(a "random next" segment is drawn from a different document; separate documents with a blank line)',
    );
  }
  if (!sentenceCounts.some((n) => n >= 2)) {
    throw new InputError(
      `${what}: NSP is impossible: no document has two or more sentences (${sentenceCounts.length} documents, ` +
        'each of one sentence), so there is never an "actual next" sentence; put one sentence per line and a blank line between documents',
    );
  }
}

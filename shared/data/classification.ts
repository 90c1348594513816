/**
 * Sequence-classification data: the example and label-map types, and the
 * loader for user files (CSV per RFC 4180, TSV, or JSONL) with a `text`
 * column, an optional `text_b` and a `label` (strings or integers). Labels map
 * to ids by sorted label string (numerically when every label is an integer),
 * and the map is saved beside the model in Hugging Face's id2label/label2id
 * form. Every problem is an InputError that names the file and lines.
 * Knows nothing of tokenization, splitting or training.
 */
import { extname } from 'node:path';
import { InputError } from '../errors.js';
import { readUserFile } from './user-file.js';
import { parseCsv, parseTsv, type DelimitedParse } from './delimited.js';

export interface ClassificationExample {
  text: string;
  textB?: string;
  /** Label id: index into the dataset's `labels`. */
  label: number;
  /** 1-based line in the source file, for messages. */
  line?: number;
}

export interface ClassificationData {
  /** A path or "embedded:…". */
  source: string;
  /** Label strings; id = index. */
  labels: readonly string[];
  examples: ClassificationExample[];
  /** Exact duplicates (same text, text_b and label) removed while loading. */
  duplicatesDropped: number;
}

export type ClassificationFormat = 'csv' | 'tsv' | 'jsonl';

export interface ClassificationColumns {
  text: string;
  textB: string;
  label: string;
}

export const DEFAULT_COLUMNS: Readonly<ClassificationColumns> = Object.freeze({ text: 'text', textB: 'text_b', label: 'label' });

/** A row before labels become ids. */
export interface RawExample {
  text: string;
  textB?: string;
  label: string;
  line: number;
}

const SHOWN_LINES = 5;

export function formatOf(path: string): ClassificationFormat {
  const ext = extname(path).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.tsv' || ext === '.tab') return 'tsv';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  throw new InputError(`classification file ${path}: cannot tell its format from "${ext || '(no extension)'}": expected .csv, .tsv or .jsonl`);
}

export function loadClassificationFile(
  path: string,
  options: { format?: ClassificationFormat; columns?: Partial<ClassificationColumns> } = {},
): ClassificationData {
  const format = options.format ?? formatOf(path);
  const columns = { ...DEFAULT_COLUMNS, ...options.columns };
  const text = readUserFile(path, 'classification').toString('utf8');
  const raw = format === 'jsonl' ? rowsFromJsonl(text, path, columns) : rowsFromTable(format === 'csv' ? parseCsv(text) : parseTsv(text), path, columns);
  return labelExamples(raw, path);
}

/** Sorted label strings (numeric order when all are integers) and the examples with label ids; rejects one class. */
export function labelExamples(raw: readonly RawExample[], source: string): ClassificationData {
  if (raw.length === 0) throw new InputError(`${source}: no examples found`);
  const labels = sortLabels(new Set(raw.map((r) => r.label)));
  if (labels.length < 2) {
    throw new InputError(`${source}: only one class ("${labels[0]}") among ${raw.length} examples; classification needs at least two`);
  }
  const idOf = new Map(labels.map((l, i) => [l, i]));
  const seen = new Set<string>();
  const examples: ClassificationExample[] = [];
  for (const r of raw) {
    const key = JSON.stringify([r.text, r.textB ?? null, r.label]);
    if (seen.has(key)) continue;
    seen.add(key);
    examples.push({ text: r.text, ...(r.textB !== undefined ? { textB: r.textB } : {}), label: idOf.get(r.label)!, line: r.line });
  }
  return { source, labels, examples, duplicatesDropped: raw.length - examples.length };
}

export function sortLabels(labels: Iterable<string>): string[] {
  const all = [...labels];
  if (all.every((l) => /^-?\d+$/.test(l))) return all.sort((a, b) => Number(a) - Number(b));
  return all.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Hugging Face config form, to save beside the model. */
export function labelMapJson(labels: readonly string[]): { id2label: Record<string, string>; label2id: Record<string, number> } {
  return {
    id2label: Object.fromEntries(labels.map((l, i) => [String(i), l])),
    label2id: Object.fromEntries(labels.map((l, i) => [l, i])),
  };
}

function rowsFromTable(parsed: DelimitedParse, path: string, columns: ClassificationColumns): RawExample[] {
  const [header, ...rows] = parsed.records;
  if (!header) throw new InputError(`classification file ${path} has no header row`);
  const names = header.fields.map((f) => f.trim().toLowerCase());
  const find = (name: string) => names.indexOf(name.toLowerCase());
  const [ti, bi, li] = [find(columns.text), find(columns.textB), find(columns.label)];
  const missing = [ti < 0 ? columns.text : null, li < 0 ? columns.label : null].filter((x) => x !== null);
  if (missing.length > 0) throw missingColumns(path, missing, header.fields, columns, 'columns');
  const problems = [...parsed.problems];
  const out: RawExample[] = [];
  for (const { fields, line } of rows) {
    if (fields.length !== header.fields.length) {
      problems.push({ line, message: `${fields.length} fields, expected ${header.fields.length} as in the header` });
      continue;
    }
    const row = checkRow(fields[ti]!, bi >= 0 ? fields[bi] : undefined, fields[li]!.trim(), line, columns);
    if (typeof row === 'string') problems.push({ line, message: row });
    else out.push(row);
  }
  throwIfProblems(path, problems);
  return out;
}

function rowsFromJsonl(text: string, path: string, columns: ClassificationColumns): RawExample[] {
  const problems: { line: number; message: string }[] = [];
  const out: RawExample[] = [];
  const keysSeen = new Set<string>();
  let anyLabel = false;
  text.replace(/^\uFEFF/, '').split('\n').forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === '') return;
    let obj: unknown;
    try {
      obj = JSON.parse(raw);
    } catch {
      problems.push({ line, message: 'not valid JSON' });
      return;
    }
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
      problems.push({ line, message: 'not a JSON object' });
      return;
    }
    const rec = obj as Record<string, unknown>;
    Object.keys(rec).forEach((k) => keysSeen.add(k));
    const label = rec[columns.label];
    if (label !== undefined) anyLabel = true;
    const labelText = typeof label === 'string' ? label.trim() : typeof label === 'number' && Number.isInteger(label) ? String(label) : null;
    const textB = rec[columns.textB];
    if (typeof rec[columns.text] !== 'string') problems.push({ line, message: `"${columns.text}" is missing or not a string` });
    else if (labelText === null) problems.push({ line, message: `"${columns.label}" is missing or not a string or integer` });
    else if (textB !== undefined && textB !== null && typeof textB !== 'string') problems.push({ line, message: `"${columns.textB}" is not a string` });
    else {
      const row = checkRow(rec[columns.text] as string, (textB ?? undefined) as string | undefined, labelText, line, columns);
      if (typeof row === 'string') problems.push({ line, message: row });
      else out.push(row);
    }
  });
  if (!anyLabel && keysSeen.size > 0) throw missingColumns(path, [columns.label], [...keysSeen], columns, 'keys');
  throwIfProblems(path, problems);
  return out;
}

function checkRow(text: string, textB: string | undefined, label: string, line: number, columns: ClassificationColumns): RawExample | string {
  if (text.trim() === '') return `empty "${columns.text}"`;
  if (label === '') return `empty "${columns.label}"`;
  const b = textB !== undefined && textB.trim() !== '' ? textB.trim() : undefined;
  return { text: text.trim(), ...(b !== undefined ? { textB: b } : {}), label, line };
}

function missingColumns(path: string, missing: string[], found: readonly string[], columns: ClassificationColumns, what: string): InputError {
  return new InputError(
    `classification file ${path}: no ${missing.map((m) => `"${m}"`).join(' or ')} ${what === 'keys' ? 'key' : 'column'}; ` +
      `found ${what} ${found.map((f) => `"${f}"`).join(', ')}; expected "${columns.text}", "${columns.label}" and optionally "${columns.textB}"`,
  );
}

function throwIfProblems(path: string, problems: readonly { line: number; message: string }[]): void {
  if (problems.length === 0) return;
  const sorted = [...problems].sort((a, b) => a.line - b.line);
  const shown = sorted.slice(0, SHOWN_LINES).map((p) => `line ${p.line}: ${p.message}`).join('; ');
  const more = sorted.length > SHOWN_LINES ? `; … (${sorted.length - SHOWN_LINES} more)` : '';
  throw new InputError(
    `classification file ${path}: ${sorted.length} unparseable row(s) at lines ${sorted.map((p) => p.line).slice(0, 20).join(', ')}` +
      `${sorted.length > 20 ? ', …' : ''}: ${shown}${more}`,
  );
}

/**
 * Parsers for delimited text with line numbers for messages.
 * CSV follows RFC 4180: comma-separated; a field that starts with a double quote
 * runs to the matching quote, may hold commas, newlines and "" (a quote); CRLF
 * or LF. A stray quote inside an unquoted field is kept as a character (as most
 * spreadsheet exports do). TSV is split on tabs with no quoting (the GLUE
 * convention), so quotes are ordinary characters there. Blank lines are
 * skipped. A record carries the line it starts on. Knows nothing of what the
 * columns mean.
 */

export interface DelimitedRecord {
  fields: string[];
  /** 1-based line on which the record starts. */
  line: number;
}

export interface DelimitedProblem {
  line: number;
  message: string;
}

export interface DelimitedParse {
  records: DelimitedRecord[];
  problems: DelimitedProblem[];
}

export function parseTsv(text: string): DelimitedParse {
  const records: DelimitedRecord[] = [];
  text
    .replace(/^\uFEFF/, '')
    .split('\n')
    .forEach((raw, i) => {
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (line.trim() !== '') records.push({ fields: line.split('\t'), line: i + 1 });
    });
  return { records, problems: [] };
}

/**
 * A character-level state machine (longer than most functions here because the
 * quoting rules are one loop): `field` accumulates, `record` collects fields.
 */
export function parseCsv(input: string): DelimitedParse {
  const text = input.replace(/^\uFEFF/, '');
  const records: DelimitedRecord[] = [];
  const problems: DelimitedProblem[] = [];
  let record: string[] = [];
  let field = '';
  let line = 1;
  let recordLine = 1;
  let badRecord: string | null = null;
  let i = 0;
  const endRecord = () => {
    const blank = record.length === 0 && field.trim() === '';
    record.push(field);
    if (badRecord !== null) problems.push({ line: recordLine, message: badRecord });
    else if (!blank) records.push({ fields: record, line: recordLine });
    record = [];
    field = '';
    badRecord = null;
  };
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"' && field === '') {
      // Quoted field: read to the closing quote.
      const startLine = line;
      let j = i + 1;
      let closed = false;
      while (j < text.length) {
        const q = text[j]!;
        if (q === '"') {
          if (text[j + 1] === '"') {
            field += '"';
            j += 2;
            continue;
          }
          closed = true;
          j++;
          break;
        }
        if (q === '\n') line++;
        field += q;
        j++;
      }
      if (!closed) {
        problems.push({ line: startLine, message: 'quoted field is never closed (a " without its closing ")' });
        return { records, problems };
      }
      i = j;
      const next = text[i];
      if (next !== undefined && next !== ',' && next !== '\n' && next !== '\r') {
        badRecord ??= `unexpected character '${next}' after a closing quote (write "" for a quote inside a quoted field)`;
        // Skip to the end of the field so the rest of the file still parses.
        while (i < text.length && text[i] !== ',' && text[i] !== '\n') i++;
      }
      continue;
    }
    if (c === ',') {
      record.push(field);
      field = '';
    } else if (c === '\n') {
      endRecord();
      line++;
      recordLine = line;
    } else if (c === '\r' && text[i + 1] === '\n') {
      // CRLF: the \n ends the record.
    } else {
      field += c;
    }
    i++;
  }
  if (field !== '' || record.length > 0) endRecord();
  return { records, problems };
}

import { describe, expect, it } from 'vitest';
import { parseCsv, parseTsv } from '../../shared/data/delimited.js';

describe('CSV (RFC 4180)', () => {
  it('handles quoted commas, doubled quotes, newlines in quotes, CRLF and blank lines', () => {
    const { records, problems } = parseCsv('a,b\r\n"x, y","say ""hi"""\r\n\r\n"two\nlines",z\n');
    expect(problems).toEqual([]);
    expect(records).toEqual([
      { fields: ['a', 'b'], line: 1 },
      { fields: ['x, y', 'say "hi"'], line: 2 },
      { fields: ['two\nlines', 'z'], line: 4 },
    ]);
  });

  it('keeps empty fields and a last line without a newline', () => {
    expect(parseCsv('a,,c\n,"",').records.map((r) => r.fields)).toEqual([['a', '', 'c'], ['', '', '']]);
  });

  it('reports text after a closing quote, and an unclosed quote, by line', () => {
    expect(parseCsv('a,b\n"x"y,1\nok,2\n').problems).toEqual([{ line: 2, message: expect.stringMatching(/after a closing quote/) }]);
    expect(parseCsv('a,b\nok,1\n"open,2\nmore\n').problems).toEqual([{ line: 3, message: expect.stringMatching(/never closed/) }]);
  });
});

describe('TSV', () => {
  it('splits on tabs with no quoting', () => {
    expect(parseTsv('a\tb\r\n"q"\tx\n\n').records).toEqual([
      { fields: ['a', 'b'], line: 1 },
      { fields: ['"q"', 'x'], line: 2 },
    ]);
  });
});

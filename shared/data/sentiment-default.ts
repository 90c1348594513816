/**
 * The embedded default classification set: UCI "Sentiment Labelled Sentences"
 * (Kotzias et al., KDD 2015, CC BY 4.0) as shipped in sentiment@5.0.2's
 * test/fixtures/{imdb,amazon,yelp}.json, arrays of {text, class}. Each file
 * ends with an empty record (class null), which is dropped; texts are trimmed
 * and exact duplicates dropped. Classes 0/1 become "negative"/"positive" (ids
 * 0/1, the same numbers). None of these sentences is in the pretraining corpus.
 * Knows nothing of splitting, tokenization or training.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { labelExamples, type ClassificationData, type RawExample } from './classification.js';
import { installedPackage } from './packages.js';

export const SENTIMENT_DOMAINS = ['imdb', 'amazon', 'yelp'] as const;
const CLASS_NAMES = ['negative', 'positive'] as const;

export function loadDefaultSentiment(): ClassificationData {
  const pkg = installedPackage('sentiment');
  const raw: RawExample[] = [];
  for (const domain of SENTIMENT_DOMAINS) {
    const path = join(pkg.dir, 'test', 'fixtures', `${domain}.json`);
    let records: unknown;
    try {
      records = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      throw new InputError(`sentiment@${pkg.version}: ${path} is missing or not JSON`, { cause: err });
    }
    if (!Array.isArray(records)) throw new InputError(`${path}: expected an array of {text, class}`);
    records.forEach((r: { text?: unknown; class?: unknown }, i) => {
      if (r.class === null || r.class === undefined) return; // the trailing empty record
      if (typeof r.text !== 'string' || (r.class !== 0 && r.class !== 1)) {
        throw new InputError(`${path}: record ${i} is not {text: string, class: 0 | 1}`);
      }
      if (r.text.trim() === '') return;
      raw.push({ text: r.text.trim(), label: CLASS_NAMES[r.class], line: i + 1 });
    });
  }
  return labelExamples(raw, `embedded:sentiment@${pkg.version}`);
}

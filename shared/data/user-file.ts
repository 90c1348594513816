/**
 * Reading a file the user named (a corpus, a classification set): InputErrors
 * that name the path when it is missing, not a regular file, or empty.
 * Knows nothing of the file's format.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { InputError } from '../errors.js';

/** Reads a user file, with InputErrors that name the path when it is missing, not a file, or empty. */
export function readUserFile(path: string, what: string): Buffer {
  if (!existsSync(path)) throw new InputError(`${what} file ${path} does not exist`);
  if (!statSync(path).isFile()) throw new InputError(`${what} file ${path} is not a regular file`);
  const bytes = readFileSync(path);
  if (bytes.toString('utf8').trim() === '') throw new InputError(`${what} file ${path} is empty`);
  return bytes;
}

// Checks of output paths, made before a run starts so that a bad --report or --export fails at
// once with a message naming the option, not after the whole run: the path is not of the wrong
// kind, and the directory it goes in exists or can be created and is writable. Nothing is created
// here.
import { accessSync, constants, statSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { OptionError } from './units.js';

function stat(path: string): Stats | null {
  try {
    return statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null; // a file on the way is found walking up
    throw e;
  }
}

function writable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK | constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * `path` is a writable directory, or can be made one: its nearest existing ancestor is a writable
 * directory.
 * @throws OptionError naming `option` and what is in the way
 */
export function checkOutputDir(option: string, path: string): void {
  if (path === '') throw new OptionError(option, 'needs a directory, got an empty path');
  checkDirOnTheWay(option, resolve(path), path, true);
}

/**
 * `path` can be written as a file: it is not a directory, it is writable if it exists, and its
 * directory exists or can be created.
 * @throws OptionError naming `option` and what is in the way
 */
export function checkOutputFile(option: string, path: string): void {
  if (path === '') throw new OptionError(option, 'needs a file name, got an empty path');
  const st = stat(path);
  if (st?.isDirectory()) throw new OptionError(option, `${path} is a directory`);
  if (st) {
    try {
      accessSync(path, constants.W_OK);
    } catch {
      throw new OptionError(option, `${path} is not writable`);
    }
    return;
  }
  checkDirOnTheWay(option, dirname(resolve(path)), path, false);
}

/**
 * Walks up from `dir` to the first path that exists: it must be a writable directory. `given` is
 * the user's path for messages; `isGiven` says whether `dir` is that path itself.
 */
function checkDirOnTheWay(option: string, dir: string, given: string, isGiven: boolean): void {
  for (let at = dir; ; at = dirname(at)) {
    const st = stat(at);
    const self = isGiven && at === dir;
    if (st) {
      if (!st.isDirectory()) throw new OptionError(option, self ? `${given} is a file, not a directory` : `cannot create ${given}: ${at} is a file`);
      if (!writable(at)) throw new OptionError(option, self ? `${given} is not writable` : `cannot create ${given}: ${at} is not writable`);
      return;
    }
    if (dirname(at) === at) throw new OptionError(option, `cannot create ${given}`);
  }
}

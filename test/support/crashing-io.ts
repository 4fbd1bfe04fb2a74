/**
 * The file operations of writeKeyAndChain (lib/secret-files.ts), stopping
 * at operation `at` (0-based) as a crash would: the operations before it are
 * made for real, it and the ones after never happen.
 */

import { rm } from 'node:fs/promises';
import type { KeyChainIo } from '../../lib/secret-files.js';
import { writeFileAtomic } from '../../lib/secret-files.js';

export class Crash extends Error {
  override name = 'Crash';
}

/** What t.rejects expects of a write stopped by crashingIo. */
export const CRASHED = { name: 'Crash', message: /^crash before / };

export function crashingIo(at: number): KeyChainIo & { readonly done: string[] } {
  const done: string[] = [];
  const step = async (what: string, op: () => Promise<void>) => {
    if (done.length === at) throw new Crash(`crash before ${what}`);
    await op();
    done.push(what);
  };
  return {
    done,
    write: (file, data, mode) => step(`write ${file}`, () => writeFileAtomic(file, data, mode)),
    remove: (file) => step(`remove ${file}`, () => rm(file, { force: true })),
  };
}

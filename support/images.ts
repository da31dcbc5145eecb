import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Creates (or empties) a sparse image file of `bytes` in `dir` and returns its path. */
export function sparseImage(dir: string, name: string, bytes: number): string {
  const p = join(dir, name);
  writeFileSync(p, '');
  truncateSync(p, bytes);
  return p;
}

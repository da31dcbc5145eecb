/**
 * The enrolled peers of the enrollment file, for the config loader, which validates them with the
 * config's own peers. The file is read by src/enroll (its rules: a regular file owned by this user
 * or root, mode 0600, version 1; a missing file has no peers); a file it refuses is one problem,
 * labelled with the file, and no enrolled peers.
 */
import { loadEnrollment } from '../enroll/enrollment-file.js';
import { isAoegwError } from '../errors.js';
import type { Problems } from './validate.js';

/** The enrolled peers (raw objects); [] when the file is missing or refused (recorded in `p`). */
export function readEnrolledPeers(p: Problems, file: string): unknown[] {
  try {
    return [...loadEnrollment(file).peers];
  } catch (e) {
    if (!isAoegwError(e, 'ERR_ENROLLMENT_FILE')) throw e;
    // p is labelled with the file already.
    p.note('', e.message.replace(`enrollment file ${file}: `, ''));
    return [];
  }
}

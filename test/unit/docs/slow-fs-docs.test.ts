/**
 * docs/slow-fs.md, the daemon (support/slow-fs/slow-fs.c) and its test helper (support/slow-fs.ts)
 * name the same control-file keys: the docs' tables list every setting and counter the helper
 * knows, with the key the helper writes, and the daemon prints every one of those keys.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  parseSlowFsControl,
  SLOW_FS_SETTING_KEYS,
  SLOW_FS_STAT_KEYS,
  slowFsControlText,
} from '../../../support/slow-fs.js';

const root = join(import.meta.dirname, '..', '..', '..');
const md = readFileSync(join(root, 'docs', 'slow-fs.md'), 'utf8');
const c = readFileSync(join(root, 'support', 'slow-fs', 'slow-fs.c'), 'utf8');

/** Rows like: | `fsyncDelayMs` | `fsync_delay_ms` | ... */
const rows = new Map([...md.matchAll(/^\| `(\w+)` \| `(\w+)` \|/gm)].map((m) => [m[1]!, m[2]!]));

describe('docs/slow-fs.md', () => {
  it('lists every setting and counter once, with its control key', () => {
    const expected = { ...SLOW_FS_SETTING_KEYS, ...SLOW_FS_STAT_KEYS };
    expect(Object.fromEntries(rows)).toEqual(expected);
  });
});

describe('slow-fs control keys', () => {
  it('are the ones the daemon prints and parses', () => {
    const printed = [...c.matchAll(/(\w+)=%[a-z]+\\n/g)].map((m) => m[1]);
    expect(printed.sort()).toEqual(
      [...Object.values(SLOW_FS_SETTING_KEYS), ...Object.values(SLOW_FS_STAT_KEYS)].sort(),
    );
    for (const key of Object.values(SLOW_FS_SETTING_KEYS)) expect(c).toContain(`strcmp(k, "${key}")`);
  });

  it('round-trip through the helper', () => {
    expect(slowFsControlText({ fsyncDelayMs: 20, failWrite: 'ENOSPC', readDelayMs: undefined })).toBe(
      'fsync_delay_ms=20\nfail_write=ENOSPC\n',
    );
    const text =
      'fsync_delay_ms=20\nwrite_delay_ms=1\nread_delay_ms=2\nfail_write=EIO\nfail_fsync=none\nfail_read=none\n' +
      Object.values(SLOW_FS_STAT_KEYS)
        .map((k, i) => `${k}=${i}\n`)
        .join('');
    const { settings, stats } = parseSlowFsControl(text);
    expect(settings).toEqual({
      fsyncDelayMs: 20,
      writeDelayMs: 1,
      readDelayMs: 2,
      failWrite: 'EIO',
      failFsync: 'none',
      failRead: 'none',
    });
    expect(stats.fsyncs).toBe(0);
    expect(stats.maxFsyncsInFlight).toBe(Object.keys(SLOW_FS_STAT_KEYS).length - 1);
  });
});

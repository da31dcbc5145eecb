/**
 * `aoegw serve` start-up refusals, run as the real CLI: each operator error has its own code and
 * exit status (README, Commands) and names what to fix. Every check here runs before any link is
 * opened, so the interface named is never touched (it does not even exist). So does the check that
 * no other daemon runs with the same state file.
 */
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  lstatSync,
  mkdtempSync,
  openSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { nativeAddon } from '../../src/io/native.js';
import { AOEGW } from '../helpers/aoegw.js';
import { sparseImage } from '../helpers/images.js';

const dir = mkdtempSync(join(tmpdir(), 'aoegw-start-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const IFACE = 'nosuchif0';

function serve(...args: string[]) {
  const r = spawnSync(process.execPath, [AOEGW, 'serve', ...args], { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stderr: r.stderr };
}

describe('serve start-up errors', () => {
  it('a bad config file: exit 3, ERR_CONFIG, the file named', () => {
    const cfg = join(dir, 'bad.json');
    writeFileSync(
      cfg,
      JSON.stringify({ links: [{ iface: IFACE }], exports: [{ target: '1.x', path: '/x' }] }),
    );
    const r = serve('--config', cfg);
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/config .*bad\.json: .*exports\[0\]\.target.*\[ERR_CONFIG\]/);
    // A bad flag stays a usage error.
    expect(serve('--iface', IFACE, '--export', '1.1=/x,fast').status).toBe(2);
  });

  it('a corrupt or symlinked state file: exit 4, ERR_STATE_FILE, the file named; the link is left alone', () => {
    const img = sparseImage(dir, 'a.img', 1 << 20);
    const bad = join(dir, 'corrupt.json');
    writeFileSync(bad, '{"version":1,"exports":{"e1.1":{"config":"","masks":["zz"],"reserve":[]}}}');
    let r = serve('--iface', IFACE, '--export', `1.1=${img}`, '--state', bad);
    expect(r.status).toBe(4);
    expect(r.stderr).toMatch(/state file .*corrupt\.json: e1\.1\.masks has 'zz'.*\[ERR_STATE_FILE\]/);
    const real = join(dir, 'real.json');
    writeFileSync(real, '{"version":1,"exports":{}}');
    const link = join(dir, 'link.json');
    symlinkSync(real, link);
    r = serve('--iface', IFACE, '--export', `1.1=${img}`, '--state', link);
    expect(r.status).toBe(4);
    expect(r.stderr).toMatch(/link\.json: is a symbolic link.*\[ERR_STATE_FILE\]/);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
  });

  it('a second daemon for the same state file stops before it opens anything, naming the holder', () => {
    const img = sparseImage(dir, 'locked.img', 1 << 20);
    const state = join(dir, 'locked-state.json');
    // This process holds the lock as a running daemon would.
    const fd = openSync(`${state}.lock`, 'w', 0o600);
    try {
      expect(nativeAddon().tryLock(fd)).toBe(true);
      writeSync(fd, `${process.pid}\n`);
      const r = serve('--iface', IFACE, '--export', `1.1=${img}`, '--state', state);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(
        new RegExp(
          `another aoegw \\(pid ${process.pid}\\) runs with the state file .*locked-state\\.json .*\\[ERR_DAEMON_RUNNING\\]`,
        ),
      );
    } finally {
      closeSync(fd);
    }
    // Released (the holder is gone): the next start gets past the lock (and fails on the missing interface).
    expect(serve('--iface', IFACE, '--export', `1.1=${img}`, '--state', state).stderr).not.toMatch(
      /ERR_DAEMON_RUNNING/,
    );
  });

  it('an export that cannot be opened: exit 5, ERR_STORE_OPEN', () => {
    const r = serve(
      '--iface',
      IFACE,
      '--export',
      `1.1=${join(dir, 'missing.img')}`,
      '--state',
      join(dir, 's1.json'),
    );
    expect(r.status).toBe(5);
    expect(r.stderr).toMatch(/missing\.img.*\[ERR_STORE_OPEN\]/);
  });

  it('two writable exports over the same bytes (also via a symlink) are refused; read-only overlaps pass', () => {
    const img = sparseImage(dir, 'shared.img', 4 << 20);
    const alias = join(dir, 'alias.img');
    symlinkSync(img, alias);
    const state = join(dir, 's2.json');
    let r = serve('--iface', IFACE, '--export', `1.1=${img}`, '--export', `1.2=${alias}`, '--state', state);
    expect(r.status).toBe(5);
    expect(r.stderr).toMatch(
      /exports e1\.1 .* and e1\.2 .* are both writable and overlap on the same file.*\[ERR_STORE_OPEN\]/,
    );
    // Overlapping windows by offset/length.
    r = serve(
      '--iface',
      IFACE,
      '--export',
      `1.1=${img},length=2097152`,
      '--export',
      `1.2=${img},offset=1048576`,
      '--state',
      state,
    );
    expect(r.status).toBe(5);
    // Disjoint windows of one file, and a read-only export over a writable one's bytes, pass the
    // store checks: start-up goes on to open the link (which does not exist here).
    for (const second of [`1.2=${alias},offset=2097152`, `1.2=${alias},ro`]) {
      r = serve(
        '--iface',
        IFACE,
        '--export',
        `1.1=${img},length=2097152`,
        '--export',
        second,
        '--state',
        state,
      );
      expect(r.stderr).toMatch(/ERR_NO_SUCH_INTERFACE/);
      expect(r.status).toBe(1);
    }
  });
});

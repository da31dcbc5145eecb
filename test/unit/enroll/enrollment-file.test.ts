import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { addInvite, EMPTY_ENROLLMENT, type PendingInvite } from '../../../src/enroll/enrollment-doc.js';
import {
  enrollmentPathOf,
  loadEnrollment,
  saveEnrollment,
  updateEnrollment,
} from '../../../src/enroll/enrollment-file.js';

const NOW = Date.parse('2026-12-06T00:00:00.000Z');
const HOUR = 3_600_000;
const root = mkdtempSync(join(tmpdir(), 'aoegw-enroll-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => {
  const d = join(root, `t${n++}`);
  mkdirSync(d);
  return join(d, 'enrollment.json');
};

function invite(k: number, expiresAtMs = NOW + HOUR): PendingInvite {
  const id = new Uint8Array(16).fill(k);
  return {
    id,
    psk: new Uint8Array(32).fill(0xe0 + k),
    name: `site-${k}`,
    allow: [{ targets: ['1.1'], access: 'ro' }],
    expiresAtMs,
    createdAtMs: NOW,
  };
}
const pskText = (k: number) => Buffer.alloc(32, 0xe0 + k).toString('base64');

const refused = (path: string, re: RegExp) =>
  expect(() => loadEnrollment(path)).toThrow(
    expect.objectContaining({ code: 'ERR_ENROLLMENT_FILE', message: expect.stringMatching(re) }),
  );

describe('enrollment file', () => {
  it('lives beside the state file', () => {
    expect(enrollmentPathOf({ stateFile: '/var/lib/aoegw/state.json' })).toBe(
      '/var/lib/aoegw/enrollment.json',
    );
  });

  it('is empty when missing; saves with mode 0600 and loads back', () => {
    const p = fresh();
    expect(loadEnrollment(p)).toEqual(EMPTY_ENROLLMENT);
    const doc = { invites: [invite(1)], peers: [{ name: 'peer-x', publicKey: 'k', allow: [] }] };
    saveEnrollment(p, doc, NOW);
    expect(statSync(p).mode & 0o777).toBe(0o600);
    expect(loadEnrollment(p)).toEqual(doc);
    expect(JSON.parse(readFileSync(p, 'utf8')).version).toBe(1);
    expect(readdirSync(join(p, '..'))).toEqual(['enrollment.json']);
  });

  it('keeps the replaced version’s peers as .prev (mode 0600), never its invites, and no temporary file', () => {
    const p = fresh();
    const peer = { name: 'peer-x', publicKey: 'k', allow: [] };
    saveEnrollment(p, { invites: [invite(1)], peers: [peer] }, NOW);
    // The invite is burned (the peer enrolled): .prev must not bring it back, nor hold its PSK.
    saveEnrollment(p, { invites: [invite(2)], peers: [peer, { ...peer, name: 'peer-y' }] }, NOW);
    const prev = readFileSync(`${p}.prev`, 'utf8');
    expect(JSON.parse(prev)).toEqual({ version: 1, invites: [], peers: [peer] });
    expect(prev).not.toContain(Buffer.from(invite(1).psk).toString('base64'));
    expect(statSync(`${p}.prev`).mode & 0o777).toBe(0o600);
    expect(loadEnrollment(`${p}.prev`).invites).toEqual([]);
    expect(loadEnrollment(p).invites).toHaveLength(1);
    expect(readdirSync(join(p, '..')).sort()).toEqual(['enrollment.json', 'enrollment.json.prev']);
  });

  it('keeps a replaced version that does not parse as it is (for whoever repairs it)', () => {
    const p = fresh();
    saveEnrollment(p, { invites: [], peers: [] }, NOW);
    writeFileSync(p, '{"version": 1, "peers": [', { mode: 0o600 });
    saveEnrollment(p, { invites: [invite(1)], peers: [] }, NOW);
    expect(readFileSync(`${p}.prev`, 'utf8')).toBe('{"version": 1, "peers": [');
  });

  it('drops expired invites on every write', () => {
    const p = fresh();
    saveEnrollment(p, { invites: [invite(1, NOW - 1), invite(2)], peers: [] }, NOW);
    expect(loadEnrollment(p).invites.map((i) => i.name)).toEqual(['site-2']);
  });

  it.each([
    0o644, 0o640, 0o604, 0o660, 0o606,
  ])('refuses to read it with mode %o and says how to fix it', (mode) => {
    const p = fresh();
    saveEnrollment(p, { invites: [invite(1)], peers: [] }, NOW);
    chmodSync(p, mode);
    refused(
      p,
      /enrollment file .*enrollment\.json: permissions 0\d+ let group or others access it .*chmod 600/,
    );
  });

  it('refuses a file owned by another user, a symbolic link and a directory', () => {
    const p = fresh();
    saveEnrollment(p, EMPTY_ENROLLMENT, NOW);
    if (process.getuid?.() === 0) {
      chownSync(p, 4242, 4242);
      refused(p, /is owned by uid 4242, not by this user/);
      chownSync(p, 0, 0);
    }
    const link = join(p, '..', 'link.json');
    symlinkSync(p, link);
    refused(link, /is a symbolic link \(refused\)/);
    expect(() => saveEnrollment(link, EMPTY_ENROLLMENT, NOW)).toThrow(/is a symbolic link/);
    const dir = join(p, '..', 'dir.json');
    mkdirSync(dir);
    refused(dir, /is not a regular file/);
  });

  it('names the file of a corrupt or invalid document, without quoting a PSK', () => {
    const p = fresh();
    writeFileSync(p, `{"version":1,"invites":[{"psk":"${pskText(3)}" oops}]}`, { mode: 0o600 });
    refused(
      p,
      /enrollment file .*enrollment\.json: is not valid JSON \(at character \d+\); its previous version is .*\.prev/,
    );
    try {
      loadEnrollment(p);
    } catch (e) {
      expect((e as Error).message).not.toContain(pskText(3).slice(0, 8));
    }
    writeFileSync(p, '{"version":1,"invites":[],"peers":{}}');
    refused(p, /enrollment file .*enrollment\.json: peers: expected a list of peers/);
    writeFileSync(p, '{"version":7}');
    refused(p, /enrollment file .*: version: expected 1/);
  });

  it('updateEnrollment loads, changes and saves under a lock, and releases it', () => {
    const p = fresh();
    updateEnrollment(p, (d) => addInvite(d, invite(1), NOW), NOW);
    updateEnrollment(p, (d) => addInvite(d, invite(2), NOW), NOW);
    expect(loadEnrollment(p).invites.map((i) => i.name)).toEqual(['site-1', 'site-2']);
    // A change that throws leaves the file as it was.
    expect(() =>
      updateEnrollment(p, () => {
        throw new Error('abandoned');
      }),
    ).toThrow('abandoned');
    expect(loadEnrollment(p).invites).toHaveLength(2);
    expect(readdirSync(join(p, '..')).sort()).toEqual(['enrollment.json', 'enrollment.json.prev']);
  });

  it('updateEnrollment waits for a live lock holder, and takes over the lock of a dead one', () => {
    const p = fresh();
    writeFileSync(`${p}.lock`, `${process.pid}\n`);
    const t0 = Date.now();
    expect(() => updateEnrollment(p, (d) => d, NOW, 100)).toThrow(
      expect.objectContaining({
        code: 'ERR_ENROLLMENT_FILE',
        message: expect.stringMatching(new RegExp(`locked by process ${process.pid} .* for over 100 ms`)),
      }),
    );
    expect(Date.now() - t0).toBeGreaterThanOrEqual(90);
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    writeFileSync(`${p}.lock`, `${dead}\n`);
    updateEnrollment(p, (d) => addInvite(d, invite(1), NOW), NOW, 100);
    expect(loadEnrollment(p).invites).toHaveLength(1);
    expect(readdirSync(join(p, '..'))).not.toContain('enrollment.json.lock');
  });

  it('an empty lock (its creator died before writing its pid) is waited for while fresh, taken over once old', () => {
    const p = fresh();
    writeFileSync(`${p}.lock`, '');
    expect(() => updateEnrollment(p, (d) => d, NOW, 50)).toThrow(/locked by another process/);
    const old = (Date.now() - 60_000) / 1000;
    utimesSync(`${p}.lock`, old, old);
    updateEnrollment(p, (d) => addInvite(d, invite(1), NOW), NOW, 50);
    expect(loadEnrollment(p).invites).toHaveLength(1);
    // No private lock names are left behind either.
    expect(readdirSync(join(p, '..')).filter((f) => f.includes('.lock'))).toEqual([]);
  });
});

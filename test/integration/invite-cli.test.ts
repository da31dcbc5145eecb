/**
 * `aoegw invite`, `invite list|cancel` and `pubkey` from stdin, run as the built CLI (dist/):
 * the token decodes to what the config says, the invite lands in the 0600 enrollment file, the
 * PSK appears nowhere but the token and that file, and operator mistakes exit non-zero with a
 * message that names them.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { inviteIdPrefix } from '../../src/enroll/enrollment-doc.js';
import { loadEnrollment } from '../../src/enroll/enrollment-file.js';
import { decodeToken } from '../../src/enroll/token.js';
import { AOEGW, ROOT } from '../helpers/aoegw.js';

const dir = mkdtempSync(join(tmpdir(), 'aoegw-invite-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function aoegw(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [AOEGW, ...args], { input: input ?? '', encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const key = join(dir, 'gw.key');
const keygen = aoegw(['keygen', key]);
const publicKey = keygen.stdout.trim();
writeFileSync(join(dir, 'disk.img'), Buffer.alloc(1 << 20));

function config(name: string, listen: string, peers: unknown[] = []): string {
  const file = join(dir, `${name}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      name: 'gw-a',
      privateKeyFile: key,
      listen,
      stateFile: join(dir, name, 'state.json'),
      links: [{ name: 'lan', iface: 'lo' }],
      exports: [
        { target: '1.1', path: join(dir, 'disk.img'), name: 'disk-b1' },
        { target: '1.2', path: join(dir, 'disk.img'), readOnly: true },
      ],
      peers,
    }),
  );
  return file;
}

const pskForms = (psk: Uint8Array) => {
  const b = Buffer.from(psk);
  return [
    b.toString('base64'),
    b.toString('base64url'),
    b.toString('hex'),
    b.toString('base64').slice(0, 16),
  ];
};

describe('aoegw invite', () => {
  it('prints only a token that decodes to the config, and records the invite in a 0600 file', () => {
    expect(keygen.status).toBe(0);
    const cfg = config('a', '192.0.2.1:51820');
    const t0 = Date.now();
    const r = aoegw([
      'invite',
      '--config',
      cfg,
      '--name',
      'site-b',
      '--allow',
      '1.1,disk-b1:rw',
      '--allow',
      '1.2',
    ]);
    expect(r.stderr).not.toMatch(/ERR_/);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^aoegw-invite1\.[A-Za-z0-9_-]+\n$/);
    const token = decodeToken(r.stdout, Date.now());
    expect(Buffer.from(token.inviterPublicKey).toString('base64')).toBe(publicKey);
    expect(token.endpoints).toEqual(['192.0.2.1:51820']);
    expect(token.inviterName).toBe('gw-a');
    expect(token.peerName).toBe('site-b');
    expect(token.expiresUnixSec * 1000).toBeGreaterThan(t0 + 3_600_000 - 2000);
    expect(token.expiresUnixSec * 1000).toBeLessThanOrEqual(Date.now() + 3_600_000);

    const file = join(dir, 'a', 'enrollment.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const doc = loadEnrollment(file);
    expect(doc.invites).toHaveLength(1);
    const inv = doc.invites[0]!;
    expect(inv.name).toBe('site-b');
    expect(Buffer.from(inv.id)).toEqual(Buffer.from(token.inviteId));
    expect(Buffer.from(inv.psk)).toEqual(Buffer.from(token.psk));
    expect(inv.allow).toEqual([
      { targets: ['1.1', 'disk-b1'], access: 'rw' },
      { targets: ['1.2'], access: 'ro' },
    ]);
    expect(inv.expiresAtMs).toBe(token.expiresUnixSec * 1000);

    // The operator's summary names the invite, never the PSK; no daemon runs to be told.
    expect(r.stderr).toMatch(/no daemon running/);
    expect(r.stderr).toContain(`invite ${inviteIdPrefix(token.inviteId)} for site-b: 1.1,disk-b1:rw 1.2:ro`);
    const list = aoegw(['invite', 'list', '--config', cfg]);
    expect(list.status).toBe(0);
    expect(list.stdout).toMatch(
      new RegExp(`${inviteIdPrefix(token.inviteId)}\\s+site-b\\s+1\\.1,disk-b1:rw 1\\.2:ro`),
    );
    for (const f of pskForms(token.psk)) {
      expect(r.stderr).not.toContain(f);
      expect(list.stdout + list.stderr).not.toContain(f);
    }

    // A second invite for the same name is refused while the first is pending; cancel frees it.
    const again = aoegw(['invite', '--config', cfg, '--name', 'site-b', '--allow', '1.1']);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/an invite for site-b is already pending .*\[ERR_INVITE\]/);
    expect(again.stdout).toBe('');
    const cancel = aoegw(['invite', 'cancel', '--config', cfg, inviteIdPrefix(token.inviteId)]);
    expect(cancel.status).toBe(0);
    expect(cancel.stderr).toContain(`cancelled invite ${inviteIdPrefix(token.inviteId)} for site-b`);
    expect(loadEnrollment(file).invites).toEqual([]);
    expect(aoegw(['invite', 'list', '--config', cfg]).stderr).toMatch(/no pending invites/);
  });

  it('takes --endpoint (repeatable) and --expires', () => {
    const cfg = config('b', '0.0.0.0:51820');
    const r = aoegw([
      'invite',
      '--config',
      cfg,
      '--name',
      'site-c',
      '--allow',
      'disk-b1',
      '--endpoint',
      '198.51.100.7:51820',
      '--endpoint',
      '[2001:db8::7]:51820',
      '--expires',
      '2d',
    ]);
    expect(r.status).toBe(0);
    const token = decodeToken(r.stdout, Date.now());
    expect(token.endpoints).toEqual(['198.51.100.7:51820', '[2001:db8::7]:51820']);
    expect(token.expiresUnixSec * 1000 - Date.now()).toBeGreaterThan(2 * 86_400_000 - 60_000);
  });

  it.each([
    [
      ['--name', 'site-d', '--allow', '9.9'],
      2,
      /--allow '9\.9': 9\.9 is not a built-in export or a forwarded target/,
    ],
    [
      ['--name', 'site-d', '--allow', 'nope:rw'],
      2,
      /'nope' is neither "SHELF\.SLOT" .* nor a built-in export's name/,
    ],
    [
      ['--name', 'site-d', '--allow', '1.1:wo'],
      2,
      /--allow '1\.1:wo': expected TARGET\[,TARGET\.\.\.\]\[:ro\|:rw\]/,
    ],
    [['--name', 'site d', '--allow', '1.1'], 2, /--name 'site d': expected letters, digits/],
    [['--name', 'site-d'], 2, /at least one --allow/],
    [
      ['--name', 'site-d', '--allow', '1.1', '--expires', '8d'],
      2,
      /--expires '8d': expected a duration from 1m to 7d/,
    ],
    [['--name', 'site-d', '--allow', '1.1', '--endpoint', 'gw.example:1'], 2, /--endpoint 'gw\.example:1'/],
  ])('refuses %j with exit status %i and a clear message', (args, status, re) => {
    const cfg = config('c', '192.0.2.1:51820');
    const r = aoegw(['invite', '--config', cfg, ...args]);
    expect(r.status).toBe(status);
    expect(r.stderr).toMatch(re);
    expect(r.stdout).toBe('');
  });

  it('refuses a name the config already gives a peer', () => {
    const other = readFileSync(join(ROOT, 'keys-example', 'gateway-b.pub'), 'utf8').trim();
    const cfg = config('e', '192.0.2.1:51820', [{ name: 'site-f', publicKey: other, allow: [] }]);
    const r = aoegw(['invite', '--config', cfg, '--name', 'site-f', '--allow', '1.1']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--name 'site-f': the config already has a peer of that name \[ERR_USAGE\]/);
  });

  it('refuses an enrollment file that others can read, and records nothing', () => {
    const cfg = config('g', '192.0.2.1:51820');
    expect(aoegw(['invite', '--config', cfg, '--name', 'site-g', '--allow', '1.1']).status).toBe(0);
    const file = join(dir, 'g', 'enrollment.json');
    chmodSync(file, 0o644);
    const before = readFileSync(file, 'utf8');
    const r = aoegw(['invite', '--config', cfg, '--name', 'site-h', '--allow', '1.1']);
    // The config loader reads the enrolled peers, so it is the one refusing the file (ERR_CONFIG).
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(
      /config .*: enrollment file .*enrollment\.json: permissions 0644 .* run chmod 600 .*\[ERR_CONFIG\]/,
    );
    expect(r.stdout).toBe('');
    expect(readFileSync(file, 'utf8')).toBe(before);
  });

  it('needs --endpoint when the config listens on a wildcard address', () => {
    const cfg = config('d', '[::]:51820');
    const r = aoegw(['invite', '--config', cfg, '--name', 'site-e', '--allow', '1.1']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(
      /listens on \[::\]:51820, which a peer cannot send to: .* --endpoint HOST:PORT \[ERR_USAGE\]/,
    );
    expect(r.stdout).toBe('');
  });
});

describe('aoegw pubkey from stdin', () => {
  it('prints what pubkey FILE prints, with no argument or "-"', () => {
    const text = readFileSync(key, 'utf8');
    expect(aoegw(['pubkey', key]).stdout).toBe(`${publicKey}\n`);
    expect(aoegw(['pubkey'], text)).toMatchObject({ status: 0, stdout: `${publicKey}\n`, stderr: '' });
    expect(aoegw(['pubkey', '-'], text)).toMatchObject({ status: 0, stdout: `${publicKey}\n`, stderr: '' });
  });

  it('refuses a malformed key without echoing it', () => {
    const secretish = 'c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlYw';
    const r = aoegw(['pubkey'], `${secretish}\n`);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^aoegw: key file \(stdin\): .*\[ERR_KEY_FILE\]\n$/);
    expect(r.stderr).not.toContain(secretish.slice(0, 10));
    const two = aoegw(['pubkey', '-'], `${readFileSync(key, 'utf8')}\n${secretish}=\n`);
    expect(two.status).toBe(1);
    expect(two.stderr).toMatch(/expected exactly one key line, found 2/);
    expect(two.stderr).not.toContain(secretish.slice(0, 10));
    expect(aoegw(['pubkey'], 'x'.repeat(5000)).stderr).toMatch(/more than 4096 bytes on stdin/);
  });
});

import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatPublicKey, loadKeyFile, parseKeyText, writeNewKeyFile } from '../../../src/config/key-file.js';
import { type CryptoBackend, loadCrypto } from '../../../src/tunnel/crypto.js';

const examples = join(import.meta.dirname, '..', '..', '..', 'keys-example');
const dir = mkdtempSync(join(tmpdir(), 'aoegw-keys-'));
let crypto: CryptoBackend;
beforeAll(async () => {
  crypto = await loadCrypto();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function copyExample(name: string, mode: number): string {
  const p = join(dir, `${name}-${mode.toString(8)}`);
  copyFileSync(join(examples, `${name}.key`), p);
  chmodSync(p, mode);
  return p;
}

describe('key files', () => {
  it.each(['gateway-a', 'gateway-b'])('the example %s key loads at 0600 and matches its .pub', (name) => {
    const pair = loadKeyFile(copyExample(name, 0o600), crypto);
    expect(formatPublicKey(pair.publicKey)).toBe(readFileSync(join(examples, `${name}.pub`), 'utf8').trim());
  });

  it.each([0o644, 0o640, 0o604, 0o660])('refuses a key with mode %o and says how to fix it', (mode) => {
    const p = copyExample('gateway-a', mode);
    expect(() => loadKeyFile(p, crypto)).toThrow(
      expect.objectContaining({
        code: 'ERR_KEY_FILE',
        message: expect.stringMatching(/let group or others access it; run chmod 600/),
      }),
    );
  });

  it('refuses symbolic links, missing files and directories', () => {
    const target = copyExample('gateway-b', 0o600);
    const link = join(dir, 'link.key');
    symlinkSync(target, link);
    expect(() => loadKeyFile(link, crypto)).toThrow(/symbolic link/);
    expect(() => loadKeyFile(join(dir, 'nope.key'), crypto)).toThrow(/does not exist/);
    expect(() => loadKeyFile(dir, crypto)).toThrow(/not a regular file/);
    // A FIFO must be refused at once, not block the daemon on open().
    const fifo = join(dir, 'fifo.key');
    execFileSync('mkfifo', ['-m', '600', fifo]);
    expect(() => loadKeyFile(fifo, crypto)).toThrow(/not a regular file/);
  });

  it.each([
    ['', /found 0/],
    ['abc\n', /not the base64 of 32 bytes/],
    [
      '# c\nzGI1kTNeqF6LsgK8WKTecYqZ6g2GZcdRPMlITLpzVu4=\nzGI1kTNeqF6LsgK8WKTecYqZ6g2GZcdRPMlITLpzVu4=\n',
      /found 2/,
    ],
    ['zGI1kTNeqF6LsgK8WKTecYqZ6g2GZcdRPMlITLpzVu=\n', /not the base64/],
  ])('names what is wrong with the content (%#)', (text, msg) => {
    expect(() => parseKeyText(text, 'k')).toThrow(msg);
    const p = join(dir, `bad${Math.random()}.key`);
    writeFileSync(p, text, { mode: 0o600 });
    expect(() => loadKeyFile(p, crypto)).toThrow(msg);
  });

  it('keygen writes mode 0600, refuses to overwrite, and the key round-trips', () => {
    const p = join(dir, 'new.key');
    const pair = writeNewKeyFile(p, crypto);
    expect(loadKeyFile(p, crypto).publicKey).toEqual(pair.publicKey);
    expect(() => writeNewKeyFile(p, crypto)).toThrow(/already exists/);
  });

  it('refuses an all-zero key and keys that clamp to the same scalar', () => {
    const zero = Buffer.alloc(32);
    expect(() => parseKeyText(`${zero.toString('base64')}\n`, 'k')).toThrow(
      expect.objectContaining({ code: 'ERR_KEY_FILE', message: expect.stringMatching(/all zero/) }),
    );
    // Only the bits X25519 clamping ignores are set: the same scalar as the zero key.
    const clampedZero = Buffer.alloc(32);
    clampedZero[0] = 0x07;
    clampedZero[31] = 0xc0;
    const p = join(dir, 'zero.key');
    writeFileSync(p, `${clampedZero.toString('base64')}\n`, { mode: 0o600 });
    expect(() => loadKeyFile(p, crypto)).toThrow(/all zero/);
    // One used bit set: an ordinary (if silly) key, accepted.
    clampedZero[0] = 0x08;
    expect(parseKeyText(`${clampedZero.toString('base64')}\n`, 'k')).toHaveLength(32);
  });

  it('refuses to overwrite a symbolic link (even a dangling one) and leaves no temp file', () => {
    const sub = mkdtempSync(join(dir, 'sl-'));
    const link = join(sub, 'k.key');
    symlinkSync(join(sub, 'nowhere'), link);
    expect(() => writeNewKeyFile(link, crypto)).toThrow(/already exists/);
    expect(readdirSync(sub)).toEqual(['k.key']);
    expect(existsSync(join(sub, 'nowhere'))).toBe(false);
  });
});

// A real full disk: a 16 KiB tmpfs filled up before keygen runs.
const canMount = process.getuid?.() === 0;
describe.skipIf(!canMount)('keygen on a full file system', () => {
  const mnt = mkdtempSync(join(tmpdir(), 'aoegw-fullfs-'));
  let mounted = false;
  beforeAll(() => {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16k,mode=0700', 'aoegw-keytest', mnt]);
    mounted = true;
  });
  afterAll(() => {
    if (mounted) execFileSync('umount', [mnt]);
    rmSync(mnt, { recursive: true, force: true });
  });

  function fill(): string {
    const filler = join(mnt, 'filler');
    try {
      writeFileSync(filler, Buffer.alloc(64 * 1024, 1));
    } catch (e) {
      expect((e as NodeJS.ErrnoException).code).toBe('ENOSPC');
    }
    expect(statSync(filler).size).toBeGreaterThan(0);
    return filler;
  }

  it('fails with a clear ERR_KEY_FILE, leaves nothing behind, and a retry after freeing space works', () => {
    const filler = fill();
    const key = join(mnt, 'gw.key');
    expect(() => writeNewKeyFile(key, crypto)).toThrow(
      expect.objectContaining({
        code: 'ERR_KEY_FILE',
        message: expect.stringMatching(/gw\.key.*no space left on the device/),
      }),
    );
    // No empty or partial key file and no temporary file.
    expect(readdirSync(mnt)).toEqual(['filler']);

    // The CLI says the same in one line, without a stack trace, and exits 1.
    const cli = join(import.meta.dirname, '..', '..', '..', 'src', 'cli', 'main.ts');
    let stderr = '';
    let status = 0;
    try {
      execFileSync('npx', ['tsx', cli, 'keygen', key], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      const err = e as { status: number; stderr: Buffer };
      status = err.status;
      stderr = err.stderr.toString();
    }
    expect(status).toBe(1);
    expect(stderr).toMatch(/^aoegw: key file .*gw\.key: .*no space left on the device \[ERR_KEY_FILE\]\n$/);
    expect(stderr).not.toMatch(/\n\s+at /);
    expect(readdirSync(mnt)).toEqual(['filler']);

    unlinkSync(filler);
    const pair = writeNewKeyFile(key, crypto);
    expect(readdirSync(mnt)).toEqual(['gw.key']);
    expect(statSync(key).mode & 0o777).toBe(0o600);
    expect(loadKeyFile(key, crypto).publicKey).toEqual(pair.publicKey);
  }, 30_000);
});

import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
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
});

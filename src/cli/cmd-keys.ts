import { readSync } from 'node:fs';
import type { Command } from 'commander';
import { formatPublicKey, loadKeyFile, parseKeyText, writeNewKeyFile } from '../config/key-file.js';
import { AoegwError } from '../errors.js';
import { type CryptoBackend, loadCrypto, type X25519KeyPair } from '../tunnel/crypto.js';

/** A key file is one short line plus comments; anything longer on stdin is not one. */
const MAX_STDIN_KEY_BYTES = 4096;

/**
 * Reads a private key on stdin into one buffer the caller zeroes: no stream chunks or string
 * concatenations left behind holding pieces of the key. Blocks until end of input (as `wg pubkey`).
 */
function readKeyFromStdin(crypto: CryptoBackend): X25519KeyPair {
  const buf = Buffer.alloc(MAX_STDIN_KEY_BYTES + 1);
  let n = 0;
  try {
    for (;;) {
      let got: number;
      try {
        got = readSync(0, buf, n, buf.length - n, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        // A non-blocking stdin (some parents hand one over): wait for input instead of failing.
        if (code === 'EAGAIN') {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
          continue;
        }
        if (code === 'EOF') break;
        throw new AoegwError('ERR_KEY_FILE', `cannot read a key on stdin: ${code ?? (e as Error).message}`);
      }
      if (got === 0) break;
      n += got;
      if (n > MAX_STDIN_KEY_BYTES) {
        throw new AoegwError(
          'ERR_KEY_FILE',
          `more than ${MAX_STDIN_KEY_BYTES} bytes on stdin: not a key file (expected one base64 key line)`,
        );
      }
    }
    // parseKeyText's errors say what is wrong without quoting the text.
    const secret = parseKeyText(buf.toString('utf8', 0, n), '(stdin)');
    const pair = crypto.x25519KeyPair(secret);
    crypto.memzero(secret);
    return pair;
  } finally {
    buf.fill(0);
  }
}

export function registerKeys(program: Command): void {
  program
    .command('keygen')
    .description('create a new gateway private key file (mode 0600) and print its public key')
    .argument('<file>', 'where to write the private key (must not exist)')
    .action(async (file: string) => {
      const crypto = await loadCrypto();
      const pair = writeNewKeyFile(file, crypto);
      process.stdout.write(`${formatPublicKey(pair.publicKey)}\n`);
      crypto.memzero(pair.secretKey);
    });
  program
    .command('pubkey')
    .description(
      'print the public key of a private key file (checks its permissions), or of a key read on stdin',
    )
    .argument('[file]', 'private key file; absent or "-": read the key on stdin (as `wg pubkey`)')
    .action(async (file: string | undefined) => {
      const crypto = await loadCrypto();
      const pair = file === undefined || file === '-' ? readKeyFromStdin(crypto) : loadKeyFile(file, crypto);
      process.stdout.write(`${formatPublicKey(pair.publicKey)}\n`);
      crypto.memzero(pair.secretKey);
    });
}

import type { Command } from 'commander';
import { formatPublicKey, loadKeyFile, writeNewKeyFile } from '../config/key-file.js';
import { loadCrypto } from '../tunnel/crypto.js';

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
    .description('print the public key of a private key file (checks its permissions)')
    .argument('<file>', 'private key file')
    .action(async (file: string) => {
      const crypto = await loadCrypto();
      const pair = loadKeyFile(file, crypto);
      process.stdout.write(`${formatPublicKey(pair.publicKey)}\n`);
      crypto.memzero(pair.secretKey);
    });
}

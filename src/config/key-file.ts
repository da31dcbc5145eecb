/**
 * Gateway static key files. Format: one line with the base64 of the 32-byte X25519 secret key;
 * blank lines and lines starting with '#' are ignored. Rules, enforced before the key is used:
 * a regular file, owned by the current user (or root), and not readable or writable by group or
 * others (like ssh) — a key that others can read is a key that others may have.
 */
import {
  closeSync,
  constants,
  existsSync,
  fstatSync,
  fsyncSync,
  linkSync,
  lstatSync,
  openSync,
  readFileSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { AoegwError, errnoText } from '../errors.js';
import { type CryptoBackend, isWeakX25519Secret, type X25519KeyPair } from '../tunnel/crypto.js';

export const KEY_BYTES = 32;

function keyError(path: string, why: string): AoegwError {
  return new AoegwError('ERR_KEY_FILE', `key file ${path}: ${why}`);
}

/** Parses the key text; throws ERR_KEY_FILE naming what is wrong. */
export function parseKeyText(text: string, path: string): Uint8Array {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('#'));
  if (lines.length !== 1) throw keyError(path, `expected exactly one key line, found ${lines.length}`);
  const line = lines[0]!;
  if (!/^[A-Za-z0-9+/]{43}=$/.test(line)) {
    throw keyError(path, 'the key line is not the base64 of 32 bytes (44 characters ending in "=")');
  }
  // Decode into an unpooled buffer the caller zeroes (Buffer.from would leave a copy in the pool).
  const key = Buffer.alloc(KEY_BYTES);
  key.write(line, 'base64');
  if (isWeakX25519Secret(key)) {
    key.fill(0);
    throw keyError(
      path,
      'the key is all zero (or the same X25519 scalar as the all-zero key): not a secret; create one with aoegw keygen',
    );
  }
  return key;
}

/** Reads and checks a private key file, returning the key pair. The caller zeroes it when done. */
export function loadKeyFile(path: string, crypto: CryptoBackend): X25519KeyPair {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO planted at the path must not hang the daemon before the isFile() check.
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'does not exist'
        : code === 'ELOOP'
          ? 'is a symbolic link (refused)'
          : (e as Error).message;
    throw keyError(path, why);
  }
  let text: string;
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw keyError(path, 'is not a regular file');
    const uid = process.getuid?.() ?? 0;
    if (st.uid !== uid && st.uid !== 0)
      throw keyError(path, `is owned by uid ${st.uid}, not by this user (${uid}) or root`);
    if ((st.mode & 0o077) !== 0) {
      throw keyError(
        path,
        `permissions ${(st.mode & 0o777).toString(8).padStart(4, '0')} let group or others access it; run chmod 600 ${path}`,
      );
    }
    text = readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
  const secret = parseKeyText(text, path);
  const pair = crypto.x25519KeyPair(secret);
  crypto.memzero(secret);
  return pair;
}

/** Removes a file if it is there; used on failure paths, so it never throws. */
function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone (or the directory went away): nothing left to clean up.
  }
}

/**
 * Writes a new random private key with mode 0600; refuses to overwrite an existing file. The key
 * is written to an O_EXCL temporary file in the same directory, fsynced and then link()ed into
 * place (link fails if the target exists, unlike rename), so a failure at any step (a full disk,
 * a quota) leaves no empty or partial key file to block a retry: the temporary file is removed on
 * every failure. Throws ERR_KEY_FILE naming the file and the cause.
 */
export function writeNewKeyFile(path: string, crypto: CryptoBackend): X25519KeyPair {
  const dir = dirname(path);
  const rnd = new Uint8Array(6);
  crypto.randomBytes(rnd);
  const tmp = join(dir, `.${basename(path)}.tmp-${Buffer.from(rnd).toString('hex')}`);
  // Checked first so the common mistake gets the clear message without touching the disk.
  if (existsSync(path) || isSymlink(path))
    throw keyError(path, 'already exists (refusing to overwrite a key)');
  let fd: number;
  try {
    fd = openSync(
      tmp,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    );
  } catch (e) {
    throw keyError(path, `cannot create a file in ${dir}: ${errnoText(e)}`);
  }
  const pair = crypto.x25519KeyPair();
  let linked = false;
  try {
    try {
      // A view, not Buffer.from(copy): no stray copy of the secret left in Node's buffer pool.
      const b64 = Buffer.from(pair.secretKey.buffer, pair.secretKey.byteOffset, KEY_BYTES).toString('base64');
      writeFileSync(
        fd,
        `# aoegw private key (X25519). Keep it secret: mode 0600, never copied off this host.\n${b64}\n`,
      );
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(tmp, path);
      linked = true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST')
        throw keyError(path, 'already exists (refusing to overwrite a key)');
      throw e;
    }
    unlinkSync(tmp);
    const dfd = openSync(dir, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
    return pair;
  } catch (e) {
    removeQuietly(tmp);
    // The key was linked but its directory entry could not be made durable: do not leave a key
    // file whose public key nobody was told.
    if (linked) removeQuietly(path);
    crypto.memzero(pair.secretKey);
    if (e instanceof AoegwError) throw e;
    throw keyError(path, `cannot write the key: ${errnoText(e)}`);
  }
}

function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

export function formatPublicKey(publicKey: Uint8Array): string {
  return Buffer.from(publicKey).toString('base64');
}

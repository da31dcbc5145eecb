/**
 * One error class for the whole project. `code` is stable and machine-readable: tests, logs and
 * the control API match on it, never on the message text.
 */
export const ErrorCodes = [
  // native / io
  'ERR_NO_CAP_NET_RAW',
  'ERR_NO_CAP_NET_ADMIN',
  'ERR_NO_SUCH_INTERFACE',
  'ERR_INTERFACE_DOWN',
  'ERR_FRAME_TOO_LARGE',
  'ERR_NETNS',
  'ERR_BIND',
  'ERR_SYSCALL',
  'ERR_CLOSED',
  'ERR_NATIVE_MISSING',
  /** The addon was called wrongly (a bug in the io layer, not an operator error). */
  'ERR_NATIVE_ARGUMENT',
  /** A link's interface went away or down; the link waits for it to return. */
  'ERR_LINK_DOWN',
  /** io_uring is unavailable here, or an op was queued wrongly (e.g. a buffer outside the arena). */
  'ERR_IO_RING',
  // aoe codec
  'ERR_AOE_TRUNCATED',
  'ERR_AOE_NOT_AOE',
  'ERR_AOE_BAD_VERSION',
  'ERR_AOE_RESERVED_BITS',
  'ERR_AOE_UNKNOWN_COMMAND',
  'ERR_AOE_BAD_ARGUMENT',
  'ERR_AOE_STRING_TOO_LONG',
  'ERR_AOE_SECTOR_COUNT',
  'ERR_AOE_ENCODE_SPACE',
  'ERR_AOE_BAD_INPUT',
  // initiator
  'ERR_TIMEOUT',
  'ERR_NO_TARGET',
  'ERR_ATA',
  'ERR_AOE_ERROR_REPLY',
  'ERR_USAGE',
  /** A configuration file that is unreadable or invalid (names the key, the value, what is expected). */
  'ERR_CONFIG',
  'ERR_KEY_FILE',
  /** A state file that cannot be read, parsed or written. */
  'ERR_STATE_FILE',
  // tunnel
  'ERR_CRYPTO',
  'ERR_HANDSHAKE',
  'ERR_CRYPTO_UNAVAILABLE',
  'ERR_NONCE_EXHAUSTED',
  'ERR_TUNNEL_CONFIG',
  'ERR_TUNNEL_PEER',
  // enroll
  /** An invite token that is malformed, damaged or altered, or expired (never quotes the PSK). */
  'ERR_TOKEN',
  /** The enrollment file cannot be read, parsed or written, or is unsafe (permissions, owner). */
  'ERR_ENROLLMENT_FILE',
  /** An invite operation that cannot be done: too many pending, no such invite, a name taken. */
  'ERR_INVITE',
  // target
  'ERR_TARGET_CONFIG',
  'ERR_STORE_IO',
  /** An export's file or device cannot be opened as configured. */
  'ERR_STORE_OPEN',
  'ERR_STORE_RANGE',
  'ERR_READ_ONLY',
  // gateway
  'ERR_GATEWAY_CONFIG',
  'ERR_GATEWAY',
  // operations
  /** The control socket cannot be created, reached, or answered badly. */
  'ERR_CONTROL',
  /** Enrolling with an invite token failed (no answer, refused, already enrolled). */
  'ERR_ENROLL',
  /** A link's service MAC cannot be recorded, put on, or put back (links[].mac). */
  'ERR_SERVICE_MAC',
  /** Another daemon holds the state file's lock (one daemon per config). */
  'ERR_DAEMON_RUNNING',
] as const;

export type ErrorCode = (typeof ErrorCodes)[number];

export class AoegwError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AoegwError';
    this.code = code;
  }
}

export function isAoegwError(e: unknown, code?: ErrorCode): e is AoegwError {
  return e instanceof AoegwError && (code === undefined || e.code === code);
}

/** An errno failure of a file operation in words an operator acts on (a full disk, permissions …). */
export function errnoText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOSPC') return 'no space left on the device';
  if (err.code === 'EDQUOT') return 'disk quota exceeded';
  if (err.code === 'EACCES' || err.code === 'EPERM') return 'permission denied';
  if (err.code === 'EROFS') return 'read-only file system';
  if (err.code === 'ENOENT') return 'the file or its directory does not exist';
  return err.code !== undefined ? `${err.code}: ${err.message}` : String(err);
}

/**
 * Protocol constants of the aoegw tunnel (docs/protocol.md is the normative spec; every value here
 * is named there). Times are milliseconds.
 */

/** The Noise protocol name, hashed into the initial handshake hash. */
export const NOISE_PROTOCOL = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2b';
/** Noise prologue: both sides must agree on it, so a peer speaking another protocol fails. */
export const PROLOGUE_TEXT = 'aoegw tunnel v1';
export const PROLOGUE: Uint8Array = new TextEncoder().encode(PROLOGUE_TEXT);

/** Wire version carried in byte 1 of every message. */
export const PROTOCOL_VERSION = 1;

/** Labels hashed with the responder's static public key to derive the mac1 and cookie keys. */
export const LABEL_MAC1: Uint8Array = new TextEncoder().encode('aoegw mac1 v1');
export const LABEL_COOKIE: Uint8Array = new TextEncoder().encode('aoegw cookie v1');

/** Send with a session at most this long before starting a new handshake (initiator of it only). */
export const REKEY_AFTER_TIME = 120_000;
/** A session is never used, for sending or receiving, once this old. */
export const REJECT_AFTER_TIME = 180_000;
/** Retry an unanswered initiation after this long (plus jitter). */
export const REKEY_TIMEOUT = 5_000;
/** Upper bound of the random jitter added to every retry. */
export const REKEY_TIMEOUT_JITTER_MAX = 333;
/** Stop retrying a handshake this long after its first attempt. */
export const REKEY_ATTEMPT_TIME = 90_000;
/** Send an empty transport message when data arrived and nothing was sent for this long. */
export const KEEPALIVE_TIMEOUT = 10_000;
/** Lifetime of the responder's cookie secret and of a cookie held by an initiator. */
export const COOKIE_SECRET_LIFETIME = 120_000;
/** A cookie reply is accepted only this long after the handshake message it answers. */
export const COOKIE_REPLY_WINDOW = REKEY_TIMEOUT;

/** Start a new handshake once this many messages were sent with a session. */
export const REKEY_AFTER_MESSAGES = 2n ** 60n;
export { REJECT_AFTER_MESSAGES } from './replay.js';

/** Default rate limit of handshake messages per source key. */
export const DEFAULT_HANDSHAKE_RATE = 20;
export const DEFAULT_HANDSHAKE_BURST = 5;
/** Default bound of the rate limiter's table. */
export const DEFAULT_RATE_TABLE_SIZE = 4096;
/** Handshake messages (with a valid mac1) per second above which cookies are required. */
export const DEFAULT_LOAD_THRESHOLD = 128;
/** Once under load, stay there for this long after the last overloaded second. */
export const UNDER_LOAD_HOLD = 1_000;

/** Default largest datagram (UDP payload) the endpoint produces: 1500 − IPv6 40 − UDP 8. */
export const DEFAULT_MTU = 1452;
/** Plaintext is padded (with a padding record) to a multiple of this, within the MTU. */
export const DEFAULT_PAD_MULTIPLE = 16;
/** Default source address length: the io layer's 24-byte UDP address slot. */
export const DEFAULT_ADDRESS_LENGTH = 24;

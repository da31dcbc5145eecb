/**
 * Handshake DoS protection (docs/protocol.md, "mac1, mac2 and cookies").
 *
 * - mac1 = BLAKE2b-128 keyed with BLAKE2b-256(LABEL_MAC1 || receiver's static public key), over the
 *   message up to mac1. Anyone who knows the receiver's public key can compute it, so it proves
 *   nothing about the sender; it makes the receiver drop random garbage and messages meant for
 *   another key before doing any Diffie-Hellman.
 * - Under load the receiver answers instead with a cookie reply: cookie = BLAKE2b-128 keyed with a
 *   random secret (rotated every COOKIE_SECRET_LIFETIME) over the source address, sealed with
 *   XChaCha20-Poly1305 under BLAKE2b-256(LABEL_COOKIE || receiver's public key), with the mac1 of
 *   the answered message as associated data. Only a sender that can receive at that address gets
 *   it, and then proves so with mac2 = BLAKE2b-128 keyed with the cookie over the message up to mac2.
 */
import { AoegwError } from '../errors.js';
import { COOKIE_REPLY_WINDOW, COOKIE_SECRET_LIFETIME, LABEL_COOKIE, LABEL_MAC1 } from './constants.js';
import { type CryptoBackend, DH_LEN, KEY_LEN, TAG_LEN, XNONCE_LEN } from './crypto.js';
import {
  COOKIE_LEN,
  COOKIE_NONCE,
  COOKIE_RECEIVER,
  COOKIE_REPLY_LEN,
  COOKIE_SEALED,
  MAC_LEN,
  MSG_COOKIE_REPLY,
  writeHeader,
  writeU32,
} from './messages.js';

/** BLAKE2b-256(label || static public key): the mac1 or cookie-sealing key for that receiver. */
export function deriveLabelKey(
  crypto: CryptoBackend,
  label: Uint8Array,
  staticPublic: Uint8Array,
): Uint8Array {
  const key = new Uint8Array(KEY_LEN);
  crypto.blake2b(key, [label, staticPublic]);
  return key;
}

/** BLAKE2b-128 keyed with `key` over msg[0, end) into out[outOff, outOff + 16). */
function macInto(
  crypto: CryptoBackend,
  out: Uint8Array,
  key: Uint8Array,
  msg: Uint8Array,
  end: number,
): void {
  crypto.blake2b(out, msg.subarray(0, end), key);
}

/**
 * The receiving side's checks, keyed by our own static public key: mac1 and mac2 verification and
 * cookie replies. Holds the rotating cookie secret.
 */
export class CookieChecker {
  private readonly mac1Key: Uint8Array;
  private readonly sealKey: Uint8Array;
  private readonly secret = new Uint8Array(KEY_LEN);
  private secretBorn = Number.NEGATIVE_INFINITY;
  private readonly mac = new Uint8Array(MAC_LEN);
  private readonly cookie = new Uint8Array(COOKIE_LEN);
  private readonly nonce = new Uint8Array(XNONCE_LEN);

  constructor(
    private readonly crypto: CryptoBackend,
    ourPublic: Uint8Array,
    private readonly addressLength: number,
  ) {
    if (ourPublic.length !== DH_LEN)
      throw new AoegwError('ERR_TUNNEL_CONFIG', 'static public key must be 32 bytes');
    this.mac1Key = deriveLabelKey(crypto, LABEL_MAC1, ourPublic);
    this.sealKey = deriveLabelKey(crypto, LABEL_COOKIE, ourPublic);
  }

  /** Is msg[macOff, +16) the mac1 of msg[0, macOff)? Constant-time comparison. */
  checkMac1(msg: Uint8Array, macOff: number): boolean {
    macInto(this.crypto, this.mac, this.mac1Key, msg, macOff);
    return this.crypto.equal(this.mac, msg.subarray(macOff, macOff + MAC_LEN));
  }

  /** Is msg[macOff, +16) the mac2 of msg[0, macOff) under the cookie for this source address? */
  checkMac2(msg: Uint8Array, macOff: number, addr: Uint8Array, addrOff: number, now: number): boolean {
    this.makeCookie(addr, addrOff, now);
    macInto(this.crypto, this.mac, this.cookie, msg, macOff);
    const ok = this.crypto.equal(this.mac, msg.subarray(macOff, macOff + MAC_LEN));
    this.crypto.memzero(this.cookie);
    return ok;
  }

  /**
   * A cookie reply to the message whose mac1 is msg[mac1Off, +16), sent by the holder of
   * `receiverIndex`, from source `addr`. Writes COOKIE_REPLY_LEN bytes at out[0].
   */
  writeReply(
    out: Uint8Array,
    receiverIndex: number,
    msg: Uint8Array,
    mac1Off: number,
    addr: Uint8Array,
    addrOff: number,
    now: number,
  ): number {
    this.makeCookie(addr, addrOff, now);
    writeHeader(out, 0, MSG_COOKIE_REPLY);
    writeU32(out, COOKIE_RECEIVER, receiverIndex);
    this.crypto.randomBytes(this.nonce);
    out.set(this.nonce, COOKIE_NONCE);
    this.crypto.xseal(
      out,
      COOKIE_SEALED,
      this.sealKey,
      this.nonce,
      msg.subarray(mac1Off, mac1Off + MAC_LEN),
      this.cookie,
      0,
      COOKIE_LEN,
    );
    this.crypto.memzero(this.cookie);
    return COOKIE_REPLY_LEN;
  }

  /** Forget the secret (the next cookie uses a new one). */
  destroy(): void {
    this.crypto.memzero(this.secret);
    this.secretBorn = Number.NEGATIVE_INFINITY;
  }

  private makeCookie(addr: Uint8Array, addrOff: number, now: number): void {
    if (!(now - this.secretBorn < COOKIE_SECRET_LIFETIME) || now < this.secretBorn) {
      this.crypto.randomBytes(this.secret);
      this.secretBorn = now;
    }
    this.crypto.blake2b(this.cookie, addr.subarray(addrOff, addrOff + this.addressLength), this.secret);
  }
}

/**
 * The sending side, one per peer, keyed by the peer's static public key: stamps mac1/mac2 on the
 * handshake messages we send that peer and keeps the cookie it last gave us.
 */
export class CookieMaker {
  private readonly mac1Key: Uint8Array;
  private readonly openKey: Uint8Array;
  private readonly cookie = new Uint8Array(COOKIE_LEN);
  private cookieAt = Number.NEGATIVE_INFINITY;
  private readonly lastMac1 = new Uint8Array(MAC_LEN);
  private awaitingReply = false;
  private readonly opened = new Uint8Array(COOKIE_LEN);
  private stampedAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly crypto: CryptoBackend,
    peerPublic: Uint8Array,
  ) {
    this.mac1Key = deriveLabelKey(crypto, LABEL_MAC1, peerPublic);
    this.openKey = deriveLabelKey(crypto, LABEL_COOKIE, peerPublic);
  }

  /** Do we hold a cookie young enough to use for mac2? */
  hasCookie(now: number): boolean {
    return now - this.cookieAt < COOKIE_SECRET_LIFETIME && now >= this.cookieAt;
  }

  /**
   * Write mac1 at msg[mac1Off] and mac2 right after it (zeros without a fresh cookie), over the
   * message before each. Remembers mac1 so a cookie reply to this message can be authenticated.
   */
  stamp(msg: Uint8Array, mac1Off: number, now: number): void {
    const mac1 = msg.subarray(mac1Off, mac1Off + MAC_LEN);
    const mac2 = msg.subarray(mac1Off + MAC_LEN, mac1Off + 2 * MAC_LEN);
    macInto(this.crypto, mac1, this.mac1Key, msg, mac1Off);
    this.lastMac1.set(mac1);
    this.awaitingReply = true;
    this.stampedAt = now;
    if (this.hasCookie(now)) macInto(this.crypto, mac2, this.cookie, msg, mac1Off + MAC_LEN);
    else mac2.fill(0);
  }

  /**
   * Take the cookie from a cookie reply (COOKIE_REPLY_LEN bytes, already classified) answering the
   * last message we stamped. Returns false, changing nothing, when it does not authenticate.
   */
  consumeReply(msg: Uint8Array, now: number): boolean {
    // A reply must answer a message we stamped recently (COOKIE_REPLY_WINDOW): an old one, held
    // back by an attacker, must not install a cookie.
    if (!this.awaitingReply || now - this.stampedAt > COOKIE_REPLY_WINDOW || now < this.stampedAt)
      return false;
    const nonce = msg.subarray(COOKIE_NONCE, COOKIE_SEALED);
    const n = this.crypto.xopen(
      this.opened,
      0,
      this.openKey,
      nonce,
      this.lastMac1,
      msg,
      COOKIE_SEALED,
      COOKIE_LEN + TAG_LEN,
    );
    if (n !== COOKIE_LEN) return false;
    this.cookie.set(this.opened);
    this.crypto.memzero(this.opened);
    this.cookieAt = now;
    this.awaitingReply = false;
    return true;
  }

  destroy(): void {
    this.crypto.memzero(this.cookie);
    this.cookieAt = Number.NEGATIVE_INFINITY;
    this.awaitingReply = false;
  }
}

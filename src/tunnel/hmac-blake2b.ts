/**
 * HMAC-BLAKE2b and Noise's HKDF, written once over a backend's plain BLAKE2b so both backends share
 * one construction. Noise (rev 34, section 4.3) requires HMAC per RFC 2104 with HASHLEN 64 and
 * BLOCKLEN 128 — not BLAKE2b's built-in keyed mode, which gives different bytes.
 */
import { AoegwError } from '../errors.js';
import { BLOCK_LEN, HASH_LEN, type HashInput } from './crypto.js';
import { hashParts } from './crypto-args.js';

/** Unkeyed BLAKE2b over parts (as if concatenated), output length `out.length`. */
export type Blake2bParts = (out: Uint8Array, parts: readonly Uint8Array[]) => void;

const IPAD = 0x36;
const OPAD = 0x5c;

export class HmacBlake2b {
  // Scratch buffers hold key material for the duration of one call and are zeroed before return.
  private readonly pad = new Uint8Array(BLOCK_LEN);
  private readonly inner = new Uint8Array(HASH_LEN);
  private readonly longKey = new Uint8Array(HASH_LEN);
  private readonly tempKey = new Uint8Array(HASH_LEN);
  private readonly info = new Uint8Array(1);

  constructor(
    private readonly hash: Blake2bParts,
    private readonly wipe: (buf: Uint8Array) => void,
  ) {}

  /** HMAC-BLAKE2b-512(key, data) into `out` (64 bytes). `out` may alias key or data. */
  hmac(out: Uint8Array, key: Uint8Array, data: HashInput): void {
    if (out.length !== HASH_LEN) {
      throw new AoegwError('ERR_CRYPTO', `HMAC-BLAKE2b output must be ${HASH_LEN} bytes`);
    }
    let k = key;
    if (key.length > BLOCK_LEN) {
      // RFC 2104: keys longer than the block are hashed first.
      this.hash(this.longKey, [key]);
      k = this.longKey;
    }
    const pad = this.pad;
    try {
      pad.fill(0);
      pad.set(k);
      for (let i = 0; i < BLOCK_LEN; i++) pad[i]! ^= IPAD;
      this.hash(this.inner, [pad, ...hashParts(data)]);
      // Turn the inner pad into the outer pad without touching the key again.
      for (let i = 0; i < BLOCK_LEN; i++) pad[i]! ^= IPAD ^ OPAD;
      this.hash(out, [pad, this.inner]);
    } finally {
      this.wipe(pad);
      this.wipe(this.inner);
      this.wipe(this.longKey);
    }
  }

  /**
   * Noise HKDF: temp = HMAC(ck, ikm); out1 = HMAC(temp, 0x01); out2 = HMAC(temp, out1 || 0x02);
   * out3 = HMAC(temp, out2 || 0x03). temp is computed before any output is written, so outputs may
   * alias `chainingKey`.
   */
  hkdf(
    chainingKey: Uint8Array,
    ikm: Uint8Array,
    out1: Uint8Array,
    out2: Uint8Array,
    out3?: Uint8Array,
  ): void {
    const temp = this.tempKey;
    const info = this.info;
    try {
      this.hmac(temp, chainingKey, ikm);
      info[0] = 1;
      this.hmac(out1, temp, info);
      info[0] = 2;
      this.hmac(out2, temp, [out1, info]);
      if (out3 !== undefined) {
        info[0] = 3;
        this.hmac(out3, temp, [out2, info]);
      }
    } finally {
      this.wipe(temp);
    }
  }
}

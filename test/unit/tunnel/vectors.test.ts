/**
 * Wire test vectors (docs/protocol.md, "Test vectors"): a complete handshake and two transport
 * messages produced by the real endpoints from fixed keys, ephemerals, indexes and clock, and the
 * mac1/cookie key derivations. Both backends must produce the same bytes; another implementation
 * can check itself against the hex in the spec.
 */
import { describe, expect, it } from 'vitest';
import { LABEL_COOKIE, LABEL_MAC1 } from '../../../src/tunnel/constants.js';
import { deriveLabelKey } from '../../../src/tunnel/cookie.js';
import type { CryptoBackend } from '../../../src/tunnel/crypto.js';
import { Rx } from '../../../src/tunnel/endpoint.js';
import { RECORD_AOE } from '../../../src/tunnel/records.js';
import { backends, hex, unhex } from './backends.js';
import { CLOCK_OFFSET, Node } from './harness.js';

/** A backend whose "random" ephemeral secret and 4-byte indexes are fixed. */
function fixed(base: CryptoBackend, ephemeral: number, index: number): CryptoBackend {
  return {
    ...base,
    randomBytes: (out) => {
      if (out.length === 4) new DataView(out.buffer, out.byteOffset, 4).setUint32(0, index, true);
      else out.fill(0);
    },
    x25519KeyPair: (sk) => base.x25519KeyPair(sk ?? new Uint8Array(32).fill(ephemeral)),
  };
}

const VECTOR = {
  initiatorStaticSecret: '11'.repeat(32),
  responderStaticSecret: '22'.repeat(32),
  initiatorEphemeralSecret: '33'.repeat(32),
  responderEphemeralSecret: '44'.repeat(32),
  psk: '55'.repeat(32),
  initiatorIndex: 0x01020304,
  responderIndex: 0x0a0b0c0d,
  unixMs: 1_750_000_000_000,
  timestamp: '40000000684ee18000000000',
  initiation:
    '01010000040302017b0d47d93427f8311160781c7c733fd89f88970aef490d8aa0ee19a4cb8a1b1423abb5f67e062b3bb0deed399d' +
    '59a5bf962c2a075c596dc97f5fd1cc4b60af49547885d89ecca9fae9ef6f7effa295ba3df0bdb49504b19c2584978b75f8cc800b99' +
    '32b18cc926fa38d65b1a0dfb17e83cafe3258400230bca991d2100000000000000000000000000000000',
  response:
    '020100000d0c0b0a04030201ff2ee45601ec1b67310c7790404585ae697331eee1c1f8cf2419731c1fff3e6bcf26e32a5f534b1fd5' +
    'cf13684a49d1d184f1df85531f22980a1ea3613fa80ceb00000000000000000000000000000000',
  keepalive: '040100000d0c0b0a000000000000000064fdc515c47f571b5c5c036bc694448e',
  data: '040100000d0c0b0a0100000000000000802b9fd5e762f1b97692b5b6c05cc0546eab266fc43404fbb789669344115dac',
};

describe.each(backends.map((b) => [b.name, b] as const))('vectors on %s', (_n, crypto) => {
  it('mac1 and cookie keys for the public key of 32 × 0x01', () => {
    const pk = new Uint8Array(32);
    crypto.x25519PublicKey(pk, new Uint8Array(32).fill(1));
    expect(hex(pk)).toBe('a4e09292b651c278b9772c569f5fa9bb13d906b46ab68c9df9dc2b4409f8a209');
    const mac1Key = deriveLabelKey(crypto, LABEL_MAC1, pk);
    expect(hex(mac1Key)).toBe('208d9a84f168c1b5dd890a541de7dfcef88561283c98e541541faa0816325595');
    expect(hex(deriveLabelKey(crypto, LABEL_COOKIE, pk))).toBe(
      'e3f397d73689e3b9c22a13df686716397e9aea98d38bbd86d06a25a1cb2fac97',
    );
    const msg = Uint8Array.from({ length: 116 }, (_, i) => i);
    const mac = new Uint8Array(16);
    crypto.blake2b(mac, msg, mac1Key);
    expect(hex(mac)).toBe('3e702616e487147dbade4bd23d280280');
  });

  it('handshake and transport messages', () => {
    const now = VECTOR.unixMs - CLOCK_OFFSET;
    const aKeys = crypto.x25519KeyPair(unhex(VECTOR.initiatorStaticSecret));
    const bKeys = crypto.x25519KeyPair(unhex(VECTOR.responderStaticSecret));
    const a = new Node(fixed(crypto, 0x33, VECTOR.initiatorIndex), 1, { staticKeyPair: aKeys });
    const b = new Node(fixed(crypto, 0x44, VECTOR.responderIndex), 2, { staticKeyPair: bKeys });
    const psk = unhex(VECTOR.psk);
    const ab = a.ep.addPeer({ publicKey: bKeys.publicKey, endpoint: b.addr, psk });
    const ba = b.ep.addPeer({ publicKey: aKeys.publicKey, endpoint: a.addr, psk });
    a.ep.initiate(ab, now);
    const [init] = a.sink.take();
    expect(hex(init!.data)).toBe(VECTOR.initiation);
    expect(b.recv(init!.data, a.addr, now)).toBe(Rx.INITIATION);
    expect(b.ep.inspect(ba).lastTimestamp).toBe(VECTOR.timestamp);
    const [resp] = b.sink.take();
    expect(hex(resp!.data)).toBe(VECTOR.response);
    expect(a.recv(resp!.data, b.addr, now)).toBe(Rx.RESPONSE);
    const [ka] = a.sink.take();
    expect(hex(ka!.data)).toBe(VECTOR.keepalive);
    expect(b.recv(ka!.data, a.addr, now)).toBe(Rx.KEEPALIVE);
    a.ep.queueRecord(ab, RECORD_AOE, new TextEncoder().encode('aoe frame'), 0, 9, now);
    a.ep.flush(now);
    const [data] = a.sink.take();
    expect(hex(data!.data)).toBe(VECTOR.data);
    expect(b.recv(data!.data, a.addr, now)).toBe(Rx.DATA);
    expect(b.takeRecords().map((r) => new TextDecoder().decode(r.data))).toEqual(['aoe frame']);
  });
});

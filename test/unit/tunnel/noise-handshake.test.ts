/** HandshakeState behaviour beyond the vectors: failures, misuse, random ephemerals, key wiping. */
import { describe, expect, it } from 'vitest';
import { isAoegwError } from '../../../src/errors.js';
import type { CryptoBackend, X25519KeyPair } from '../../../src/tunnel/crypto.js';
import {
  CipherState,
  HandshakeState,
  handshakePattern,
  parseProtocolName,
} from '../../../src/tunnel/noise.js';
import { backends, hex } from './backends.js';

const IKPSK2 = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2b';
const PROLOGUE = new TextEncoder().encode('aoegw tunnel v1');

function expectHandshakeError(fn: () => unknown): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(isAoegwError(caught, 'ERR_HANDSHAKE'), String(caught)).toBe(true);
}

interface Peers {
  init: HandshakeState;
  resp: HandshakeState;
  initKeys: X25519KeyPair;
  respKeys: X25519KeyPair;
}

function peers(crypto: CryptoBackend, psk: Uint8Array, respPsk = psk): Peers {
  const initKeys = crypto.x25519KeyPair();
  const respKeys = crypto.x25519KeyPair();
  const init = new HandshakeState({
    crypto,
    protocolName: IKPSK2,
    initiator: true,
    prologue: PROLOGUE,
    staticKeyPair: initKeys,
    remoteStatic: respKeys.publicKey,
    psks: [psk],
  });
  const resp = new HandshakeState({
    crypto,
    protocolName: IKPSK2,
    initiator: false,
    prologue: PROLOGUE,
    staticKeyPair: respKeys,
    psks: [respPsk],
  });
  return { init, resp, initKeys, respKeys };
}

describe('patterns', () => {
  it('IKpsk2 is IK with psk at the end of the second message', () => {
    expect(parseProtocolName(IKPSK2).messages).toEqual([
      ['e', 'es', 's', 'ss'],
      ['e', 'ee', 'se', 'psk'],
    ]);
    expect(handshakePattern('IKpsk2').psk).toBe(true);
    expect(handshakePattern('IK').psk).toBe(false);
    expect(handshakePattern('XXpsk0+psk3').messages).toEqual([
      ['psk', 'e'],
      ['e', 'ee', 's', 'es'],
      ['s', 'se', 'psk'],
    ]);
  });

  it.each([
    'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s',
    'Noise_IKpsk2_448_ChaChaPoly_BLAKE2b',
    'Noise_IKpsk2_25519_AESGCM_BLAKE2b',
    'Noise_KK_25519_ChaChaPoly_BLAKE2b',
    'Noise_IKpsk3_25519_ChaChaPoly_BLAKE2b',
    'Noise_IKfoo_25519_ChaChaPoly_BLAKE2b',
    'NoiseIK',
  ])('refuses %s', (name) => {
    expectHandshakeError(() => parseProtocolName(name));
  });
});

describe.each(backends.map((b) => [b.name, b] as const))('HandshakeState on %s', (_name, crypto) => {
  it('IKpsk2 with random ephemerals: both sides agree, transport works both ways', () => {
    const psk = new Uint8Array(32).fill(7);
    const { init, resp, initKeys } = peers(crypto, psk);
    const stamp = new Uint8Array(12).fill(1);
    const m1 = init.writeMessage(stamp);
    // WireGuard's initiation body: e (32) + encrypted s (32+16) + encrypted 12-byte timestamp (12+16).
    expect(m1.length).toBe(32 + 48 + 28);
    expect(hex(resp.readMessage(m1))).toBe(hex(stamp));
    expect(hex(resp.remoteStatic!)).toBe(hex(initKeys.publicKey));
    const m2 = resp.writeMessage(new Uint8Array(0));
    // WireGuard's response body: e (32) + encrypted empty payload (16).
    expect(m2.length).toBe(32 + 16);
    expect(init.readMessage(m2)).toHaveLength(0);
    expect(hex(init.handshakeHash())).toBe(hex(resp.handshakeHash()));
    const a = init.split();
    const b = resp.split();
    const hello = new TextEncoder().encode('hello');
    expect(hex(b.recv.decryptWithAd(new Uint8Array(0), a.send.encryptWithAd(new Uint8Array(0), hello)))).toBe(
      hex(hello),
    );
    expect(hex(a.recv.decryptWithAd(new Uint8Array(0), b.send.encryptWithAd(new Uint8Array(0), hello)))).toBe(
      hex(hello),
    );
    // The psk passed in is copied, not wiped under the caller.
    expect(psk.every((x) => x === 7)).toBe(true);
  });

  it('fresh ephemerals each time: two handshakes give different messages and hashes', () => {
    const psk = new Uint8Array(32);
    const one = peers(crypto, psk);
    const two = peers(crypto, psk);
    expect(hex(one.init.writeMessage(new Uint8Array(0)))).not.toBe(
      hex(two.init.writeMessage(new Uint8Array(0))),
    );
  });

  it('a PSK mismatch fails when the initiator reads the response', () => {
    const { init, resp } = peers(crypto, new Uint8Array(32).fill(1), new Uint8Array(32).fill(2));
    resp.readMessage(init.writeMessage(new Uint8Array(0)));
    const m2 = resp.writeMessage(new Uint8Array(0));
    expectHandshakeError(() => init.readMessage(m2));
    // The failed state is wiped and refuses further use.
    expectHandshakeError(() => init.split());
  });

  it('any flipped bit in the initiation is refused', () => {
    const { init, respKeys } = peers(crypto, new Uint8Array(32));
    const m1 = init.writeMessage(new Uint8Array(12));
    for (let i = 0; i < m1.length; i++) {
      const bad = Uint8Array.from(m1);
      bad[i]! ^= 0x01;
      const resp = new HandshakeState({
        crypto,
        protocolName: IKPSK2,
        initiator: false,
        prologue: PROLOGUE,
        staticKeyPair: respKeys,
      });
      expectHandshakeError(() => resp.readMessage(bad));
    }
  });

  it('a different prologue is refused', () => {
    const { init, respKeys } = peers(crypto, new Uint8Array(32));
    const resp = new HandshakeState({
      crypto,
      protocolName: IKPSK2,
      initiator: false,
      prologue: new TextEncoder().encode('other'),
      staticKeyPair: respKeys,
    });
    expectHandshakeError(() => resp.readMessage(init.writeMessage(new Uint8Array(0))));
  });

  it('truncated and over-long messages are refused', () => {
    const { init, resp } = peers(crypto, new Uint8Array(32));
    const m1 = init.writeMessage(new Uint8Array(0));
    expectHandshakeError(() => resp.readMessage(m1.subarray(0, 40)));
    const { resp: resp2 } = peers(crypto, new Uint8Array(32));
    expectHandshakeError(() => resp2.readMessage(new Uint8Array(65536)));
  });

  it('a low-order remote ephemeral (all-zero DH) is refused', () => {
    const { resp } = peers(crypto, new Uint8Array(32));
    const m1 = new Uint8Array(32 + 48 + 16); // e = 0: X25519 with it yields all zeros
    let caught: unknown;
    try {
      resp.readMessage(m1);
    } catch (err) {
      caught = err;
    }
    expect(isAoegwError(caught, 'ERR_HANDSHAKE')).toBe(true);
    expect(isAoegwError((caught as Error).cause, 'ERR_CRYPTO')).toBe(true);
  });

  it('refuses misuse: wrong turn, split before the end, missing keys or psk', () => {
    const { init, resp } = peers(crypto, new Uint8Array(32));
    expectHandshakeError(() => resp.writeMessage(new Uint8Array(0)));
    expectHandshakeError(() => init.split());
    const fresh = peers(crypto, new Uint8Array(32));
    expectHandshakeError(() => fresh.init.readMessage(new Uint8Array(64)));
    // IK needs the responder's static key up front.
    expectHandshakeError(
      () =>
        new HandshakeState({
          crypto,
          protocolName: IKPSK2,
          initiator: true,
          staticKeyPair: crypto.x25519KeyPair(),
        }),
    );
    expectHandshakeError(() => fresh.init.setPsk(new Uint8Array(31)));
    // No psk supplied: the responder fails at the psk token of message 2.
    const keys = crypto.x25519KeyPair();
    const i2 = new HandshakeState({
      crypto,
      protocolName: IKPSK2,
      initiator: true,
      staticKeyPair: crypto.x25519KeyPair(),
      remoteStatic: keys.publicKey,
      psks: [new Uint8Array(32)],
    });
    const r2 = new HandshakeState({ crypto, protocolName: IKPSK2, initiator: false, staticKeyPair: keys });
    r2.readMessage(i2.writeMessage(new Uint8Array(0)));
    expectHandshakeError(() => r2.writeMessage(new Uint8Array(0)));
  });

  it('split() orients keys: initiator sends with c1, responder receives with c1', () => {
    const { init, resp } = peers(crypto, new Uint8Array(32));
    resp.readMessage(init.writeMessage(new Uint8Array(0)));
    init.readMessage(resp.writeMessage(new Uint8Array(0)));
    const a = init.split();
    const b = resp.split();
    expect(hex(a.send.key!)).toBe(hex(b.recv.key!));
    expect(hex(a.recv.key!)).toBe(hex(b.send.key!));
    expect(hex(a.send.key!)).not.toBe(hex(a.recv.key!));
    expectHandshakeError(() => init.split());
  });
});

describe.each(backends.map((b) => [b.name, b] as const))('CipherState on %s', (_name, crypto) => {
  it('without a key passes plaintext through (Noise 5.1)', () => {
    const cs = new CipherState(crypto);
    expect(hex(cs.encryptWithAd(new Uint8Array(0), Uint8Array.of(1, 2)))).toBe('0102');
  });

  it('nonce advances only on success and 2^64-1 is never used', () => {
    const key = new Uint8Array(32).fill(3);
    const tx = new CipherState(crypto, key);
    const rx = new CipherState(crypto, key);
    const ct = tx.encryptWithAd(new Uint8Array(0), Uint8Array.of(9));
    const bad = Uint8Array.from(ct);
    bad[0]! ^= 1;
    expect(() => rx.decryptWithAd(new Uint8Array(0), bad)).toThrow();
    expect(rx.nonce).toBe(0n);
    rx.decryptWithAd(new Uint8Array(0), ct);
    expect(rx.nonce).toBe(1n);
    tx.setNonce(2n ** 64n - 2n);
    tx.encryptWithAd(new Uint8Array(0), new Uint8Array(0));
    let caught: unknown;
    try {
      tx.encryptWithAd(new Uint8Array(0), new Uint8Array(0));
    } catch (err) {
      caught = err;
    }
    expect(isAoegwError(caught, 'ERR_NONCE_EXHAUSTED')).toBe(true);
  });

  it('destroy() zeroes the key in place', () => {
    const cs = new CipherState(crypto, new Uint8Array(32).fill(0xaa));
    const k = cs.key!;
    cs.destroy();
    expect(k.every((x) => x === 0)).toBe(true);
    expect(cs.hasKey()).toBe(false);
  });
});

describe.each(backends.map((b) => [b.name, b] as const))('HandshakeState.fork on %s', (_name, crypto) => {
  it('a fork that fails leaves the original usable; forks are independent copies', () => {
    const { init, resp } = peers(crypto, new Uint8Array(32));
    resp.readMessage(init.writeMessage(new Uint8Array(12)));
    const m2 = resp.writeMessage(new Uint8Array(0));
    const bad = Uint8Array.from(m2);
    bad[40]! ^= 1;
    const doomed = init.fork();
    expectHandshakeError(() => doomed.readMessage(bad));
    const good = init.fork();
    expect(good.readMessage(m2)).toHaveLength(0);
    // The original, untouched by both forks, still completes too, with the same hash.
    expect(init.readMessage(m2)).toHaveLength(0);
    expect(hex(init.handshakeHash())).toBe(hex(good.handshakeHash()));
    expect(hex(init.handshakeHash())).toBe(hex(resp.handshakeHash()));
    const a = good.split();
    const b = resp.split();
    const ct = a.send.encryptWithAd(new Uint8Array(0), new Uint8Array([1, 2, 3]));
    expect(Array.from(b.recv.decryptWithAd(new Uint8Array(0), ct))).toEqual([1, 2, 3]);
  });

  it('a destroyed state cannot be forked', () => {
    const { init } = peers(crypto, new Uint8Array(32));
    init.destroy();
    expectHandshakeError(() => init.fork());
  });
});

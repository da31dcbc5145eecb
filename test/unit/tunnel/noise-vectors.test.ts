/**
 * Cacophony test vectors for Noise_*_25519_ChaChaPoly_BLAKE2b (fixture copied from ../shared):
 * every handshake message (payload and ciphertext), the final handshake hash, and the transport
 * messages after Split(), on both crypto backends.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { CryptoBackend } from '../../../src/tunnel/crypto.js';
import { HandshakeState, type TransportKeys } from '../../../src/tunnel/noise.js';
import { backends, hex, unhex } from './backends.js';

interface VectorMessage {
  payload: string;
  ciphertext: string;
}

interface Vector {
  protocol_name: string;
  init_prologue: string;
  init_psks?: string[];
  init_static?: string;
  init_ephemeral: string;
  init_remote_static?: string;
  resp_prologue: string;
  resp_psks?: string[];
  resp_static?: string;
  resp_ephemeral?: string;
  resp_remote_static?: string;
  handshake_hash: string;
  messages: VectorMessage[];
}

const fixture = JSON.parse(
  readFileSync(new URL('../../fixtures/noise/cacophony-chachapoly-blake2b.json', import.meta.url), 'utf8'),
) as { vectors: Vector[] };
const vectors = fixture.vectors;

function side(crypto: CryptoBackend, v: Vector, initiator: boolean, withPsks = true): HandshakeState {
  const p = initiator ? 'init' : 'resp';
  const get = (field: string): string | undefined =>
    (v as unknown as Record<string, string | undefined>)[`${p}_${field}`];
  const psks = initiator ? v.init_psks : v.resp_psks;
  const staticHex = get('static');
  const remoteHex = get('remote_static');
  const ephHex = get('ephemeral');
  return new HandshakeState({
    crypto,
    protocolName: v.protocol_name,
    initiator,
    prologue: unhex(get('prologue') ?? ''),
    staticKeyPair: staticHex === undefined ? undefined : crypto.x25519KeyPair(unhex(staticHex)),
    remoteStatic: remoteHex === undefined ? undefined : unhex(remoteHex),
    ephemeralSecret: ephHex === undefined ? undefined : unhex(ephHex),
    psks: withPsks ? (psks ?? []).map(unhex) : [],
  });
}

/** Runs the handshake part of a vector; returns the index of the first transport message. */
function runHandshake(init: HandshakeState, resp: HandshakeState, v: Vector): number {
  let i = 0;
  for (; !init.isComplete; i++) {
    const msg = v.messages[i]!;
    const [writer, reader] = i % 2 === 0 ? [init, resp] : [resp, init];
    const ct = writer.writeMessage(unhex(msg.payload));
    expect(hex(ct), `message ${i} ciphertext`).toBe(msg.ciphertext);
    expect(hex(reader.readMessage(ct)), `message ${i} payload`).toBe(msg.payload);
  }
  expect(resp.isComplete).toBe(true);
  return i;
}

function runTransport(ik: TransportKeys, rk: TransportKeys, v: Vector, from: number): number {
  let checked = 0;
  for (let i = from; i < v.messages.length; i++) {
    const msg = v.messages[i]!;
    // Cacophony keeps alternating after the handshake: even indices are initiator → responder.
    const [tx, rx] = i % 2 === 0 ? [ik, rk] : [rk, ik];
    const ct = tx.send.encryptWithAd(new Uint8Array(0), unhex(msg.payload));
    expect(hex(ct), `transport ${i} ciphertext`).toBe(msg.ciphertext);
    expect(hex(rx.recv.decryptWithAd(new Uint8Array(0), ct)), `transport ${i} payload`).toBe(msg.payload);
    checked++;
  }
  return checked;
}

describe('fixture', () => {
  it('holds the IK and IKpsk2 vectors of this suite', () => {
    const names = vectors.map((v) => v.protocol_name);
    expect(names).toContain('Noise_IK_25519_ChaChaPoly_BLAKE2b');
    expect(names).toContain('Noise_IKpsk2_25519_ChaChaPoly_BLAKE2b');
    expect(names).toHaveLength(4);
  });
});

describe.each(backends.map((b) => [b.name, b] as const))('cacophony vectors on %s', (_name, crypto) => {
  it.each(vectors.map((v) => [v.protocol_name, v] as const))('%s', (_p, v) => {
    const init = side(crypto, v, true);
    const resp = side(crypto, v, false);
    const first = runHandshake(init, resp, v);
    expect(hex(init.handshakeHash())).toBe(v.handshake_hash);
    expect(hex(resp.handshakeHash())).toBe(v.handshake_hash);
    const ik = init.split();
    const rk = resp.split();
    // The hash stays readable after split (channel binding).
    expect(hex(init.handshakeHash())).toBe(v.handshake_hash);
    const transport = runTransport(ik, rk, v, first);
    expect(first + transport).toBe(v.messages.length);
  });

  it('counts: every message of every vector is checked', () => {
    // 4 vectors × 6 messages (NN/IK/IKpsk2: 2 handshake + 4 transport; XX: 3 + 3) = 24 messages.
    let handshake = 0;
    let transport = 0;
    for (const v of vectors) {
      const init = side(crypto, v, true);
      const resp = side(crypto, v, false);
      const first = runHandshake(init, resp, v);
      handshake += first;
      transport += runTransport(init.split(), resp.split(), v, first);
    }
    expect({ handshake, transport }).toEqual({ handshake: 9, transport: 15 });
  });

  it('IKpsk2 as WireGuard runs it: the responder supplies the PSK after identifying the initiator', () => {
    const v = vectors.find((x) => x.protocol_name === 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2b')!;
    const init = side(crypto, v, true);
    const resp = side(crypto, v, false, false);
    const m1 = init.writeMessage(unhex(v.messages[0]!.payload));
    expect(hex(resp.readMessage(m1))).toBe(v.messages[0]!.payload);
    // The initiator's static key came out of message 1: look the peer up, then give its PSK.
    const initPub = crypto.x25519KeyPair(unhex(v.init_static!)).publicKey;
    expect(hex(resp.remoteStatic!)).toBe(hex(initPub));
    resp.setPsk(unhex(v.resp_psks![0]!));
    const m2 = resp.writeMessage(unhex(v.messages[1]!.payload));
    expect(hex(m2)).toBe(v.messages[1]!.ciphertext);
    init.readMessage(m2);
    expect(hex(resp.handshakeHash())).toBe(v.handshake_hash);
  });

  it('transport messages through the zero-allocation *Into calls match the vectors', () => {
    const v = vectors.find((x) => x.protocol_name === 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2b')!;
    const init = side(crypto, v, true);
    const resp = side(crypto, v, false);
    const first = runHandshake(init, resp, v);
    const ik = init.split();
    const rk = resp.split();
    const buf = new Uint8Array(256);
    for (let i = first; i < v.messages.length; i++) {
      const [tx, rx] = i % 2 === 0 ? [ik, rk] : [rk, ik];
      const pt = unhex(v.messages[i]!.payload);
      buf.set(pt, 8);
      // In place, at an offset, as the data path will do with a datagram buffer.
      const n = tx.send.encryptInto(buf, 8, null, buf, 8, pt.length);
      expect(hex(buf.subarray(8, 8 + n))).toBe(v.messages[i]!.ciphertext);
      expect(rx.recv.decryptInto(buf, 8, null, buf, 8, n)).toBe(pt.length);
      expect(hex(buf.subarray(8, 8 + pt.length))).toBe(v.messages[i]!.payload);
    }
  });
});

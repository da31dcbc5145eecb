/**
 * Datagram-level rejection: forged (bit flips anywhere), truncated (every length), reordered,
 * duplicated, wrong-key, wrong-index, expired and replayed datagrams, replayed initiations, mac1
 * before any DH, cookies under load, the rate limit. Every rejection is shown to change no protocol
 * state: a snapshot of the receiver before and after is equal, and the genuine datagram delivered
 * afterwards behaves exactly as if the rejected ones had never come.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { REJECT_AFTER_TIME } from '../../../src/tunnel/constants.js';
import { CookieMaker } from '../../../src/tunnel/cookie.js';
import { Rx, type RxOutcome } from '../../../src/tunnel/endpoint.js';
import {
  COOKIE_REPLY_LEN,
  DATA_RECEIVER,
  INIT_EPHEMERAL,
  INIT_LEN,
  INIT_MAC1,
  INIT_MAC2,
  MSG_COOKIE_REPLY,
  MSG_INITIATION,
  MSG_RESPONSE,
  RESP_LEN,
  RESP_MAC1,
  RESP_MAC2,
  RESP_RECEIVER,
  writeHeader,
  writeU32,
} from '../../../src/tunnel/messages.js';
import { REPLAY_WINDOW } from '../../../src/tunnel/replay.js';
import { sodiumNative as crypto } from './backends.js';
import {
  addr,
  bytes,
  connected,
  countingBackend,
  type Datagram,
  Net,
  Node,
  pair,
  sendRecords,
  T0,
} from './harness.js';

const enc = (s: string) => new TextEncoder().encode(s);

/** Everything protocol-relevant about a node, minus the drop counters. */
function snap(node: Node) {
  return {
    peers: [...node.ep.peers()].map((p) => node.ep.inspect(p)),
    indexCount: node.ep.indexCount,
    records: node.records.length,
    completed: node.completed.length,
    sent: node.sink.out.length,
  };
}

const ACCEPTED: readonly RxOutcome[] = [Rx.DATA, Rx.KEEPALIVE, Rx.INITIATION, Rx.RESPONSE, Rx.COOKIE];

function flip(data: Uint8Array, bits: readonly number[]): Uint8Array {
  const out = Uint8Array.from(data);
  for (const bit of bits) out[bit >> 3]! ^= 1 << (bit & 7);
  return out;
}

/** Distinct bit positions in [0, len*8) outside [skipFrom, skipTo) — at least one. */
function bitFlips(len: number, skipFrom = len, skipTo = len) {
  const ok = (b: number) => b >> 3 < skipFrom || b >> 3 >= skipTo;
  return fc
    .uniqueArray(fc.integer({ min: 0, max: len * 8 - 1 }), { minLength: 1, maxLength: 4 })
    .filter((bits) => bits.every(ok));
}

describe('transport data', () => {
  it('forged: any bit flips anywhere are rejected without state change (property)', () => {
    const { a, b, ab } = connected(crypto);
    // Give B's window some history first.
    for (const d of sendRecords(a, ab, [enc('one'), enc('two')], T0)) b.recv(d.data, a.addr, T0);
    const [d] = sendRecords(a, ab, [enc('genuine')], T0);
    const before = snap(b);
    fc.assert(
      fc.property(bitFlips(d!.data.length), (bits) => {
        const outcome = b.recv(flip(d!.data, bits), a.addr, T0);
        expect(ACCEPTED).not.toContain(outcome);
        expect(snap(b)).toEqual(before);
      }),
      { numRuns: 500 },
    );
    expect(b.recv(d!.data, a.addr, T0)).toBe(Rx.DATA);
  });

  it('truncated at every length: rejected without state change', () => {
    const { a, b, ab } = connected(crypto);
    const [d] = sendRecords(a, ab, [bytes(300, 7)], T0);
    const before = snap(b);
    for (let len = 0; len < d!.data.length; len++) {
      const outcome = b.ep.receive(d!.data, len, a.addr, 0, T0);
      expect(outcome === Rx.MALFORMED || outcome === Rx.BAD_AUTH, `len ${len}: ${outcome}`).toBe(true);
    }
    // A short copy (not just a short length) too.
    for (let len = 0; len < d!.data.length; len += 7) {
      expect(ACCEPTED).not.toContain(b.recv(d!.data.slice(0, len), a.addr, T0));
    }
    expect(snap(b)).toEqual(before);
    expect(b.recv(d!.data, a.addr, T0)).toBe(Rx.DATA);
  });

  it('reordered and duplicated within the window: each accepted exactly once (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(63), { minLength: 1, maxLength: 200 }), (order) => {
        const { a, b, ab } = connected(crypto);
        const payloads = Array.from({ length: 64 }, (_, i) => enc(`p${i}`));
        const sent: Datagram[] = [];
        for (const p of payloads) sent.push(...sendRecords(a, ab, [p], T0));
        const seen = new Set<number>();
        for (const i of order) {
          const outcome = b.recv(sent[i]!.data, a.addr, T0);
          expect(outcome).toBe(seen.has(i) ? Rx.REPLAY : Rx.DATA);
          seen.add(i);
        }
        const got = b.takeRecords().map((r) => new TextDecoder().decode(r.data));
        expect(got).toEqual([...new Set(order)].map((i) => `p${i}`));
      }),
      { numRuns: 40 },
    );
  });

  it('older than the window: rejected; the edge of the window: accepted', () => {
    const { a, b, ab } = connected(crypto);
    // Keepalives (empty transport messages) serve as the numbered packets.
    for (let i = 0; i < REPLAY_WINDOW + 2; i++) a.ep.sendKeepalive(ab, T0);
    const ka = a.sink.take();
    expect(ka).toHaveLength(REPLAY_WINDOW + 2);
    // Counters 1.. (counter 0 was A's confirming keepalive, already delivered).
    const last = ka[ka.length - 1]!; // counter W + 2
    expect(b.recv(last.data, a.addr, T0)).toBe(Rx.KEEPALIVE);
    const before = snap(b);
    expect(b.recv(ka[0]!.data, a.addr, T0)).toBe(Rx.REPLAY); // counter 1: W + 1 behind
    expect(snap(b)).toEqual(before);
    expect(b.recv(ka[1]!.data, a.addr, T0)).toBe(Rx.KEEPALIVE); // counter 2: exactly W behind
    expect(b.recv(ka[1]!.data, a.addr, T0)).toBe(Rx.REPLAY);
  });

  it('replayed datagrams are refused without state change', () => {
    const { a, b, ab } = connected(crypto);
    const [d] = sendRecords(a, ab, [enc('once')], T0);
    expect(b.recv(d!.data, a.addr, T0)).toBe(Rx.DATA);
    const before = snap(b);
    for (let i = 0; i < 3; i++) expect(b.recv(d!.data, addr(50 + i), T0 + i)).toBe(Rx.REPLAY);
    expect(snap(b)).toEqual(before);
    expect(b.takeRecords()).toHaveLength(1);
  });

  it('wrong key: a third endpoint’s packets under another session’s index fail authentication', () => {
    const { a, b, ab } = connected(crypto);
    const c = new Node(crypto, 3);
    const cb = c.addPeer(b);
    b.addPeer(c);
    c.ep.initiate(cb, T0);
    new Net(a, b, c).run(T0);
    expect(cb.hasSession(T0)).toBe(true);
    const [fromA] = sendRecords(a, ab, [enc('genuine')], T0);
    const [fromC] = sendRecords(c, cb, [enc('mallory')], T0);
    // C rewrites its datagram to name A's session at B.
    const forged = Uint8Array.from(fromC!.data);
    forged.set(fromA!.data.subarray(DATA_RECEIVER, DATA_RECEIVER + 4), DATA_RECEIVER);
    const before = snap(b);
    expect(b.recv(forged, a.addr, T0)).toBe(Rx.BAD_AUTH);
    expect(b.recv(forged, c.addr, T0)).toBe(Rx.BAD_AUTH);
    expect(snap(b)).toEqual(before);
    expect(b.recv(fromA!.data, a.addr, T0)).toBe(Rx.DATA);
    // And A's datagram delivered to C names nothing there.
    expect(c.recv(fromA!.data, a.addr, T0)).toBe(Rx.UNKNOWN_INDEX);
  });

  it('wrong index: unknown indexes and a pending handshake’s index are refused', () => {
    const { a, b, ab, net } = connected(crypto);
    const [d] = sendRecords(a, ab, [enc('x')], T0);
    const before = snap(b);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff_ffff }), (index) => {
        const bad = Uint8Array.from(d!.data);
        writeU32(bad, DATA_RECEIVER, index);
        const outcome = b.recv(bad, a.addr, T0);
        if (index === ab.current!.remoteIndex) expect(outcome).toBe(Rx.DATA);
        else expect(outcome).toBe(Rx.UNKNOWN_INDEX);
      }),
      { numRuns: 200 },
    );
    expect(snap(b)).toEqual(before);
    // A transport message naming an initiator's pending handshake index.
    b.ep.initiate(b.ep.peer(a.keys.publicKey)!, T0);
    const pendingIndex = b.ep.inspect(b.ep.peer(a.keys.publicKey)!).pending!.localIndex;
    b.sink.take();
    const bad = Uint8Array.from(d!.data);
    writeU32(bad, DATA_RECEIVER, pendingIndex);
    expect(b.recv(bad, a.addr, T0)).toBe(Rx.UNKNOWN_INDEX);
    expect(b.recv(d!.data, a.addr, T0)).toBe(Rx.DATA);
    net.run(T0);
  });

  it('expired session: refused without state change', () => {
    const { a, b, ab } = connected(crypto);
    const [d] = sendRecords(a, ab, [enc('x')], T0 + 1000);
    const before = snap(b);
    expect(b.recv(d!.data, a.addr, T0 + REJECT_AFTER_TIME)).toBe(Rx.EXPIRED);
    expect(b.recv(d!.data, a.addr, T0 + REJECT_AFTER_TIME * 10)).toBe(Rx.EXPIRED);
    expect(snap(b)).toEqual(before);
    expect(b.recv(d!.data, a.addr, T0 + REJECT_AFTER_TIME - 1)).toBe(Rx.DATA);
  });

  it('authenticated but malformed records: nothing delivered, counted', () => {
    const { a, b, ab } = connected(crypto);
    // A record whose length runs past the end: queue raw bytes as a record body, then corrupt the
    // header inside the plaintext by sealing a hand-made plaintext.
    const s = ab.current!;
    const plain = Uint8Array.from([1, 0, 10, 1, 2]);
    const out = new Uint8Array(16 + plain.length + 16);
    writeHeader(out, 0, 4);
    writeU32(out, 4, s.remoteIndex);
    out[8] = Number(s.sendCounter);
    crypto.seal(out, 16, s.sendKey, s.sendCounter, null, plain, 0, plain.length);
    expect(b.recv(out, a.addr, T0)).toBe(Rx.BAD_RECORDS);
    expect(b.records).toHaveLength(0);
  });
});

describe('handshake messages', () => {
  it('initiation: bit flips outside mac2 are rejected without state change or reply (property)', () => {
    const { a, b, ab } = pair(crypto);
    a.ep.initiate(ab, T0);
    const [init] = a.sink.take();
    const before = snap(b);
    fc.assert(
      fc.property(bitFlips(INIT_LEN, INIT_MAC2, INIT_LEN), (bits) => {
        expect(ACCEPTED).not.toContain(b.recv(flip(init!.data, bits), a.addr, T0));
        expect(snap(b)).toEqual(before);
      }),
      { numRuns: 300 },
    );
    expect(b.recv(init!.data, a.addr, T0)).toBe(Rx.INITIATION);
  });

  it('initiation: mac2 is ignored when not under load, required (any bit) under load', () => {
    const { a, b, ab } = pair(crypto);
    a.ep.initiate(ab, T0);
    const [init] = a.sink.take();
    expect(b.recv(flip(init!.data, [INIT_MAC2 * 8 + 3]), a.addr, T0)).toBe(Rx.INITIATION);
    b.sink.take();
    // Under load, with a cookie, every flipped bit anywhere (mac2 included) is refused.
    b.ep.setUnderLoad(true);
    a.ep.initiate(ab, T0 + 1);
    b.recv(a.sink.take()[0]!.data, a.addr, T0 + 1); // → cookie reply
    expect(a.recv(b.sink.take()[0]!.data, b.addr, T0 + 1)).toBe(Rx.COOKIE);
    a.ep.initiate(ab, T0 + 2);
    const [withMac2] = a.sink.take();
    const before = snap(b);
    fc.assert(
      fc.property(bitFlips(INIT_LEN), (bits) => {
        const outcome = b.recv(flip(withMac2!.data, bits), a.addr, T0 + 2);
        expect(ACCEPTED).not.toContain(outcome);
        expect(b.sink.take().every((d) => d.data[0] === MSG_COOKIE_REPLY)).toBe(true);
        expect(snap(b)).toEqual(before);
      }),
      { numRuns: 300 },
    );
    expect(b.recv(withMac2!.data, a.addr, T0 + 2)).toBe(Rx.INITIATION);
  });

  it('response: bit flips outside mac2 are rejected; the pending handshake survives (property)', () => {
    const { a, b, ab } = pair(crypto);
    a.ep.initiate(ab, T0);
    b.recv(a.sink.take()[0]!.data, a.addr, T0);
    const [resp] = b.sink.take();
    const before = snap(a);
    fc.assert(
      fc.property(bitFlips(RESP_LEN, RESP_MAC2, RESP_LEN), (bits) => {
        expect(ACCEPTED).not.toContain(a.recv(flip(resp!.data, bits), b.addr, T0));
        expect(snap(a)).toEqual(before);
      }),
      { numRuns: 300 },
    );
    expect(a.recv(resp!.data, b.addr, T0)).toBe(Rx.RESPONSE);
  });

  it('a forged response with a valid mac1 and the right index does not kill the handshake', () => {
    const { a, b, ab } = pair(crypto);
    a.ep.initiate(ab, T0);
    const [init] = a.sink.take();
    const index = a.ep.inspect(ab).pending!.localIndex;
    // Anyone who saw the initiation and knows A's public key can make this.
    const forged = new Uint8Array(RESP_LEN);
    crypto.randomBytes(forged);
    writeHeader(forged, 0, MSG_RESPONSE);
    writeU32(forged, RESP_RECEIVER, index);
    new CookieMaker(crypto, a.keys.publicKey).stamp(forged, RESP_MAC1, T0);
    const before = snap(a);
    expect(a.recv(forged, addr(66), T0)).toBe(Rx.HANDSHAKE_FAILED);
    expect(snap(a)).toEqual(before);
    b.recv(init!.data, a.addr, T0);
    expect(a.recv(b.sink.take()[0]!.data, b.addr, T0)).toBe(Rx.RESPONSE);
  });

  it('cookie reply: bit flips are rejected; the genuine one is still accepted afterwards', () => {
    const { a, b, ab } = pair(crypto);
    b.ep.setUnderLoad(true);
    a.ep.initiate(ab, T0);
    expect(b.recv(a.sink.take()[0]!.data, a.addr, T0)).toBe(Rx.COOKIE_SENT);
    const [reply] = b.sink.take();
    expect(reply!.data.length).toBe(COOKIE_REPLY_LEN);
    const before = snap(a);
    fc.assert(
      fc.property(bitFlips(COOKIE_REPLY_LEN), (bits) => {
        expect(ACCEPTED).not.toContain(a.recv(flip(reply!.data, bits), b.addr, T0));
        expect(snap(a)).toEqual(before);
      }),
      { numRuns: 300 },
    );
    expect(a.recv(reply!.data, b.addr, T0)).toBe(Rx.COOKIE);
    // Consumed: the same reply again is refused (the initiation it answered was replaced at once
    // by the resend with mac2, so its index names nothing any more).
    expect(a.recv(reply!.data, b.addr, T0)).toBe(Rx.UNKNOWN_INDEX);
  });

  it('truncated or extended at every length: handshake messages rejected without state change', () => {
    const { a, b, ab } = pair(crypto);
    b.ep.setUnderLoad(true);
    a.ep.initiate(ab, T0);
    const [init] = a.sink.take();
    b.recv(init!.data, a.addr, T0);
    const [cookie] = b.sink.take();
    b.ep.setUnderLoad(null);
    const beforeB = snap(b);
    const beforeA = snap(a);
    for (let len = 0; len < INIT_LEN + 40; len++) {
      if (len === INIT_LEN) continue;
      const msg = new Uint8Array(len);
      msg.set(init!.data.subarray(0, Math.min(len, INIT_LEN)));
      expect(b.recv(msg, a.addr, T0)).toBe(Rx.MALFORMED);
    }
    for (let len = 0; len < COOKIE_REPLY_LEN + 40; len++) {
      if (len === COOKIE_REPLY_LEN) continue;
      const msg = new Uint8Array(len);
      msg.set(cookie!.data.subarray(0, Math.min(len, COOKIE_REPLY_LEN)));
      expect(a.recv(msg, b.addr, T0)).toBe(Rx.MALFORMED);
    }
    expect(snap(b)).toEqual(beforeB);
    expect(snap(a)).toEqual(beforeA);
    expect(b.recv(init!.data, a.addr, T0)).toBe(Rx.INITIATION);
    const [resp] = b.sink.take();
    for (let len = 0; len < RESP_LEN + 40; len++) {
      if (len === RESP_LEN) continue;
      const msg = new Uint8Array(len);
      msg.set(resp!.data.subarray(0, Math.min(len, RESP_LEN)));
      expect(a.recv(msg, b.addr, T0)).toBe(Rx.MALFORMED);
    }
    expect(snap(a)).toEqual(beforeA);
    expect(a.recv(resp!.data, b.addr, T0)).toBe(Rx.RESPONSE);
  });

  it('a replayed initiation is refused without state change (same or older timestamp)', () => {
    const { a, b, ab, ba } = pair(crypto);
    a.ep.initiate(ab, T0);
    const [older] = a.sink.take();
    a.ep.initiate(ab, T0 + 10);
    const [newer] = a.sink.take();
    expect(b.recv(newer!.data, a.addr, T0 + 10)).toBe(Rx.INITIATION);
    const [resp] = b.sink.take();
    const before = snap(b);
    const nextIndex = b.ep.inspect(ba).next!.localIndex;
    expect(b.recv(newer!.data, addr(77), T0 + 20)).toBe(Rx.STALE_TIMESTAMP);
    expect(b.recv(older!.data, addr(77), T0 + 20)).toBe(Rx.STALE_TIMESTAMP);
    expect(b.sink.out).toHaveLength(0);
    expect(snap(b)).toEqual(before);
    expect(b.ep.inspect(ba).next!.localIndex).toBe(nextIndex);
    // The genuine handshake completes as if nothing happened.
    expect(a.recv(resp!.data, b.addr, T0 + 20)).toBe(Rx.RESPONSE);
    expect(b.recv(a.sink.take()[0]!.data, a.addr, T0 + 20)).toBe(Rx.KEEPALIVE);
    expect(ba.hasSession(T0 + 20)).toBe(true);
  });

  it('an initiation with a low-order ephemeral key is refused, not an internal error', () => {
    const { a, b, ab } = pair(crypto);
    a.ep.initiate(ab, T0);
    const init = Uint8Array.from(a.sink.take()[0]!.data);
    init.fill(0, INIT_EPHEMERAL, INIT_EPHEMERAL + 32);
    new CookieMaker(crypto, b.keys.publicKey).stamp(init, INIT_MAC1, T0);
    expect(b.recv(init, a.addr, T0)).toBe(Rx.HANDSHAKE_FAILED);
    expect(b.ep.stats.rx[Rx.INTERNAL]).toBe(0);
  });

  it('an initiation for another responder key fails mac1', () => {
    const { a, ab } = pair(crypto);
    const c = new Node(crypto, 3);
    c.addPeer(a);
    a.ep.initiate(ab, T0);
    expect(c.recv(a.sink.take()[0]!.data, a.addr, T0)).toBe(Rx.BAD_MAC1);
  });
});

describe('DoS protection', () => {
  it('mac1 is checked before any DH: a bad-mac1 flood costs zero DH operations', () => {
    const { crypto: counted, dh } = countingBackend(crypto);
    const b = new Node(counted, 2);
    const a = new Node(crypto, 1);
    const ab = a.addPeer(b);
    b.addPeer(a);
    a.ep.initiate(ab, T0);
    const [init] = a.sink.take();
    const startDh = dh.count;
    for (let i = 0; i < 1000; i++) {
      const junk = new Uint8Array(INIT_LEN);
      crypto.randomBytes(junk);
      writeHeader(junk, 0, MSG_INITIATION);
      expect(b.recv(junk, addr(i & 0xff), T0)).toBe(Rx.BAD_MAC1);
      const resp = new Uint8Array(RESP_LEN);
      crypto.randomBytes(resp);
      writeHeader(resp, 0, MSG_RESPONSE);
      expect(b.recv(resp, addr(i & 0xff), T0)).toBe(Rx.BAD_MAC1);
    }
    // The genuine initiation with one mac1 bit flipped: still no DH.
    expect(b.recv(flip(init!.data, [INIT_MAC1 * 8]), a.addr, T0)).toBe(Rx.BAD_MAC1);
    expect(dh.count).toBe(startDh);
    expect(b.sink.out).toHaveLength(0);
    // The genuine one costs DH: es, ss to read; e, ee, se to answer.
    expect(b.recv(init!.data, a.addr, T0)).toBe(Rx.INITIATION);
    expect(dh.count - startDh).toBe(5);
  });

  it('under load: a valid-mac1 flood without mac2 gets cookie replies and costs zero DH', () => {
    const { crypto: counted, dh } = countingBackend(crypto);
    const b = new Node(counted, 2, { loadThreshold: 10 });
    const maker = new CookieMaker(crypto, b.keys.publicKey);
    const start = dh.count;
    const outcomes: RxOutcome[] = [];
    for (let i = 0; i < 200; i++) {
      const junk = new Uint8Array(INIT_LEN);
      crypto.randomBytes(junk);
      writeHeader(junk, 0, MSG_INITIATION);
      maker.stamp(junk, INIT_MAC1, T0);
      outcomes.push(b.recv(junk, addr(1 + (i % 200)), T0));
    }
    // The first 10 in this second are processed (they fail Noise: 1 DH each before the MAC fails),
    // then load is detected and every further one only gets a cookie reply.
    expect(outcomes.slice(0, 10).every((o) => o === Rx.HANDSHAKE_FAILED || o === Rx.RATE_LIMITED)).toBe(true);
    expect(outcomes.slice(10).every((o) => o === Rx.COOKIE_SENT)).toBe(true);
    expect(dh.count - start).toBeLessThanOrEqual(10);
    expect(b.sink.take().filter((d) => d.data[0] === MSG_COOKIE_REPLY)).toHaveLength(190);
    expect(b.ep.load.underLoad(T0 + 999)).toBe(true);
    expect(b.ep.load.underLoad(T0 + 1000)).toBe(false);
  });

  it('under load: the cookie reply lets the retry (with mac2) through; without mac2 it is refused', () => {
    const { a, b, ab, ba, net } = pair(crypto);
    b.ep.setUnderLoad(true);
    a.ep.initiate(ab, T0);
    expect(b.recv(a.sink.take()[0]!.data, a.addr, T0)).toBe(Rx.COOKIE_SENT);
    expect(a.recv(b.sink.take()[0]!.data, b.addr, T0)).toBe(Rx.COOKIE);
    expect(ba.current).toBeNull();
    // Another peer without a cookie is refused (and given one).
    const d = new Node(crypto, 4);
    const db = d.addPeer(b);
    b.addPeer(d);
    d.ep.initiate(db, T0);
    const [dInit] = d.sink.take();
    expect(b.recv(dInit!.data, d.addr, T0)).toBe(Rx.COOKIE_SENT);
    b.sink.take();
    // A's retry (sent at once on the cookie reply) carries mac2 made with the cookie and passes.
    const [retry] = a.sink.take();
    expect(retry!.data[0]).toBe(MSG_INITIATION);
    expect(retry!.data.subarray(INIT_MAC2).some((x) => x !== 0)).toBe(true);
    // The same message from another source address: the cookie is bound to the address.
    expect(b.recv(retry!.data, addr(99), T0 + 6000)).toBe(Rx.COOKIE_SENT);
    b.sink.take();
    expect(b.recv(retry!.data, a.addr, T0 + 6000)).toBe(Rx.INITIATION);
    net.run(T0 + 6000);
    expect(ab.hasSession(T0 + 6000) && ba.hasSession(T0 + 6000)).toBe(true);
  });

  it('a cookie is used for COOKIE_SECRET_LIFETIME, then the initiator needs a new one', () => {
    const { a, b, ab, net } = pair(crypto);
    b.ep.setUnderLoad(true);
    a.ep.initiate(ab, T0);
    net.run(T0);
    a.ep.initiate(ab, T0 + 119_000);
    const [young] = a.sink.take();
    expect(young!.data.subarray(INIT_MAC2).some((x) => x !== 0)).toBe(true);
    a.ep.initiate(ab, T0 + 120_000);
    const [old] = a.sink.take();
    expect(old!.data.subarray(INIT_MAC2).every((x) => x === 0)).toBe(true);
    expect(b.recv(old!.data, a.addr, T0 + 120_000)).toBe(Rx.COOKIE_SENT);
  });

  it('per-source rate limit: beyond the burst refused before any DH, other sources unaffected', () => {
    const { crypto: counted, dh } = countingBackend(crypto);
    const b = new Node(counted, 2, { rateLimit: { ratePerSecond: 2, burst: 3 } });
    const a = new Node(crypto, 1);
    const ab = a.addPeer(b);
    b.addPeer(a);
    const inits: Uint8Array[] = [];
    for (let i = 0; i < 5; i++) {
      a.ep.initiate(ab, T0 + i);
      inits.push(a.sink.take()[0]!.data);
    }
    const outcomes = inits.slice(0, 4).map((m) => b.recv(m, a.addr, T0 + 10));
    expect(outcomes).toEqual([Rx.INITIATION, Rx.INITIATION, Rx.INITIATION, Rx.RATE_LIMITED]);
    const dhBefore = dh.count;
    expect(b.recv(inits[4]!, a.addr, T0 + 10)).toBe(Rx.RATE_LIMITED);
    expect(dh.count).toBe(dhBefore);
    // Half a second later one token (2/s) is back.
    a.ep.initiate(ab, T0 + 510);
    expect(b.recv(a.sink.take()[0]!.data, a.addr, T0 + 510)).toBe(Rx.INITIATION);
    // Another source has its own bucket.
    a.ep.initiate(ab, T0 + 511);
    expect(b.recv(a.sink.take()[0]!.data, addr(42), T0 + 511)).toBe(Rx.INITIATION);
  });
});

describe('hostile bytes', () => {
  it('never throw, never accepted, never change state (property)', () => {
    const { a, b, ab } = connected(crypto);
    for (const d of sendRecords(a, ab, [enc('history')], T0)) b.recv(d.data, a.addr, T0);
    const index = ab.current!.remoteIndex;
    const before = snap(b);
    const header = fc.constantFrom(1, 2, 3, 4).map((t) => [t, 1, 0, 0]);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          fc
            .tuple(header, fc.uint8Array({ maxLength: 200 }))
            .map(([h, rest]) => Uint8Array.from([...h, ...rest])),
          fc.tuple(fc.uint8Array({ minLength: 28, maxLength: 200 })).map(([rest]) => {
            const m = Uint8Array.from([4, 1, 0, 0, 0, 0, 0, 0, ...rest]);
            writeU32(m, DATA_RECEIVER, index);
            return m;
          }),
          fc.constantFrom(INIT_LEN, RESP_LEN, COOKIE_REPLY_LEN).chain((len) =>
            fc.uint8Array({ minLength: len - 4, maxLength: len - 4 }).map((rest) => {
              const type = len === INIT_LEN ? 1 : len === RESP_LEN ? 2 : 3;
              return Uint8Array.from([type, 1, 0, 0, ...rest]);
            }),
          ),
        ),
        (msg) => {
          const outcome = b.recv(msg, a.addr, T0);
          expect(ACCEPTED).not.toContain(outcome);
          expect(outcome).not.toBe(Rx.INTERNAL);
        },
      ),
      { numRuns: 1000 },
    );
    expect(snap(b)).toEqual(before);
    // Nonsense arguments from a buggy driver are refused too.
    expect(b.ep.receive(new Uint8Array(10), 20, a.addr, 0, T0)).toBe(Rx.MALFORMED);
    expect(b.ep.receive(new Uint8Array(10), -1, a.addr, 0, T0)).toBe(Rx.MALFORMED);
    expect(b.ep.receive(new Uint8Array(40), 40, new Uint8Array(4), 0, T0)).toBe(Rx.MALFORMED);
  });
});

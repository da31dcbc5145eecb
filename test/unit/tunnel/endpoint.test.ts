/**
 * TunnelEndpoint behaviour with two (or three) endpoints exchanging datagrams in memory under a
 * fake clock: handshake, data both ways, record batching, rekey with in-flight packets on the
 * previous session, reject after 180 s, keepalives, roaming, retries, key zeroing.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  KEEPALIVE_TIMEOUT,
  REJECT_AFTER_MESSAGES,
  REJECT_AFTER_TIME,
  REKEY_AFTER_MESSAGES,
  REKEY_AFTER_TIME,
  REKEY_ATTEMPT_TIME,
  REKEY_TIMEOUT,
  REKEY_TIMEOUT_JITTER_MAX,
} from '../../../src/tunnel/constants.js';
import { Rx, Send } from '../../../src/tunnel/endpoint.js';
import {
  DATA_OVERHEAD,
  INIT_LEN,
  MSG_INITIATION,
  MSG_RESPONSE,
  MSG_TRANSPORT,
  RESP_LEN,
  readTai64n,
  writeHeader,
  writeU32,
  writeU64,
} from '../../../src/tunnel/messages.js';
import { RECORD_AOE, RECORD_CONTROL, RECORD_HEADER_LEN } from '../../../src/tunnel/records.js';
import { backends, sodiumNative as crypto } from './backends.js';
import { addr, bytes, connected, Net, Node, pair, sendRecords, T0 } from './harness.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

describe.each(backends.map((b) => [b.name, b] as const))('handshake and data on %s', (_n, backend) => {
  it('A initiates, B responds, both directions carry records', () => {
    const { a, b, ab, ba, net } = pair(backend);
    expect(a.ep.initiate(ab, T0)).toBe(Send.OK);
    const [init] = a.sink.out;
    expect(init!.data.length).toBe(INIT_LEN);
    expect(init!.data[0]).toBe(MSG_INITIATION);
    const outcomes = net.run(T0);
    // Initiation accepted, response accepted, A's confirming keepalive accepted.
    expect(outcomes).toEqual([Rx.INITIATION, Rx.RESPONSE, Rx.KEEPALIVE]);
    expect(a.completed).toEqual([{ peer: ab, initiator: true }]);
    expect(b.completed).toEqual([{ peer: ba, initiator: false }]);
    expect(ab.hasSession(T0) && ba.hasSession(T0)).toBe(true);

    expect(a.ep.queueRecord(ab, RECORD_AOE, enc('to B'), 0, 4, T0)).toBe(Send.OK);
    expect(b.ep.queueRecord(ba, RECORD_CONTROL, enc('to A'), 0, 4, T0)).toBe(Send.OK);
    a.ep.flush(T0);
    b.ep.flush(T0);
    expect(net.run(T0)).toEqual([Rx.DATA, Rx.DATA]);
    const atB = b.takeRecords();
    const atA = a.takeRecords();
    expect(atB.map((r) => [r.peer, r.type, dec(r.data)])).toEqual([[ba, RECORD_AOE, 'to B']]);
    expect(atA.map((r) => [r.peer, r.type, dec(r.data)])).toEqual([[ab, RECORD_CONTROL, 'to A']]);
  });
});

describe('handshake', () => {
  it('the response goes to the initiation source and has the documented size', () => {
    const { a, b, ab } = pair(crypto);
    a.ep.initiate(ab, T0);
    const [init] = a.sink.take();
    const from = addr(77, 4000);
    expect(b.recv(init!.data, from, T0)).toBe(Rx.INITIATION);
    const [resp] = b.sink.take();
    expect(resp!.data.length).toBe(RESP_LEN);
    expect(resp!.data[0]).toBe(MSG_RESPONSE);
    expect(resp!.to).toEqual(from);
  });

  it('the responder cannot send before the initiator confirms; then the session is current', () => {
    const { a, b, ab, ba } = pair(crypto);
    a.ep.initiate(ab, T0);
    b.recv(a.sink.take()[0]!.data, a.addr, T0);
    const resp = b.sink.take()[0]!;
    expect(ba.hasSession(T0)).toBe(false);
    // Without a current session the responder starts its own handshake rather than send.
    expect(b.ep.queueRecord(ba, 1, enc('x'), 0, 1, T0)).toBe(Send.NO_SESSION);
    b.sink.take();
    expect(a.recv(resp.data, b.addr, T0)).toBe(Rx.RESPONSE);
    const keepalive = a.sink.take()[0]!;
    expect(keepalive.data.length).toBe(DATA_OVERHEAD);
    expect(b.recv(keepalive.data, a.addr, T0)).toBe(Rx.KEEPALIVE);
    expect(ba.hasSession(T0)).toBe(true);
    expect(b.completed).toHaveLength(1);
  });

  it('initiation timestamps are TAI64N from the injected clock and strictly increasing', () => {
    const { a, b, ab } = pair(crypto);
    const stamps: bigint[] = [];
    // Capture the timestamp through the responder's Noise read, by handshaking repeatedly.
    for (let i = 0; i < 3; i++) {
      a.ep.initiate(ab, T0); // same clock value every time
      const init = a.sink.take()[0]!;
      expect(b.recv(init.data, a.addr, T0)).toBe(Rx.INITIATION);
      b.sink.take();
      const st = b.ep.inspect(b.ep.peer(a.keys.publicKey)!).lastTimestamp;
      stamps.push(readTai64n(Buffer.from(st, 'hex'), 0)!);
    }
    expect(stamps[0]).toBe(1_750_000_000_000n * 1_000_000n);
    expect(stamps[1]! > stamps[0]! && stamps[2]! > stamps[1]!).toBe(true);
  });

  it('simultaneous initiations from both sides still leave both able to talk', () => {
    const { a, b, ab, ba, net } = pair(crypto);
    a.ep.initiate(ab, T0);
    b.ep.initiate(ba, T0);
    net.run(T0);
    expect(ab.hasSession(T0) && ba.hasSession(T0)).toBe(true);
    for (const d of sendRecords(a, ab, [enc('1')], T0)) expect(b.recv(d.data, a.addr, T0)).toBe(Rx.DATA);
    for (const d of sendRecords(b, ba, [enc('2')], T0)) expect(a.recv(d.data, b.addr, T0)).toBe(Rx.DATA);
    net.run(T0);
    expect(a.takeRecords().map((r) => dec(r.data))).toEqual(['2']);
    expect(b.takeRecords().map((r) => dec(r.data))).toEqual(['1']);
  });

  it('a PSK on both sides works; a PSK mismatch never completes', () => {
    const psk = bytes(32, 9);
    const ok = connected(crypto, T0, {}, { psk });
    expect(ok.ab.hasSession(T0)).toBe(true);
    const a = new Node(crypto, 1);
    const b = new Node(crypto, 2);
    const ab = a.addPeer(b, { psk });
    b.addPeer(a, { psk: bytes(32, 8) });
    a.ep.initiate(ab, T0);
    const net = new Net(a, b);
    expect(net.run(T0)).toEqual([Rx.INITIATION, Rx.HANDSHAKE_FAILED]);
    expect(ab.hasSession(T0)).toBe(false);
    // The pending handshake survives the bad response: it is retried later, not destroyed.
    expect(a.ep.inspect(ab).pending).not.toBeNull();
  });

  it('retries with a new index after REKEY_TIMEOUT + jitter, gives up after REKEY_ATTEMPT_TIME', () => {
    const { a, ab } = pair(crypto);
    a.ep.initiate(ab, T0);
    a.sink.take();
    const first = a.ep.inspect(ab).pending!.localIndex;
    a.ep.tick(T0 + REKEY_TIMEOUT - 1);
    expect(a.sink.take()).toHaveLength(0);
    a.ep.tick(T0 + REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX);
    expect(a.sink.take().map((d) => d.data[0])).toEqual([MSG_INITIATION]);
    expect(a.ep.inspect(ab).pending!.localIndex).not.toBe(first);
    let sent = 1;
    for (let t = T0 + 6000; t <= T0 + REKEY_ATTEMPT_TIME + 10_000; t += 100) {
      a.ep.tick(t);
      sent += a.sink.take().length;
    }
    // Retries every 5..5.333 s for 90 s, then silence and one failure event.
    expect(sent).toBeGreaterThanOrEqual(17);
    expect(sent).toBeLessThanOrEqual(19);
    expect(a.failed).toEqual([ab]);
    expect(a.ep.inspect(ab).pending).toBeNull();
    expect(a.ep.indexCount).toBe(0);
  });

  it('an unknown initiator is dropped unanswered', () => {
    const a = new Node(crypto, 1);
    const b = new Node(crypto, 2);
    const ab = a.addPeer(b);
    a.ep.initiate(ab, T0);
    expect(new Net(a, b).run(T0)).toEqual([Rx.UNKNOWN_PEER]);
    expect(b.sink.out).toHaveLength(0);
  });
});

describe('records and MTU', () => {
  it('packs several AoE frames per datagram, every datagram ≤ MTU, order kept (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 100, max: 1500 }),
        fc.array(fc.integer({ min: 0, max: 1500 }), { minLength: 1, maxLength: 40 }),
        (mtu, sizes) => {
          const { a, b, ab } = connected(crypto, T0, { mtu });
          const maxRecord = a.ep.maxRecord;
          expect(maxRecord).toBe(mtu - DATA_OVERHEAD - RECORD_HEADER_LEN);
          const frames = sizes.map((n, i) => bytes(Math.min(n, maxRecord), i & 0xff));
          const results = frames.map((f) => a.ep.queueRecord(ab, RECORD_AOE, f, 0, f.length, T0));
          expect(results.every((r) => r === Send.OK)).toBe(true);
          a.ep.flush(T0);
          const dgrams = a.sink.take();
          let total = 0;
          for (const d of dgrams) {
            expect(d.data.length).toBeLessThanOrEqual(mtu);
            expect(d.data[0]).toBe(MSG_TRANSPORT);
            expect(b.recv(d.data, a.addr, T0)).toBe(Rx.DATA);
            total += d.data.length;
          }
          const got = b.takeRecords();
          expect(got.map((r) => r.data)).toEqual(frames);
          // Greedy packing: no two consecutive datagrams could have been merged.
          const payload = frames.reduce((s, f) => s + f.length + RECORD_HEADER_LEN, 0);
          expect(dgrams.length).toBeLessThanOrEqual(Math.ceil(payload / (mtu - DATA_OVERHEAD)) * 2);
          expect(total).toBeGreaterThanOrEqual(payload);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('small frames share a datagram; plaintext padded to a multiple of 16', () => {
    const { a, b, ab } = connected(crypto, T0, { mtu: 1452 });
    const d = sendRecords(a, ab, [bytes(100, 1), bytes(200, 2), bytes(300, 3)], T0);
    expect(d).toHaveLength(1);
    const plain = 3 * RECORD_HEADER_LEN + 600;
    expect(d[0]!.data.length).toBe(DATA_OVERHEAD + Math.ceil(plain / 16) * 16);
    b.recv(d[0]!.data, a.addr, T0);
    expect(b.takeRecords().map((r) => r.data.length)).toEqual([100, 200, 300]);
  });

  it('refuses a record larger than one datagram can carry', () => {
    const { a, ab } = connected(crypto, T0, { mtu: 600 });
    const big = bytes(600, 1);
    expect(a.ep.queueRecord(ab, RECORD_AOE, big, 0, a.ep.maxRecord + 1, T0)).toBe(Send.TOO_LARGE);
    expect(a.ep.queueRecord(ab, RECORD_AOE, big, 0, a.ep.maxRecord, T0)).toBe(Send.OK);
    expect(a.ep.queueRecord(ab, 0, big, 0, 1, T0)).toBe(Send.TOO_LARGE); // type 0 is padding
  });

  it('a handler that throws is counted and does not break the receive loop', () => {
    const { a, b, ab } = connected(crypto);
    b.ep.setEvents({
      record: () => {
        throw new Error('app bug');
      },
    });
    const [d] = sendRecords(a, ab, [enc('x'), enc('y')], T0);
    expect(b.recv(d!.data, a.addr, T0)).toBe(Rx.DATA);
    expect(b.ep.stats.handlerErrors).toBe(2);
  });
});

describe('rekey and expiry', () => {
  it('rekeys after REKEY_AFTER_TIME on send; in-flight packets of the previous session still accepted', () => {
    const { a, b, ab, ba, net } = connected(crypto);
    const old = a.ep.inspect(ab).current!.localIndex;
    // Packets sealed with the old session but delivered only after the rekey.
    const t1 = T0 + REKEY_AFTER_TIME - 1;
    const early = sendRecords(a, ab, [enc('early')], t1);
    expect(a.sink.out).toHaveLength(0); // not yet time to rekey
    const t2 = T0 + REKEY_AFTER_TIME;
    const inflight = sendRecords(a, ab, [enc('in flight')], t2);
    // That send crossed REKEY_AFTER_TIME: an initiation went out too.
    expect(inflight.map((d) => d.data[0])).toEqual([MSG_TRANSPORT, MSG_INITIATION]);
    const [data, init] = inflight;
    expect(b.recv(init!.data, a.addr, t2)).toBe(Rx.INITIATION);
    net.run(t2);
    const cur = a.ep.inspect(ab).current!;
    expect(cur.localIndex).not.toBe(old);
    expect(a.ep.inspect(ab).previous!.localIndex).toBe(old);
    expect(b.ep.inspect(ba).previous).not.toBeNull();
    // Late arrivals sealed with the old keys are still accepted, once.
    expect(b.recv(early[0]!.data, a.addr, t2)).toBe(Rx.DATA);
    expect(b.recv(data!.data, a.addr, t2)).toBe(Rx.DATA);
    expect(b.recv(data!.data, a.addr, t2)).toBe(Rx.REPLAY);
    expect(b.takeRecords().map((r) => dec(r.data))).toEqual(['early', 'in flight']);
    // New traffic uses the new session both ways.
    const fresh = sendRecords(a, ab, [enc('new')], t2);
    expect(b.recv(fresh[0]!.data, a.addr, t2)).toBe(Rx.DATA);
    expect(a.ep.stats.handshakesCompleted).toBe(2);
  });

  it('only the initiator of the session rekeys on time', () => {
    const { b, ba } = connected(crypto);
    const t = T0 + REKEY_AFTER_TIME + 1;
    const out = sendRecords(b, ba, [enc('x')], t);
    expect(out.map((d) => d.data[0])).toEqual([MSG_TRANSPORT]);
  });

  it('the initiator rekeys when receiving on a session close to REJECT_AFTER_TIME', () => {
    const { a, b, ba } = connected(crypto);
    const t = T0 + REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT;
    const [d] = sendRecords(b, ba, [enc('x')], t);
    expect(a.recv(d!.data, b.addr, t)).toBe(Rx.DATA);
    expect(a.sink.take().map((x) => x.data[0])).toEqual([MSG_INITIATION]);
  });

  it('rejects after REJECT_AFTER_TIME: no sending, receiving refused, keys zeroed on tick', () => {
    const { a, b, ab, ba } = connected(crypto);
    const t = T0 + REJECT_AFTER_TIME;
    // Sealed just in time (that send also started a rekey, whose initiation is lost here).
    const [late, init] = sendRecords(a, ab, [enc('late')], t - 1);
    expect(init!.data[0]).toBe(MSG_INITIATION);
    expect(b.recv(late!.data, a.addr, t)).toBe(Rx.EXPIRED);
    expect(b.takeRecords()).toHaveLength(0);
    // A cannot send on it either: the record is refused while the handshake is under way.
    expect(a.ep.queueRecord(ab, 1, enc('x'), 0, 1, t)).toBe(Send.NO_SESSION);
    expect(a.sink.take()).toHaveLength(0);
    expect(a.ep.inspect(ab).pending).not.toBeNull();
    const session = ba.current!;
    b.ep.tick(t);
    expect(ba.current).toBeNull();
    expect(session.destroyed).toBe(true);
    expect(session.sendKey.every((x) => x === 0) && session.recvKey.every((x) => x === 0)).toBe(true);
  });
});

describe('message limits', () => {
  it('REKEY_AFTER_MESSAGES starts a handshake (either side); REJECT_AFTER_MESSAGES stops sending', () => {
    const { a, b, ab, ba } = connected(crypto);
    ba.current!.sendCounter = REKEY_AFTER_MESSAGES - 1n;
    const out = sendRecords(b, ba, [enc('x')], T0);
    expect(out.map((d) => d.data[0])).toEqual([MSG_TRANSPORT, MSG_INITIATION]);
    expect(a.recv(out[0]!.data, b.addr, T0)).toBe(Rx.DATA);
    ab.current!.sendCounter = REJECT_AFTER_MESSAGES;
    expect(ab.hasSession(T0)).toBe(false);
    expect(a.ep.queueRecord(ab, 1, enc('x'), 0, 1, T0)).toBe(Send.NO_SESSION);
  });

  it('a counter at or past REJECT_AFTER_MESSAGES is refused even when authentic', () => {
    const { a, b, ab } = connected(crypto);
    ab.current!.sendCounter = REJECT_AFTER_MESSAGES - 1n;
    // Counter REJECT_AFTER_MESSAGES - 1 is the last one a sender may use and is accepted.
    const [ok] = sendRecords(a, ab, [enc('last')], T0);
    expect(b.recv(ok!.data, a.addr, T0)).toBe(Rx.DATA);
    // Seal one with the next counter by hand: refused before decryption.
    const s = ab.current!;
    const out = new Uint8Array(DATA_OVERHEAD);
    writeHeader(out, 0, MSG_TRANSPORT);
    writeU32(out, 4, s.remoteIndex);
    writeU64(out, 8, REJECT_AFTER_MESSAGES);
    crypto.seal(out, 16, s.sendKey, REJECT_AFTER_MESSAGES, null, out, 16, 0);
    expect(b.recv(out, a.addr, T0)).toBe(Rx.REPLAY);
  });
});

describe('backends interoperate', () => {
  // sodium-native with libsodium-wrappers, openssl-native with sodium-native.
  const pairs = [
    [backends[0]!, backends[1]!],
    [backends[2]!, backends[0]!],
  ].map(([x, y]) => [x!.name, y!.name, x!, y!] as const);
  it.each(pairs)('%s and %s endpoints handshake and exchange data', (_x, _y, ca, cb) => {
    const a = new Node(ca, 1);
    const b = new Node(cb, 2);
    const ab = a.addPeer(b, { psk: bytes(32, 1) });
    b.addPeer(a, { psk: bytes(32, 1) });
    a.ep.initiate(ab, T0);
    const net = new Net(a, b);
    net.run(T0);
    const [d] = sendRecords(a, ab, [enc('cross')], T0);
    expect(b.recv(d!.data, a.addr, T0)).toBe(Rx.DATA);
    expect(b.takeRecords().map((r) => dec(r.data))).toEqual(['cross']);
  });
});

describe('keepalive', () => {
  it('sent when data arrived and nothing was sent back for KEEPALIVE_TIMEOUT', () => {
    const { a, b, ab, ba } = connected(crypto);
    const [d] = sendRecords(a, ab, [enc('ping')], T0);
    b.recv(d!.data, a.addr, T0);
    b.ep.tick(T0 + KEEPALIVE_TIMEOUT - 1);
    expect(b.sink.out).toHaveLength(0);
    b.ep.tick(T0 + KEEPALIVE_TIMEOUT);
    const [ka] = b.sink.take();
    expect(ka!.data.length).toBe(DATA_OVERHEAD);
    expect(a.recv(ka!.data, b.addr, T0 + KEEPALIVE_TIMEOUT)).toBe(Rx.KEEPALIVE);
    // A keepalive does not ask for a keepalive back.
    a.ep.tick(T0 + 3 * KEEPALIVE_TIMEOUT);
    expect(a.sink.out).toHaveLength(0);
    // Nor is one due at B again until more data arrives.
    b.ep.tick(T0 + 3 * KEEPALIVE_TIMEOUT);
    expect(b.sink.out).toHaveLength(0);
    expect(ba.hasSession(T0)).toBe(true);
  });

  it('not sent when the application answered in time', () => {
    const { a, b, ab, ba } = connected(crypto);
    const [d] = sendRecords(a, ab, [enc('ping')], T0);
    b.recv(d!.data, a.addr, T0);
    sendRecords(b, ba, [enc('pong')], T0 + 1000);
    b.ep.tick(T0 + KEEPALIVE_TIMEOUT + 1);
    expect(b.sink.out).toHaveLength(0);
  });

  it('persistent keepalive every interval', () => {
    const { a } = connected(crypto, T0, {}, { persistentKeepaliveMs: 25_000 });
    const ab = [...a.ep.peers()][0]!;
    a.ep.tick(T0 + 24_999);
    expect(a.sink.out).toHaveLength(0);
    a.ep.tick(T0 + 25_000);
    expect(a.sink.take().map((d) => d.data.length)).toEqual([DATA_OVERHEAD]);
    expect(ab.lastSentAt).toBe(T0 + 25_000);
  });

  it('data sent and nothing heard for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT starts a handshake', () => {
    const { a, ab } = connected(crypto);
    sendRecords(a, ab, [enc('anyone there?')], T0 + 1000);
    a.ep.tick(T0 + 1000 + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT - 1);
    expect(a.sink.out).toHaveLength(0);
    a.ep.tick(T0 + 1000 + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT);
    expect(a.sink.take().map((d) => d.data[0])).toEqual([MSG_INITIATION]);
  });
});

describe('roaming', () => {
  it('the peer endpoint follows the source of the last authenticated packet only', () => {
    const changed: string[] = [];
    const { a, b, ab, ba } = connected(crypto);
    b.ep.setEvents({
      record: () => {},
      endpointChanged: (p) => changed.push(Buffer.from(p.endpoint).toString('hex')),
    });
    const moved = addr(99, 40000);
    const [d1] = sendRecords(a, ab, [enc('from new place')], T0);
    // A forged copy from yet another address does not move the endpoint.
    const forged = Uint8Array.from(d1!.data);
    forged[forged.length - 1]! ^= 1;
    expect(b.recv(forged, addr(66), T0)).toBe(Rx.BAD_AUTH);
    expect(ba.endpoint).toEqual(a.addr);
    expect(b.recv(d1!.data, moved, T0)).toBe(Rx.DATA);
    expect(ba.endpoint).toEqual(moved);
    expect(changed).toHaveLength(1);
    // B's replies now go to the new address.
    const [reply] = sendRecords(b, ba, [enc('there')], T0);
    expect(reply!.to).toEqual(moved);
    // A replay from the old address is refused and does not move it back.
    expect(b.recv(d1!.data, a.addr, T0)).toBe(Rx.REPLAY);
    expect(ba.endpoint).toEqual(moved);
  });

  it('a replayed initiation accepted after the responder forgot the timestamp does not redirect the peer', () => {
    const a = new Node(crypto, 1);
    const b = new Node(crypto, 2);
    const ab = a.addPeer(b);
    const ba = b.addPeer(a);
    a.ep.initiate(ab, T0);
    const [init] = a.sink.take();
    expect(b.recv(init!.data, a.addr, T0)).toBe(Rx.INITIATION);
    new Net(a, b).run(T0);
    expect(ba.hasSession(T0)).toBe(true);
    // The responder restarts its view of the peer (timestamps are not persisted) ...
    b.ep.removePeer(ba);
    const ba2 = b.addPeer(a);
    // ... and an attacker replays the recorded initiation from its own address.
    const attacker = addr(66, 6666);
    expect(b.recv(init!.data, attacker, T0 + 1000)).toBe(Rx.INITIATION);
    const [response] = b.sink.take();
    expect(response!.to).toEqual(attacker); // answered where it came from ...
    expect(ba2.endpoint).toEqual(a.addr); // ... but the peer's endpoint did not move
  });

  it('isAuthenticHandshake accepts real handshake messages only, not junk of the same shape', () => {
    const a = new Node(crypto, 1);
    const b = new Node(crypto, 2);
    const ab = a.addPeer(b);
    b.addPeer(a);
    a.ep.initiate(ab, T0);
    const [init] = a.sink.take();
    expect(b.ep.isAuthenticHandshake(init!.data, init!.data.length)).toBe(true);
    const junk = Uint8Array.from(init!.data);
    junk[40]! ^= 0xff; // anything covered by mac1
    expect(b.ep.isAuthenticHandshake(junk, junk.length)).toBe(false);
    expect(b.ep.isAuthenticHandshake(init!.data, init!.data.length - 1)).toBe(false);
    // mac1 is keyed with the receiver's public key: A's own message is not authentic for A.
    expect(a.ep.isAuthenticHandshake(init!.data, init!.data.length)).toBe(false);
    expect(b.recv(init!.data, a.addr, T0)).toBe(Rx.INITIATION); // and checking changed nothing
  });

  it('a peer without a configured endpoint learns it from its initiation', () => {
    const a = new Node(crypto, 1);
    const b = new Node(crypto, 2);
    const ab = a.addPeer(b);
    const ba = b.ep.addPeer({ publicKey: a.keys.publicKey });
    expect(b.ep.initiate(ba, T0)).toBe(Send.NO_ENDPOINT);
    a.ep.initiate(ab, T0);
    new Net(a, b).run(T0);
    expect(ba.endpoint).toEqual(a.addr);
    expect(ba.hasSession(T0)).toBe(true);
  });
});

describe('peers and keys', () => {
  it('removePeer zeroes sessions and the PSK and frees the indexes', () => {
    const { a, ab } = connected(crypto, T0, {}, { psk: bytes(32, 5) });
    const s = ab.current!;
    expect(a.ep.indexCount).toBe(1);
    a.ep.removePeer(ab);
    expect(s.sendKey.every((x) => x === 0)).toBe(true);
    expect(ab.psk.every((x) => x === 0)).toBe(true);
    expect(a.ep.indexCount).toBe(0);
    expect(a.ep.peer(ab.publicKey)).toBeUndefined();
  });

  it('refuses duplicate peers, our own key and wrong key sizes', () => {
    const a = new Node(crypto, 1);
    const b = new Node(crypto, 2);
    a.addPeer(b);
    expect(() => a.addPeer(b)).toThrow(expect.objectContaining({ code: 'ERR_TUNNEL_PEER' }));
    expect(() => a.ep.addPeer({ publicKey: a.keys.publicKey })).toThrow(
      expect.objectContaining({ code: 'ERR_TUNNEL_PEER' }),
    );
    expect(() => a.ep.addPeer({ publicKey: bytes(31, 1) })).toThrow(
      expect.objectContaining({ code: 'ERR_TUNNEL_PEER' }),
    );
    expect(() => a.ep.addPeer({ publicKey: bytes(32, 1), psk: bytes(16, 1) })).toThrow(
      expect.objectContaining({ code: 'ERR_TUNNEL_PEER' }),
    );
  });

  it('previous sessions are dropped (zeroed) after two rekeys: at most three sessions per peer', () => {
    const { a, ab, net } = connected(crypto);
    const first = ab.current!;
    for (let i = 1; i <= 2; i++) {
      a.ep.initiate(ab, T0 + i);
      net.run(T0 + i);
    }
    expect(first.destroyed).toBe(true);
    expect(a.ep.indexCount).toBeLessThanOrEqual(3);
  });
});

describe('a responder session that is confirmed', () => {
  it('ends our own handshake still retrying (no second handshake once the peer came up)', () => {
    const { a, b, ab, ba, net } = pair(crypto);
    // B initiates while A is not there yet: its initiation is lost and B retries every 5 s.
    b.ep.initiate(ba, T0);
    b.sink.take();
    expect(b.ep.inspect(ba).pending).not.toBeNull();
    // A comes up and initiates; the session is confirmed at B by A's keepalive.
    a.ep.initiate(ab, T0 + 1000);
    expect(net.run(T0 + 1000)).toEqual([Rx.INITIATION, Rx.RESPONSE, Rx.KEEPALIVE]);
    expect(b.ep.inspect(ba).pending).toBeNull();
    // B's retry time passes: nothing is sent, and there is still one session each.
    b.ep.tick(T0 + REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX + 1);
    expect(b.sink.out).toHaveLength(0);
    expect(a.completed).toHaveLength(1);
    expect(b.completed).toHaveLength(1);
  });
});

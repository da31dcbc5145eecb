/**
 * Enrollment handshakes (docs/protocol.md, "Enrollment"): an initiator holding an invite (id and
 * PSK) sends MSG_ENROLL; the responder admits it as a provisional peer only for a live invite,
 * and pins it only once its first transport message proves the PSK. Everything else — unknown,
 * reused or replayed invites, wrong PSKs, peers trying to enroll again, a provisional peer's plain
 * initiation — changes nothing and is counted.
 */
import { describe, expect, it } from 'vitest';
import { ENROLL_PROOF_TIMEOUT, type EnrollmentAdmission, Rx, Send } from '../../../src/tunnel/endpoint.js';
import { ENROLL_LEN, INIT_LEN, MSG_ENROLL, MSG_INITIATION } from '../../../src/tunnel/messages.js';
import type { Peer } from '../../../src/tunnel/peer.js';
import { RECORD_CONTROL } from '../../../src/tunnel/records.js';
import { sodiumNative as crypto } from './backends.js';
import { addr, bytes, Net, Node, sameBytes, T0 } from './harness.js';

const INVITE = bytes(16, 0x11);
const PSK = bytes(32, 0x22);

/** An inviter (B) that knows one invite, and records admissions and enrollments. */
function inviter(opts: { accept?: boolean; invites?: Map<string, Uint8Array> } = {}) {
  const invites = opts.invites ?? new Map([[Buffer.from(INVITE).toString('hex'), PSK]]);
  const admitted: string[] = [];
  const enrolled: { peer: Peer; inviteId: Uint8Array }[] = [];
  const b = new Node(
    crypto,
    2,
    {},
    {
      admitEnrollment: (id, pk): EnrollmentAdmission | null => {
        admitted.push(Buffer.from(pk).toString('hex'));
        const psk = invites.get(Buffer.from(id).toString('hex'));
        return psk ? { psk, name: 'newcomer' } : null;
      },
      enrolled: (peer, inviteId) => {
        enrolled.push({ peer, inviteId: Uint8Array.from(inviteId) });
        return opts.accept ?? true;
      },
    },
  );
  return { b, admitted, enrolled };
}

function enrollee(b: Node, n = 1, inviteId = INVITE, psk = PSK): { a: Node; ab: Peer } {
  const a = new Node(crypto, n);
  const ab = a.addPeer(b, { psk, inviteId });
  return { a, ab };
}

describe('enrollment handshake', () => {
  it('a live invite whose PSK the initiator proves makes it a peer; later handshakes need no PSK', () => {
    const { b, admitted, enrolled } = inviter();
    const { a, ab } = enrollee(b);
    expect(a.ep.initiate(ab, T0)).toBe(Send.OK);
    const [init] = a.sink.out;
    expect(init!.data.length).toBe(ENROLL_LEN);
    expect(init!.data[0]).toBe(MSG_ENROLL);
    const net = new Net(a, b);
    expect(net.run(T0)).toEqual([Rx.INITIATION, Rx.RESPONSE, Rx.KEEPALIVE]);
    expect(admitted).toHaveLength(1);
    expect(enrolled).toHaveLength(1);
    expect(sameBytes(enrolled[0]!.inviteId, INVITE)).toBe(true);
    const ba = b.ep.peer(a.keys.publicKey)!;
    expect(ba.name).toBe('newcomer');
    expect(ba.provisional).toBeNull();
    expect(b.completed).toEqual([{ peer: ba, initiator: false }]);
    // Records flow both ways on the enrolled session.
    a.ep.queueRecord(ab, RECORD_CONTROL, bytes(5, 1), 0, 5, T0);
    b.ep.queueRecord(ba, RECORD_CONTROL, bytes(5, 2), 0, 5, T0);
    a.ep.flush(T0);
    b.ep.flush(T0);
    expect(net.run(T0)).toEqual([Rx.DATA, Rx.DATA]);
    // The invite PSK is gone on B: A's daemon, knowing B as a plain peer, handshakes without it.
    a.ep.removePeer(ab);
    const ab2 = a.addPeer(b);
    a.ep.initiate(ab2, T0 + 1000);
    expect(a.sink.out[0]!.data[0]).toBe(MSG_INITIATION);
    expect(a.sink.out[0]!.data.length).toBe(INIT_LEN);
    expect(net.run(T0 + 1000)).toEqual([Rx.INITIATION, Rx.RESPONSE, Rx.KEEPALIVE]);
    expect(admitted).toHaveLength(1);
  });

  it('an unknown invite id gets no answer and adds no peer', () => {
    const { b, enrolled } = inviter();
    const { a, ab } = enrollee(b, 1, bytes(16, 0x99));
    a.ep.initiate(ab, T0);
    expect(new Net(a, b).run(T0)).toEqual([Rx.UNKNOWN_INVITE]);
    expect(b.sink.out).toHaveLength(0);
    expect([...b.ep.peers()]).toHaveLength(0);
    expect(enrolled).toHaveLength(0);
  });

  it('a wrong PSK: the response cannot be read, nothing is pinned, the provisional peer expires', () => {
    const { b, enrolled } = inviter();
    const { a, ab } = enrollee(b, 1, INVITE, bytes(32, 0x33));
    a.ep.initiate(ab, T0);
    expect(new Net(a, b).run(T0)).toEqual([Rx.INITIATION, Rx.HANDSHAKE_FAILED]);
    expect(enrolled).toHaveLength(0);
    const ba = b.ep.peer(a.keys.publicKey)!;
    expect(ba.provisional).not.toBeNull();
    expect(ba.hasSession(T0)).toBe(false);
    b.ep.tick(T0 + ENROLL_PROOF_TIMEOUT - 1);
    expect(b.ep.peer(a.keys.publicKey)).toBeDefined();
    b.ep.tick(T0 + ENROLL_PROOF_TIMEOUT);
    expect(b.ep.peer(a.keys.publicKey)).toBeUndefined();
    expect(b.ep.indexCount).toBe(0);
  });

  it('an already-enrolled key, or a replay of the enrollment, is refused', () => {
    const { b, enrolled } = inviter();
    const { a, ab } = enrollee(b);
    a.ep.initiate(ab, T0);
    const [init] = a.sink.out.map((d) => d.data);
    new Net(a, b).run(T0);
    expect(enrolled).toHaveLength(1);
    // The captured enrollment, replayed: the key is a peer now.
    expect(b.recv(init!, a.addr, T0 + 10)).toBe(Rx.UNKNOWN_INVITE);
    expect(b.sink.out).toHaveLength(0);
    // The peer itself trying the invite again.
    a.ep.initiate(ab, T0 + 20);
    expect(new Net(a, b).run(T0 + 20)).toEqual([Rx.UNKNOWN_INVITE]);
    expect(enrolled).toHaveLength(1);
  });

  it('a replay while the initiator is provisional is stale; its proof still completes', () => {
    const { b, enrolled } = inviter();
    const { a, ab } = enrollee(b);
    a.ep.initiate(ab, T0);
    const [init] = a.sink.take();
    expect(b.recv(init!.data, a.addr, T0)).toBe(Rx.INITIATION);
    expect(b.recv(init!.data, a.addr, T0 + 1)).toBe(Rx.STALE_TIMESTAMP);
    const [resp] = b.sink.take();
    expect(a.recv(resp!.data, b.addr, T0 + 2)).toBe(Rx.RESPONSE);
    expect(new Net(a, b).run(T0 + 2)).toEqual([Rx.KEEPALIVE]);
    expect(enrolled).toHaveLength(1);
  });

  it('a provisional peer cannot use a plain initiation (it would skip the proof)', () => {
    const { b } = inviter();
    const { a, ab } = enrollee(b);
    a.ep.initiate(ab, T0);
    expect(b.recv(a.sink.take()[0]!.data, a.addr, T0)).toBe(Rx.INITIATION);
    b.sink.take();
    a.ep.removePeer(ab);
    const plain = a.addPeer(b, { psk: PSK });
    a.ep.initiate(plain, T0 + 1);
    expect(new Net(a, b).run(T0 + 1)).toEqual([Rx.UNKNOWN_PEER]);
  });

  it('the application refusing the proof removes the peer and delivers nothing', () => {
    const { b, enrolled } = inviter({ accept: false });
    const { a, ab } = enrollee(b);
    a.ep.initiate(ab, T0);
    a.ep.queueRecord(ab, RECORD_CONTROL, bytes(4, 7), 0, 4, T0);
    const net = new Net(a, b);
    const outcomes = net.run(T0);
    expect(outcomes.slice(0, 3)).toEqual([Rx.INITIATION, Rx.RESPONSE, Rx.UNKNOWN_INVITE]);
    expect(enrolled).toHaveLength(1);
    expect(b.ep.peer(a.keys.publicKey)).toBeUndefined();
    expect(b.records).toHaveLength(0);
    expect(b.completed).toHaveLength(0);
  });

  it('up to 4 keys may prove one invite at once, none displaces another, and the first proof wins', () => {
    const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
    const live = new Map([[hex(INVITE), PSK]]);
    const enrolled: Peer[] = [];
    const b = new Node(
      crypto,
      2,
      {},
      {
        admitEnrollment: (id) => {
          const psk = live.get(hex(id));
          return psk ? { psk } : null;
        },
        // As the daemon does: the invite is burned by the first proof; later ones are refused.
        enrolled: (peer, id) => {
          const ok = live.delete(hex(id));
          if (ok) enrolled.push(peer);
          return ok;
        },
      },
    );
    const tries = [1, 3, 4, 5, 6].map((n) => enrollee(b, n));
    const responses = tries.map((t, i) => {
      t.a.ep.initiate(t.ab, T0 + i);
      const outcome = b.recv(t.a.sink.take()[0]!.data, t.a.addr, T0 + i);
      return { outcome, resp: b.sink.take()[0] };
    });
    expect(responses.map((r) => r.outcome)).toEqual([
      Rx.INITIATION,
      Rx.INITIATION,
      Rx.INITIATION,
      Rx.INITIATION,
      Rx.UNKNOWN_INVITE,
    ]);
    // The fifth was refused, not the first evicted: the first four are all still proving.
    expect(b.ep.peer(tries[0]!.a.keys.publicKey)?.provisional).not.toBeNull();
    // The second key proves first: it is the peer.
    const second = tries[1]!;
    expect(second.a.recv(responses[1]!.resp!.data, b.addr, T0 + 10)).toBe(Rx.RESPONSE);
    expect(new Net(second.a, b).run(T0 + 10)).toEqual([Rx.KEEPALIVE]);
    expect(enrolled.map((p) => hex(p.publicKey))).toEqual([hex(second.a.keys.publicKey)]);
    // The first key's proof comes later: the invite is burned, so it is refused and removed.
    const first = tries[0]!;
    expect(first.a.recv(responses[0]!.resp!.data, b.addr, T0 + 11)).toBe(Rx.RESPONSE);
    expect(new Net(first.a, b).run(T0 + 11)).toEqual([Rx.UNKNOWN_INVITE]);
    expect(b.ep.peer(first.a.keys.publicKey)).toBeUndefined();
    expect(b.ep.peer(second.a.keys.publicKey)?.provisional).toBeNull();
  });

  it('a replayed enrollment cannot evict the genuine enrollee', () => {
    const { b, enrolled } = inviter();
    const old = enrollee(b, 1);
    old.a.ep.initiate(old.ab, T0);
    const captured = old.a.sink.take()[0]!.data;
    expect(b.recv(captured, old.a.addr, T0)).toBe(Rx.INITIATION);
    b.sink.take();
    // That attempt never completes; its provisional entry expires.
    b.ep.tick(T0 + ENROLL_PROOF_TIMEOUT);
    expect(b.ep.peer(old.a.keys.publicKey)).toBeUndefined();
    // The genuine enrollee is proving; an attacker replays the captured initiation, several times.
    const genuine = enrollee(b, 3);
    genuine.a.ep.initiate(genuine.ab, T0 + 20_000);
    expect(b.recv(genuine.a.sink.take()[0]!.data, genuine.a.addr, T0 + 20_000)).toBe(Rx.INITIATION);
    const resp = b.sink.take()[0]!;
    for (let i = 1; i <= 5; i++) b.recv(captured, addr(66), T0 + 20_000 + i);
    b.sink.take();
    expect(genuine.a.recv(resp.data, b.addr, T0 + 20_010)).toBe(Rx.RESPONSE);
    expect(new Net(genuine.a, b).run(T0 + 20_010)).toEqual([Rx.KEEPALIVE]);
    expect(enrolled.map((e) => Buffer.from(e.peer.publicKey).toString('hex'))).toEqual([
      Buffer.from(genuine.a.keys.publicKey).toString('hex'),
    ]);
  });

  it('no admission without a valid mac1, and the same cookie gate as initiations under load', () => {
    const { b, admitted } = inviter();
    b.ep.setUnderLoad(true);
    const { a, ab } = enrollee(b);
    a.ep.initiate(ab, T0);
    const [init] = a.sink.take();
    const forged = Uint8Array.from(init!.data);
    forged[40] = forged[40]! ^ 1;
    expect(b.recv(forged, a.addr, T0)).toBe(Rx.BAD_MAC1);
    // Under load: a cookie reply, no DH, no admission; the resend with mac2 goes through.
    expect(b.recv(init!.data, a.addr, T0)).toBe(Rx.COOKIE_SENT);
    expect(admitted).toHaveLength(0);
    const net = new Net(a, b);
    expect(net.run(T0)).toEqual([Rx.COOKIE, Rx.INITIATION, Rx.RESPONSE, Rx.KEEPALIVE]);
    expect(admitted).toHaveLength(1);
  });
});

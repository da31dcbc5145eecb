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
import { bytes, Net, Node, sameBytes, T0 } from './harness.js';

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

  it('one provisional peer per invite: a second key with the same invite replaces the first', () => {
    const { b, enrolled } = inviter();
    const first = enrollee(b, 1);
    const second = enrollee(b, 3);
    first.a.ep.initiate(first.ab, T0);
    expect(b.recv(first.a.sink.take()[0]!.data, first.a.addr, T0)).toBe(Rx.INITIATION);
    const firstResponse = b.sink.take()[0]!;
    second.a.ep.initiate(second.ab, T0 + 1);
    expect(new Net(second.a, b).run(T0 + 1)).toEqual([Rx.INITIATION, Rx.RESPONSE, Rx.KEEPALIVE]);
    expect(b.ep.peer(first.a.keys.publicKey)).toBeUndefined();
    // The first one's (late) proof names a session that is gone.
    expect(first.a.recv(firstResponse.data, b.addr, T0 + 2)).toBe(Rx.RESPONSE);
    expect(new Net(first.a, b).run(T0 + 2)).toEqual([Rx.UNKNOWN_INDEX]);
    expect(enrolled.map((e) => Buffer.from(e.peer.publicKey).toString('hex'))).toEqual([
      Buffer.from(second.a.keys.publicKey).toString('hex'),
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

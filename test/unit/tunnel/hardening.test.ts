/**
 * Issue 7 tunnel hardening: the initiator resends at once after a cookie reply (#10), the rate
 * limit keys IPv6 sources by /64 (#12), weak static keys and small-order peer keys are refused
 * (#12).
 */
import { describe, expect, it } from 'vitest';
import { encodeUdpAddress } from '../../../src/io/udp-address.js';
import { isSmallOrderX25519Public, isWeakX25519Secret } from '../../../src/tunnel/crypto.js';
import { Rx, TunnelEndpoint } from '../../../src/tunnel/endpoint.js';
import { MSG_COOKIE_REPLY, MSG_INITIATION } from '../../../src/tunnel/messages.js';
import { sourceKey } from '../../../src/tunnel/ratelimit.js';
import { backends, sodiumNative as crypto, libsodium } from './backends.js';
import { connected, MemorySink, Node, pair, sendRecords, T0 } from './harness.js';

describe('cookie reply → immediate resend with mac2 (issue 7 #10)', () => {
  it('under load, a new peer completes its handshake in one extra round trip, not after the retry timer', () => {
    const { a, b, ab, ba, net } = pair(crypto);
    b.ep.setUnderLoad(true);
    a.ep.initiate(ab, T0);
    // No tick, no clock advance: everything happens in answer to datagrams.
    const outcomes = net.run(T0);
    expect(outcomes).toEqual([Rx.COOKIE_SENT, Rx.COOKIE, Rx.INITIATION, Rx.RESPONSE, Rx.KEEPALIVE]);
    expect(ab.hasSession(T0)).toBe(true);
    expect(ba.hasSession(T0)).toBe(true);
    expect(a.ep.stats.txInitiation).toBe(2);
    // The timer-driven retry is not needed any more: nothing is pending.
    expect(ab.handshakeInProgress).toBe(false);
  });

  it('a cookie reply to the resend itself waits for the retry timer (no cookie-driven loop)', () => {
    // Two responders with the same static key but their own cookie secrets stand in for a rotated
    // secret or an on-path forger: the second one refuses the first one's cookie.
    const { a, b, ab } = pair(crypto);
    const b2 = new TunnelEndpoint({ crypto, staticKeyPair: b.keys, sink: new MemorySink() });
    b2.addPeer({ publicKey: a.keys.publicKey });
    b.ep.setUnderLoad(true);
    b2.setUnderLoad(true);
    a.ep.initiate(ab, T0);
    expect(b.recv(a.sink.take()[0]!.data, a.addr, T0)).toBe(Rx.COOKIE_SENT);
    expect(a.recv(b.sink.take()[0]!.data, b.addr, T0)).toBe(Rx.COOKIE);
    const [resend] = a.sink.take();
    expect(resend!.data[0]).toBe(MSG_INITIATION);
    const sink2 = (b2 as unknown as { sink: MemorySink }).sink;
    expect(b2.receive(resend!.data, resend!.data.length, a.addr, 0, T0)).toBe(Rx.COOKIE_SENT);
    const [reply2] = sink2.take();
    expect(reply2!.data[0]).toBe(MSG_COOKIE_REPLY);
    expect(a.recv(reply2!.data, b.addr, T0)).toBe(Rx.COOKIE);
    expect(a.sink.take()).toEqual([]);
    expect(a.ep.stats.txInitiation).toBe(2);
    // The retry timer still runs: a new attempt after REKEY_TIMEOUT (+ jitter).
    a.ep.tick(T0 + 5400);
    expect(a.sink.take().map((d) => d.data[0])).toEqual([MSG_INITIATION]);
  });

  it('a cookie reply without a pending handshake of ours sends nothing', () => {
    const { a, b, ab, net } = pair(crypto);
    b.ep.setUnderLoad(true);
    a.ep.initiate(ab, T0);
    b.recv(a.sink.take()[0]!.data, a.addr, T0);
    const [reply] = b.sink.take();
    // The attempt is replaced before the reply arrives: its index names nothing any more.
    b.ep.setUnderLoad(false);
    a.ep.initiate(ab, T0 + 1);
    net.run(T0 + 1);
    expect(ab.hasSession(T0 + 1)).toBe(true);
    const sent = a.ep.stats.txInitiation;
    expect(a.recv(reply!.data, b.addr, T0 + 2)).toBe(Rx.UNKNOWN_INDEX);
    expect(a.ep.stats.txInitiation).toBe(sent);
  });
});

describe('rate-limit key (issue 7 #12)', () => {
  const key = (address: string, port = 51820) => sourceKey(encodeUdpAddress({ address, port }), 0, 24, true);

  it('IPv6 sources are keyed by their /64 (and scope); IPv4 by the full /32', () => {
    expect(key('2001:db8:1:2::1')).toBe(key('2001:db8:1:2:ffff:eeee:dddd:cccc', 9));
    expect(key('2001:db8:1:2::1')).not.toBe(key('2001:db8:1:3::1'));
    expect(key('fe80::1%2')).not.toBe(key('fe80::1%3'));
    expect(key('192.0.2.1')).not.toBe(key('192.0.2.2'));
    expect(key('192.0.2.1', 1)).toBe(key('192.0.2.1', 2));
  });

  it('an endpoint rate-limits every address of one /64 as one source', () => {
    const { a, b, ab } = pair(crypto, { rateLimit: { burst: 2, ratePerSecond: 0.001 } });
    const outcomes: number[] = [];
    const from = ['2001:db8:0:1::1', '2001:db8:0:1::2', '2001:db8:0:1::3', '2001:db8:0:2::1'];
    from.forEach((address, i) => {
      a.ep.initiate(ab, T0 + i);
      const [init] = a.sink.take();
      outcomes.push(b.recv(init!.data, encodeUdpAddress({ address, port: 40000 + i }), T0 + i));
      b.sink.take();
    });
    expect(outcomes).toEqual([Rx.INITIATION, Rx.INITIATION, Rx.RATE_LIMITED, Rx.INITIATION]);
  });
});

describe.each(backends.map((c) => [c.name, c] as const))('weak keys on %s (issue 7 #12)', (_n, c) => {
  it('TunnelEndpoint refuses an all-zero static key and its clamping equivalents', () => {
    for (const sk of [
      new Uint8Array(32),
      Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 7 : i === 31 ? 0xc0 : 0)),
    ]) {
      const kp = c.x25519KeyPair(sk);
      expect(isWeakX25519Secret(kp.secretKey)).toBe(true);
      expect(() => new TunnelEndpoint({ crypto: c, staticKeyPair: kp, sink: new MemorySink() })).toThrow(
        expect.objectContaining({ code: 'ERR_TUNNEL_CONFIG', message: expect.stringMatching(/all zero/) }),
      );
    }
    expect(isWeakX25519Secret(c.x25519KeyPair().secretKey)).toBe(false);
  });

  it('small-order peer keys are refused; each one really gives an all-zero DH', () => {
    const node = new Node(c, 1);
    const points = [
      '0000000000000000000000000000000000000000000000000000000000000000',
      '0100000000000000000000000000000000000000000000000000000000000000',
      'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
      '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
      'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
      'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
      'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
      // Non-canonical (top bit set) encoding of the second order-8 point.
      '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7',
    ].map((h) => Uint8Array.from(Buffer.from(h, 'hex')));
    const out = new Uint8Array(32);
    for (const p of points) {
      expect(isSmallOrderX25519Public(p)).toBe(true);
      expect(() => c.x25519(out, node.keys.secretKey, p)).toThrow(
        expect.objectContaining({ code: 'ERR_CRYPTO' }),
      );
      expect(() => node.ep.addPeer({ publicKey: p })).toThrow(
        expect.objectContaining({ code: 'ERR_TUNNEL_PEER', message: expect.stringMatching(/small-order/) }),
      );
    }
    const ok = c.x25519KeyPair().publicKey;
    expect(isSmallOrderX25519Public(ok)).toBe(false);
    expect(node.ep.addPeer({ publicKey: ok }).publicKey).toEqual(ok);
  });
});

describe('libsodium-wrappers fallback keeps no secrets in the WASM heap (issue 7 #12)', () => {
  it('after a handshake, transport data and a cookie round trip, no key or plaintext is in the heap', async () => {
    const sodium = (await import('libsodium-wrappers')).default;
    const heap = () => {
      const h = (sodium as unknown as { libsodium: { HEAPU8: Uint8Array } }).libsodium.HEAPU8;
      return Buffer.from(h.buffer, h.byteOffset, h.byteLength);
    };
    const { a, b, ab, ba, net } = connected(libsodium);
    // A cookie round trip too (XChaCha20 under a key derived from B's public key, cookie secret).
    b.ep.setUnderLoad(true);
    a.ep.initiate(ab, T0 + 1);
    net.run(T0 + 1);
    expect(a.ep.stats.rx[Rx.COOKIE]).toBe(1);
    const secretText = Buffer.from('plaintext that must not stay in the wasm heap 0123456789');
    for (const d of sendRecords(a, ab, [secretText], T0 + 2)) b.recv(d.data, a.addr, T0 + 2);
    net.run(T0 + 2);
    expect(Buffer.from(b.records.at(-1)!.data).equals(secretText)).toBe(true);
    const secrets: [string, Uint8Array][] = [
      ['A static secret', a.keys.secretKey],
      ['B static secret', b.keys.secretKey],
      ['A send key', ab.current!.sendKey],
      ['A recv key', ab.current!.recvKey],
      ['B send key', ba.current!.sendKey],
      ['B recv key', ba.current!.recvKey],
      ['record plaintext', secretText],
    ];
    const h = heap();
    for (const [what, s] of secrets) {
      expect(s.some((x) => x !== 0)).toBe(true);
      expect(h.indexOf(Buffer.from(s)), what).toBe(-1);
    }
  });
});

/**
 * Two UdpTunnels over the loopback of a private namespace (IPv4 127.0.0.1 and IPv6 ::1): a real
 * handshake, AoE-type records of 60..9000 bytes both ways within a 9216-byte MTU, control records,
 * garbage that never breaks the receive loop, bind errors, and a close that zeroes the keys.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePeerMessage, encodePeerMessage, type PeerMessage } from '../../src/gateway/peer-messages.js';
import { UdpLink } from '../../src/io/udp-link.js';
import { type CryptoBackend, loadCrypto } from '../../src/tunnel/crypto.js';
import { Rx, Send } from '../../src/tunnel/endpoint.js';
import type { Peer } from '../../src/tunnel/peer.js';
import { RECORD_AOE, RECORD_CONTROL } from '../../src/tunnel/records.js';
import { UdpTunnel, type UdpTunnelOptions } from '../../src/tunnel/udp-tunnel.js';
import { Netns, netnsSkipReason } from '../helpers/netns.js';
import { waitFor } from '../helpers/wait.js';

const skip = netnsSkipReason();
const MTU = 9216;

interface Got {
  type: number;
  data: Buffer;
}

interface Side {
  t: UdpTunnel;
  peer: Peer;
  got: Got[];
  completed: boolean[];
}

/** A and B know each other; A has B's address, B learns A's from the handshake. */
function pair(crypto: CryptoBackend, base: Omit<UdpTunnelOptions, 'crypto' | 'staticKeyPair'>) {
  const ka = crypto.x25519KeyPair();
  const kb = crypto.x25519KeyPair();
  const mk = (keys: typeof ka): Omit<Side, 'peer'> => {
    const side: Omit<Side, 'peer'> = { t: undefined as unknown as UdpTunnel, got: [], completed: [] };
    side.t = UdpTunnel.open({
      ...base,
      crypto,
      staticKeyPair: keys,
      events: {
        record: (_p, type, buf, off, len) =>
          side.got.push({ type, data: Buffer.from(buf.subarray(off, off + len)) }),
        handshakeComplete: (_p, initiator) => side.completed.push(initiator),
      },
    });
    return side;
  };
  const a0 = mk(ka);
  const b0 = mk(kb);
  const host = base.address!;
  const a: Side = {
    ...a0,
    peer: a0.t.addPeer({ publicKey: kb.publicKey, endpoint: { address: host, port: b0.t.localPort } }),
  };
  const b: Side = { ...b0, peer: b0.t.addPeer({ publicKey: ka.publicKey }) };
  return { a, b };
}

function pattern(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (seed * 31 + i * 7) & 0xff;
  b.writeUInt32BE(seed, 0);
  return b;
}

describe.skipIf(skip)('UdpTunnel over loopback', () => {
  let ns: Netns;
  let crypto: CryptoBackend;
  const open: UdpTunnel[] = [];
  beforeAll(async () => {
    ns = new Netns('tlo');
    crypto = await loadCrypto('sodium-native');
  });
  afterAll(() => {
    for (const t of open) t.close();
    ns?.delete();
  });

  for (const [family, host] of [
    [4, '127.0.0.1'],
    [6, '::1'],
  ] as const) {
    it(`IPv${family}: handshake, AoE records of 60..9000 bytes both ways, control records`, async () => {
      const { a, b } = pair(crypto, { family, address: host, port: 0, netns: ns.name, mtu: MTU });
      open.push(a.t, b.t);
      // No session yet: the record is refused and a handshake starts by itself.
      expect(a.t.sendAoe(a.peer, pattern(60, 0))).toBe(Send.NO_SESSION);
      expect(await waitFor(() => a.completed.length === 1 && b.completed.length === 1, 5000, 5)).toBe(true);
      expect(a.completed).toEqual([true]);
      expect(b.completed).toEqual([false]);
      // B learnt A's address from the initiation.
      expect(b.t.peerEndpoint(b.peer)).toEqual({ address: host, port: a.t.localPort });

      const sizes = [60, 61, 100, 512, 1024, 1040, 1100, 1452, 2048, 4096, 8192, 8800, 8999, 9000];
      for (let i = 0; i < 40; i++) sizes.push(60 + ((i * 2654435761) % 8941));
      const aToB = sizes.map((n, i) => pattern(n, 1000 + i));
      const bToA = sizes.map((n, i) => pattern(n, 2000 + i));
      for (let i = 0; i < sizes.length; i++) {
        expect(a.t.sendAoe(a.peer, aToB[i]!)).toBe(Send.OK);
        expect(b.t.sendAoe(b.peer, bToA[i]!)).toBe(Send.OK);
      }
      // Small records of another type (the gateway's peer messages) share the same datagrams.
      const controls: PeerMessage[] = [
        {
          kind: 'hello',
          hello: {
            protocolVersion: 2,
            capabilities: ['aoe', 'targets'],
            gatewayName: 'gw-a',
            requestEpochSeen: 0,
          },
        },
        { kind: 'error', error: { code: 4, message: 'no such target e1.2' } },
        {
          kind: 'adverts',
          adverts: {
            generation: 7,
            chunk: 0,
            chunks: 1,
            targets: [
              {
                shelf: 1,
                slot: 2,
                bufferCount: 64,
                sectors: 2n ** 40n,
                configString: new TextEncoder().encode('cfg'),
                maxSectors: 2,
                name: 'disk',
                readOnly: false,
                firmware: 1,
              },
            ],
          },
        },
      ];
      for (const m of controls) {
        expect(a.t.send(a.peer, RECORD_CONTROL, encodePeerMessage(m))).toBe(Send.OK);
        expect(b.t.send(b.peer, RECORD_CONTROL, encodePeerMessage(m))).toBe(Send.OK);
      }
      const n = sizes.length + controls.length;
      expect(await waitFor(() => a.got.length >= n && b.got.length >= n, 5000, 5)).toBe(true);
      for (const [side, sent] of [
        [b, aToB],
        [a, bToA],
      ] as const) {
        expect(side.got.length).toBe(n);
        const aoe = side.got.filter((g) => g.type === RECORD_AOE);
        expect(aoe.map((g) => g.data.length)).toEqual(sizes);
        expect(aoe.every((g, i) => g.data.equals(sent[i]!))).toBe(true);
        const ctl = side.got.filter((g) => g.type === RECORD_CONTROL).map((g) => decodePeerMessage(g.data));
        expect(ctl).toEqual(controls);
      }
      // Small records were packed: fewer transport messages than records.
      expect(a.t.stats().tunnel.txData).toBeLessThan(n);
      // A record that can never fit this MTU is refused, not truncated.
      expect(a.t.endpoint.maxRecord).toBeLessThan(MTU);
      expect(a.t.sendAoe(a.peer, Buffer.alloc(a.t.endpoint.maxRecord + 1))).toBe(Send.TOO_LARGE);
      for (const s of [a, b]) {
        const st = s.t.stats();
        expect(st.driver.errors).toBe(0);
        expect(st.tunnel.rx[Rx.BAD_AUTH]).toBe(0);
        expect(st.tunnel.rx[Rx.REPLAY]).toBe(0);
      }
    });
  }

  it('unbatched links (batch 1): a handshake needs no cookie, records flow', async () => {
    // Regression: with batch 1 every batch is "full"; that alone must not look like a backlog.
    const { a, b } = pair(crypto, { family: 4, address: '127.0.0.1', port: 0, netns: ns.name, batch: 1 });
    open.push(a.t, b.t);
    a.t.connect(a.peer);
    expect(await waitFor(() => a.completed.length === 1 && b.completed.length === 1, 2000, 5)).toBe(true);
    expect(b.t.stats().tunnel.txCookieReply).toBe(0);
    for (let i = 0; i < 200; i++) a.t.sendAoe(a.peer, pattern(1000, i));
    expect(await waitFor(() => b.got.length === 200, 5000, 5)).toBe(true);
    expect(b.got.every((g, i) => g.data.readUInt32BE(0) === i)).toBe(true);
  });

  it('garbage, truncated and foreign datagrams are counted and never break the receive loop', async () => {
    const { a, b } = pair(crypto, { family: 4, address: '127.0.0.1', port: 0, netns: ns.name, mtu: 1452 });
    open.push(a.t, b.t);
    a.t.connect(a.peer);
    expect(await waitFor(() => b.completed.length === 1, 5000, 5)).toBe(true);
    const junk = UdpLink.open({
      family: 4,
      address: '127.0.0.1',
      port: 0,
      netns: ns.name,
      maxDatagram: 65507,
    });
    try {
      const to = { address: '127.0.0.1', port: b.t.localPort };
      const d = Buffer.alloc(20000);
      let sent = 0;
      for (let i = 0; i < 400; i++) {
        const len = [1, 3, 4, 31, 32, 64, 92, 148, 1000, 20000][i % 10]!;
        for (let k = 0; k < len; k++) d[k] = (i * 13 + k * 7) & 0xff;
        if (i % 3 === 0) d.set([4, 1, 0, 0]); // transport header, random index and body
        if (i % 7 === 0) d.set([1, 1, 0, 0]); // initiation header, random body
        junk.sendTo(d.subarray(0, len), to);
        sent++;
        if (i % 50 === 49) junk.flush();
      }
      junk.flush();
      expect(
        await waitFor(
          () => b.t.stats().driver.rxDatagrams >= sent + 2,
          5000,
          5 /* + initiation and keepalive */,
        ),
      ).toBe(true);
      const st = b.t.stats();
      expect(st.driver.errors).toBe(0);
      expect(st.driver.rxTruncated).toBeGreaterThan(0); // 20000 bytes > the 9216-byte slots
      expect(st.tunnel.rx[Rx.INTERNAL]).toBe(0);
      expect(st.tunnel.rx[Rx.MALFORMED]! + st.tunnel.rx[Rx.UNKNOWN_INDEX]! + st.tunnel.rx[Rx.BAD_MAC1]!).toBe(
        sent - st.driver.rxTruncated,
      );
      // The session still works both ways.
      a.t.sendAoe(a.peer, pattern(500, 1));
      b.t.sendAoe(b.peer, pattern(500, 2));
      expect(await waitFor(() => a.got.length === 1 && b.got.length === 1, 5000, 5)).toBe(true);
    } finally {
      junk.close();
    }
  });

  it('bind failures are ERR_BIND with a clear message; a peer of the other family is refused', () => {
    const keys = crypto.x25519KeyPair();
    const first = UdpTunnel.open({
      crypto,
      staticKeyPair: keys,
      address: '127.0.0.1',
      port: 0,
      netns: ns.name,
    });
    open.push(first);
    const again = { crypto, staticKeyPair: keys, netns: ns.name } as const;
    expect(() => UdpTunnel.open({ ...again, address: '127.0.0.1', port: first.localPort })).toThrow(
      expect.objectContaining({ code: 'ERR_BIND', message: expect.stringMatching(/127\.0\.0\.1.*in use/) }),
    );
    expect(() => UdpTunnel.open({ ...again, address: '192.0.2.1', port: 0 })).toThrow(
      expect.objectContaining({ code: 'ERR_BIND', message: expect.stringMatching(/192\.0\.2\.1/) }),
    );
    expect(() => UdpTunnel.open({ ...again, family: 6, address: '127.0.0.1', port: 0 })).toThrow(
      expect.objectContaining({ code: 'ERR_BIND', message: expect.stringMatching(/not an IPv6/) }),
    );
    // Bad options after the bind: the socket is closed again (the port can be bound at once).
    const port = first.localPort + 1;
    expect(() =>
      UdpTunnel.open({ ...again, address: '127.0.0.1', port, timers: { rekeyTimeout: 0 } }),
    ).toThrow(expect.objectContaining({ code: 'ERR_TUNNEL_CONFIG' }));
    expect(() => UdpTunnel.open({ ...again, address: '127.0.0.1', port, mtu: 20 })).toThrow(
      expect.objectContaining({ code: 'ERR_TUNNEL_CONFIG' }),
    );
    const reuse = UdpTunnel.open({ ...again, address: '127.0.0.1', port });
    open.push(reuse);
    expect(reuse.localPort).toBe(port);
    expect(() =>
      first.addPeer({ publicKey: crypto.x25519KeyPair().publicKey, endpoint: { address: '::1', port: 1 } }),
    ).toThrow(expect.objectContaining({ code: 'ERR_TUNNEL_PEER' }));
    expect([...first.endpoint.peers()]).toHaveLength(0);
  });

  it('close() zeroes the keys, forgets the peers and is idempotent', async () => {
    const { a, b } = pair(crypto, { family: 4, address: '127.0.0.1', port: 0, netns: ns.name });
    open.push(a.t, b.t);
    a.t.connect(a.peer);
    expect(await waitFor(() => b.completed.length === 1, 5000, 5)).toBe(true);
    const session = (a.peer as unknown as { current: { sendKey: Uint8Array; recvKey: Uint8Array } }).current;
    expect(session.sendKey.some((x) => x !== 0)).toBe(true);
    a.t.close();
    a.t.close();
    expect(session.sendKey.every((x) => x === 0) && session.recvKey.every((x) => x === 0)).toBe(true);
    expect(a.peer.psk.every((x) => x === 0)).toBe(true);
    expect([...a.t.endpoint.peers()]).toHaveLength(0);
    expect(() => a.t.sendAoe(a.peer, pattern(60, 0))).toThrow(
      expect.objectContaining({ code: 'ERR_CLOSED' }),
    );
    // B's datagrams to the closed socket go nowhere; B is unaffected.
    expect(b.t.sendAoe(b.peer, pattern(60, 0))).toBe(Send.OK);
  });
});

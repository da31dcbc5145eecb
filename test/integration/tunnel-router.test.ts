/**
 * Two gateways in separate namespaces joined by a router namespace (forwarding on, two veth links,
 * two subnets, default routes via the router), over IPv4 and IPv6: handshake and records across
 * the router, and endpoint roaming — the initiator's source address changes (a new preferred
 * source address under a wildcard-bound socket, then a re-bind to another address and port) and
 * the responder follows the last authenticated source, not a forged packet from the old one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UdpLink } from '../../src/io/udp-link.js';
import { type CryptoBackend, loadCrypto } from '../../src/tunnel/crypto.js';
import { Rx, Send } from '../../src/tunnel/endpoint.js';
import { MSG_TRANSPORT, writeHeader, writeU32, writeU64 } from '../../src/tunnel/messages.js';
import type { Peer } from '../../src/tunnel/peer.js';
import { UdpTunnel } from '../../src/tunnel/udp-tunnel.js';
import { Netns, netnsSkipReason, vethPair } from '../helpers/netns.js';
import { waitFor } from '../helpers/wait.js';

const skip = netnsSkipReason();

const NETS = {
  4: {
    a: '10.81.1.2',
    a2: '10.81.1.3',
    a3: '10.81.1.4',
    ra: '10.81.1.1',
    rb: '10.81.2.1',
    b: '10.81.2.2',
    len: 24,
  },
  6: {
    a: 'fd81:1::2',
    a2: 'fd81:1::3',
    a3: 'fd81:1::4',
    ra: 'fd81:1::1',
    rb: 'fd81:2::1',
    b: 'fd81:2::2',
    len: 64,
  },
} as const;

interface Gw {
  t: UdpTunnel;
  peer: Peer;
  got: Buffer[];
  completed: number;
  moves: string[];
}

describe.skipIf(skip)('UdpTunnel across a router namespace', () => {
  let nsA: Netns;
  let nsR: Netns;
  let nsB: Netns;
  let ifA: string;
  let crypto: CryptoBackend;
  const open: { close(): void }[] = [];

  beforeAll(async () => {
    crypto = await loadCrypto('sodium-native');
    nsA = new Netns('tra');
    nsR = new Netns('trr');
    nsB = new Netns('trb');
    // No duplicate address detection: link-local addresses would stay tentative for ~1 s, and
    // neighbour discovery (hence the first packets) waits for them.
    for (const ns of [nsA, nsR, nsB]) ns.exec('sysctl', '-qw', 'net.ipv6.conf.default.accept_dad=0');
    const left = vethPair(nsA, nsR, 1500);
    const right = vethPair(nsR, nsB, 1500);
    ifA = left.a;
    nsR.exec('sysctl', '-qw', 'net.ipv4.ip_forward=1');
    nsR.exec('sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1');
    for (const f of [4, 6] as const) {
      const n = NETS[f];
      const fam = f === 4 ? '-4' : '-6';
      const nodad = f === 6 ? ['nodad'] : [];
      nsA.ip(fam, 'addr', 'add', `${n.a}/${n.len}`, 'dev', left.a, ...nodad);
      nsR.ip(fam, 'addr', 'add', `${n.ra}/${n.len}`, 'dev', left.b, ...nodad);
      nsR.ip(fam, 'addr', 'add', `${n.rb}/${n.len}`, 'dev', right.a, ...nodad);
      nsB.ip(fam, 'addr', 'add', `${n.b}/${n.len}`, 'dev', right.b, ...nodad);
      nsA.ip(fam, 'route', 'add', 'default', 'via', n.ra, 'dev', left.a);
      nsB.ip(fam, 'route', 'add', 'default', 'via', n.rb, 'dev', right.b);
    }
  });

  afterAll(() => {
    for (const o of open) o.close();
    nsA?.delete();
    nsR?.delete();
    nsB?.delete();
  });

  /** A (initiator) bound to `aAddress` (wildcard by default) in nsA; B (responder) on its address in nsB. */
  function gateways(family: 4 | 6, aAddress?: string): { a: Gw; b: Gw } {
    const ka = crypto.x25519KeyPair();
    const kb = crypto.x25519KeyPair();
    const mk = (keys: typeof ka, netns: string, address: string | undefined): Gw => {
      const gw = { got: [], completed: 0, moves: [] } as unknown as Gw;
      gw.t = UdpTunnel.open({
        crypto,
        staticKeyPair: keys,
        family,
        port: 0,
        netns,
        tickMs: 100,
        ...(address !== undefined ? { address } : {}),
        events: {
          record: (_p, _type, buf, off, len) => gw.got.push(Buffer.from(buf.subarray(off, off + len))),
          handshakeComplete: () => {
            gw.completed++;
          },
          endpointChanged: (p) => {
            const e = gw.t.peerEndpoint(p)!;
            gw.moves.push(`${e.address}|${e.port}`);
          },
        },
      });
      open.push(gw.t);
      return gw;
    };
    const a = mk(ka, nsA.name, aAddress);
    const b = mk(kb, nsB.name, NETS[family].b);
    a.peer = a.t.addPeer({
      publicKey: kb.publicKey,
      endpoint: { address: NETS[family].b, port: b.t.localPort },
    });
    b.peer = b.t.addPeer({ publicKey: ka.publicKey });
    return { a, b };
  }

  /** One numbered record each way; resolves when both arrived. */
  async function exchange(a: Gw, b: Gw, seq: number): Promise<void> {
    const rec = (tag: number) => {
      const r = Buffer.alloc(1000, tag & 0xff);
      r.writeUInt32BE(tag, 0);
      return r;
    };
    const na = a.got.length;
    const nb = b.got.length;
    expect(a.t.sendAoe(a.peer, rec(seq))).toBe(Send.OK);
    expect(await waitFor(() => b.got.length === nb + 1, 5000, 5)).toBe(true);
    expect(b.t.sendAoe(b.peer, rec(seq + 1))).toBe(Send.OK);
    expect(await waitFor(() => a.got.length === na + 1, 5000, 5)).toBe(true);
    expect(b.got.at(-1)!.readUInt32BE(0)).toBe(seq);
    expect(a.got.at(-1)!.readUInt32BE(0)).toBe(seq + 1);
  }

  for (const family of [4, 6] as const) {
    const n = NETS[family];

    it(`IPv${family}: handshake and records across the router; the responder sees A's routed address`, async () => {
      const { a, b } = gateways(family, n.a);
      expect(a.t.connect(a.peer)).toBe(Send.OK);
      expect(await waitFor(() => a.completed === 1 && b.completed === 1, 5000, 5)).toBe(true);
      expect(b.t.peerEndpoint(b.peer)).toEqual({ address: n.a, port: a.t.localPort });
      for (let i = 0; i < 20; i++) await exchange(a, b, i * 2);
      // Bulk: 500 records of 1100 bytes each way through the router.
      const before = [a.got.length, b.got.length];
      for (let i = 0; i < 500; i++) {
        a.t.sendAoe(a.peer, Buffer.alloc(1100, i));
        b.t.sendAoe(b.peer, Buffer.alloc(1100, i));
        if (i % 50 === 49) await waitFor(() => b.got.length >= before[1]! + i + 1, 5000, 2);
      }
      expect(
        await waitFor(() => a.got.length === before[0]! + 500 && b.got.length === before[1]! + 500, 5000),
      ).toBe(true);
      for (const g of [a, b]) {
        expect(g.t.stats().tunnel.rx[Rx.BAD_AUTH]).toBe(0);
        expect(g.t.stats().driver.errors).toBe(0);
      }
    });

    it(`IPv${family}: roaming — the responder follows the initiator's new source address`, async () => {
      const fam = family === 4 ? '-4' : '-6';
      const nodad = family === 6 ? ['nodad'] : [];
      // A binds the wildcard: its source address is whatever the route prefers.
      const { a, b } = gateways(family);
      a.t.connect(a.peer);
      expect(await waitFor(() => b.completed === 1, 5000, 5)).toBe(true);
      await exchange(a, b, 100);
      const port = a.t.localPort;
      expect(b.t.peerEndpoint(b.peer)).toEqual({ address: n.a, port });

      // 1. A second address becomes the preferred source: the same socket now sends from it.
      nsA.ip(fam, 'addr', 'add', `${n.a2}/${n.len}`, 'dev', ifA, ...nodad);
      nsA.ip(fam, 'route', 'replace', 'default', 'via', n.ra, 'dev', ifA, 'src', n.a2);
      try {
        await exchange(a, b, 200);
        expect(b.t.peerEndpoint(b.peer)).toEqual({ address: n.a2, port });
        expect(b.moves.at(-1)).toBe(`${n.a2}|${port}`);

        // A forged transport message from the old address (another port: A's wildcard socket holds
        // its own), naming B's live session, is rejected and moves nothing.
        const forger = UdpLink.open({ family, address: n.a, port: 0, netns: nsA.name });
        open.push(forger);
        const st = b.t.endpoint.inspect(b.peer);
        const forged = Buffer.alloc(32 + 64, 0x5a);
        writeHeader(forged, 0, MSG_TRANSPORT);
        writeU32(forged, 4, st.current!.localIndex);
        writeU64(forged, 8, st.current!.replay.highest + 5n);
        const badAuth = b.t.stats().tunnel.rx[Rx.BAD_AUTH]!;
        forger.sendTo(forged, { address: n.b, port: b.t.localPort });
        forger.flush();
        expect(await waitFor(() => b.t.stats().tunnel.rx[Rx.BAD_AUTH]! === badAuth + 1, 5000, 5)).toBe(true);
        expect(b.t.peerEndpoint(b.peer)).toEqual({ address: n.a2, port });
        forger.close();

        // 2. Re-bind to a third address and a new port: a socket that receives only there.
        nsA.ip(fam, 'addr', 'add', `${n.a3}/${n.len}`, 'dev', ifA, ...nodad);
        a.t.rebind({ address: n.a3, port: 0 });
        expect(a.t.localPort).not.toBe(port);
        await exchange(a, b, 300);
        expect(b.t.peerEndpoint(b.peer)).toEqual({ address: n.a3, port: a.t.localPort });
        // Same session throughout: roaming needs no new handshake.
        expect(a.completed).toBe(1);
        expect(b.completed).toBe(1);
        expect(b.moves).toEqual([`${n.a}|${port}`, `${n.a2}|${port}`, `${n.a3}|${a.t.localPort}`]);
      } finally {
        nsA.ip(fam, 'route', 'replace', 'default', 'via', n.ra, 'dev', ifA);
      }
    });
  }
});

/**
 * Rekeying over real sockets with the rekey timer shortened to 1 s (TunnelEndpointOptions.timers):
 * while numbered records flow both ways without pause, the initiator starts a new handshake about
 * every second, each new session takes over on both sides, and not one authenticated record is
 * lost, duplicated or reordered — packets in flight on the old session are still accepted on the
 * receiving side's "previous" session (docs/protocol.md 7.3).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CryptoBackend, loadCrypto } from '../../src/tunnel/crypto.js';
import { Rx, Send } from '../../src/tunnel/endpoint.js';
import type { Peer } from '../../src/tunnel/peer.js';
import { UdpTunnel } from '../../src/tunnel/udp-tunnel.js';
import { Netns, netnsSkipReason } from '../helpers/netns.js';
import { sleep, waitFor } from '../helpers/wait.js';

const skip = netnsSkipReason();
const REKEY_MS = 1000;
const RUN_MS = 4500;

describe.skipIf(skip)('UdpTunnel rekey with a 1 s REKEY_AFTER_TIME', () => {
  let ns: Netns;
  let crypto: CryptoBackend;
  const open: UdpTunnel[] = [];
  beforeAll(async () => {
    ns = new Netns('trk');
    crypto = await loadCrypto('sodium-native');
  });
  afterAll(() => {
    for (const t of open) t.close();
    ns?.delete();
  });

  it('new sessions every second while records flow both ways: no record lost', async () => {
    const ka = crypto.x25519KeyPair();
    const kb = crypto.x25519KeyPair();
    const got = { a: [] as number[], b: [] as number[] };
    const completed = { a: [] as number[], b: [] as number[] };
    const mk = (keys: typeof ka, side: 'a' | 'b') => {
      const t = UdpTunnel.open({
        crypto,
        staticKeyPair: keys,
        address: '127.0.0.1',
        port: 0,
        netns: ns.name,
        tickMs: 50,
        // The retry interval stays near the rekey interval so that only a stall of ~1 s causes a retry.
        timers: { rekeyAfterTime: REKEY_MS, rekeyTimeout: 900 },
        events: {
          record: (_p, _t, buf, off) =>
            got[side].push(Buffer.from(buf.buffer, buf.byteOffset + off, 4).readUInt32BE(0)),
          handshakeComplete: () => completed[side].push(performance.now()),
        },
      });
      open.push(t);
      return t;
    };
    const a = mk(ka, 'a');
    const b = mk(kb, 'b');
    const ab: Peer = a.addPeer({
      publicKey: kb.publicKey,
      endpoint: { address: '127.0.0.1', port: b.localPort },
    });
    const ba: Peer = b.addPeer({ publicKey: ka.publicKey });
    a.connect(ab);
    expect(await waitFor(() => completed.a.length === 1 && completed.b.length === 1, 5000, 5)).toBe(true);

    const rec = Buffer.alloc(600, 0x33);
    const sent = { a: 0, b: 0 };
    const sessionsA = new Set<number>();
    const sessionsB = new Set<number>();
    const end = performance.now() + RUN_MS;
    while (performance.now() < end) {
      for (let k = 0; k < 4; k++) {
        rec.writeUInt32BE(sent.a, 0);
        expect(a.sendAoe(ab, rec)).toBe(Send.OK);
        sent.a++;
        rec.writeUInt32BE(sent.b, 0);
        expect(b.sendAoe(ba, rec)).toBe(Send.OK);
        sent.b++;
      }
      sessionsA.add(a.endpoint.inspect(ab).current!.localIndex);
      sessionsB.add(b.endpoint.inspect(ba).current!.localIndex);
      await sleep(5);
    }
    expect(await waitFor(() => got.b.length >= sent.a && got.a.length >= sent.b, 5000, 5)).toBe(true);
    await sleep(50);

    // Every record arrived exactly once and in order, through all the session changes.
    expect(got.b).toEqual(Array.from({ length: sent.a }, (_, i) => i));
    expect(got.a).toEqual(Array.from({ length: sent.b }, (_, i) => i));
    // About one rekey per second (the first at >= 1 s): at least 3 new sessions in 4.5 s, seen
    // current on both sides, each completed on both sides.
    expect(completed.a.length).toBeGreaterThanOrEqual(4);
    expect(completed.b.length).toBeGreaterThanOrEqual(completed.a.length - 1);
    expect(sessionsA.size).toBeGreaterThanOrEqual(4);
    expect(sessionsB.size).toBeGreaterThanOrEqual(4);
    for (let i = 1; i < completed.a.length; i++) {
      // Completion times are read when the event handler runs, up to one receive batch after the
      // endpoint's own clock reading that starts the rekey timer, so allow that much slack (seen:
      // 995.6 ms under a loaded full-suite run). A rekey before ~REKEY_MS would still fail this.
      expect(completed.a[i]! - completed.a[i - 1]!).toBeGreaterThanOrEqual(REKEY_MS - 50);
    }
    const sa = a.stats().tunnel;
    const sb = b.stats().tunnel;
    // Only the initiator rekeys on time. (A retry — only after an event-loop stall near 1 s — makes
    // the superseded handshake's response name an index that no longer exists.)
    expect(sb.txInitiation).toBe(0);
    expect(sa.txInitiation).toBeGreaterThanOrEqual(completed.a.length);
    expect(sa.rx[Rx.UNKNOWN_INDEX]).toBeLessThanOrEqual(sa.txInitiation - completed.a.length);
    expect(sb.rx[Rx.UNKNOWN_INDEX]).toBe(0);
    for (const s of [sa, sb]) {
      expect(s.rx[Rx.REPLAY]).toBe(0);
      expect(s.rx[Rx.BAD_AUTH]).toBe(0);
      expect(s.rx[Rx.EXPIRED]).toBe(0);
      expect(s.txDropped).toBe(0);
    }
    // Old sessions are destroyed: at most previous + current (+ next) per side.
    expect(a.endpoint.indexCount).toBeLessThanOrEqual(3);
    expect(b.endpoint.indexCount).toBeLessThanOrEqual(3);
  });
});

/**
 * A bounded handshake flood against a responder that carries an established session: 20,000
 * initiations in ~3 s from eight other source addresses, 90 % with a valid mac1 for the responder
 * (genuine Noise messages from random static keys, each with a fresh sender index) and 10 % with a
 * bad mac1. The session's records keep flowing both ways, the flood gets cookie replies (counted at
 * the flooder), bad-mac1 messages get nothing, the responder's Diffie-Hellman count stays bounded,
 * a legitimate peer still completes a handshake during the flood (through a cookie), and cookie
 * mode ends once the flood does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeUdpAddress } from '../../src/io/udp-address.js';
import { UdpLink } from '../../src/io/udp-link.js';
import { CookieMaker } from '../../src/tunnel/cookie.js';
import { type CryptoBackend, loadCrypto } from '../../src/tunnel/crypto.js';
import { type DatagramSink, Rx, Send, TunnelEndpoint } from '../../src/tunnel/endpoint.js';
import {
  COOKIE_RECEIVER,
  COOKIE_REPLY_LEN,
  INIT_LEN,
  INIT_MAC1,
  INIT_SENDER,
  MSG_COOKIE_REPLY,
  readU32,
  writeU32,
} from '../../src/tunnel/messages.js';
import type { Peer } from '../../src/tunnel/peer.js';
import { UdpTunnel } from '../../src/tunnel/udp-tunnel.js';
import { Netns, netnsSkipReason } from '../helpers/netns.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { countingBackend } from '../unit/tunnel/harness.js';

const skip = netnsSkipReason();
const FLOOD = 20_000;
const FLOOD_MS = 3000;
const SOURCES = 8;
const BAD_MAC1_EVERY = 10;

/** Genuine initiations to `responder` from `n` random static keys (each a throwaway endpoint). */
function initiationTemplates(crypto: CryptoBackend, responder: Uint8Array, n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  const buf = new Uint8Array(2048);
  const sink: DatagramSink = {
    buffer: () => buf,
    send: (len) => out.push(buf.slice(0, len)),
  };
  for (let i = 0; i < n; i++) {
    const ep = new TunnelEndpoint({
      crypto,
      staticKeyPair: crypto.x25519KeyPair(),
      sink,
      clockOffsetMs: Date.now(),
    });
    const peer = ep.addPeer({
      publicKey: responder,
      endpoint: encodeUdpAddress({ address: '127.0.0.1', port: 1 }),
    });
    ep.initiate(peer, 1);
    ep.destroy();
  }
  return out;
}

describe.skipIf(skip)('UdpTunnel under a handshake flood', () => {
  let ns: Netns;
  let base: CryptoBackend;
  const open: { close(): void }[] = [];
  beforeAll(async () => {
    ns = new Netns('tfl');
    base = await loadCrypto('sodium-native');
  });
  afterAll(() => {
    for (const o of open) o.close();
    ns?.delete();
  });

  for (const driverSignal of [true, false]) {
    it(`${driverSignal ? "driver's load signal" : "endpoint's own load counter only"}: the session keeps flowing, the flood gets cookies, DH stays bounded, a real peer gets through`, async () => {
      const ka = base.x25519KeyPair();
      const kb = base.x25519KeyPair();
      const counted = countingBackend(base);
      const got = { a: 0, b: 0 };
      const completed = { a: 0, b: 0 };
      let completedAt = 0;
      const a = UdpTunnel.open({
        crypto: base,
        staticKeyPair: ka,
        address: '127.0.0.1',
        port: 0,
        netns: ns.name,
        tickMs: 50,
        // The default retry interval (5 s): A's handshake under the flood must not wait for it.
        events: {
          record: () => {
            got.a++;
          },
          handshakeComplete: () => {
            completed.a++;
            completedAt = performance.now();
          },
        },
      });
      const b = UdpTunnel.open({
        crypto: counted.crypto,
        staticKeyPair: kb,
        address: '127.0.0.1',
        port: 0,
        netns: ns.name,
        tickMs: 50,
        load: driverSignal ? { holdMs: 1000 } : false,
        events: {
          record: () => {
            got.b++;
          },
          handshakeComplete: () => {
            completed.b++;
          },
        },
      });
      open.push(a, b);
      const ab: Peer = a.addPeer({
        publicKey: kb.publicKey,
        endpoint: { address: '127.0.0.1', port: b.localPort },
      });
      const ba: Peer = b.addPeer({ publicKey: ka.publicKey });
      a.connect(ab);
      expect(await waitFor(() => completed.a === 1 && completed.b === 1, 5000, 5)).toBe(true);

      // The flooder: eight sockets on other loopback addresses, counting the cookie replies they get.
      const templates = initiationTemplates(base, kb.publicKey, 32);
      const maker = new CookieMaker(base, kb.publicKey);
      const sentIndexes = new Set<number>();
      let cookies = 0;
      let strayReplies = 0;
      const floods: UdpLink[] = [];
      for (let i = 0; i < SOURCES; i++) {
        const l = UdpLink.open({ family: 4, address: `127.0.0.${i + 2}`, port: 0, netns: ns.name });
        l.onBatch((d, lens, _addrs, count) => {
          for (let k = 0; k < count; k++) {
            if (lens[k] === COOKIE_REPLY_LEN && d[k]![0] === MSG_COOKIE_REPLY) {
              if (sentIndexes.has(readU32(d[k]!, COOKIE_RECEIVER))) cookies++;
              else strayReplies++;
            } else strayReplies++;
          }
        });
        floods.push(l);
        open.push(l);
      }
      const to = encodeUdpAddress({ address: '127.0.0.1', port: b.localPort });
      const rnd = new Uint8Array(4);
      let flooded = 0;
      let badMac1 = 0;
      const floodOne = () => {
        const l = floods[flooded % SOURCES]!;
        const slot = l.txSlot();
        slot.set(templates[flooded % templates.length]!);
        base.randomBytes(rnd);
        const index = readU32(rnd, 0);
        writeU32(slot, INIT_SENDER, index);
        maker.stamp(slot, INIT_MAC1, 0);
        if (flooded % BAD_MAC1_EVERY === 0) {
          slot[INIT_MAC1] = slot[INIT_MAC1]! ^ 0xff;
          badMac1++;
        } else {
          sentIndexes.add(index);
        }
        l.txCommitTo(INIT_LEN, to, 0);
        flooded++;
      };

      const rec = Buffer.alloc(1000, 0x44);
      const sent = { a: 0, b: 0 };
      const dh0 = counted.dh.count;
      const t0 = performance.now();
      let rekeyStarted = false;
      let connectAt = 0;
      let initiations0 = 0;
      let loadSeen = false;
      while (flooded < FLOOD) {
        const el = performance.now() - t0;
        const due = Math.min(FLOOD, Math.ceil(((el + 5) / FLOOD_MS) * FLOOD));
        while (flooded < due) floodOne();
        for (let k = 0; k < 4; k++) {
          expect(a.sendAoe(ab, rec)).toBe(Send.OK);
          sent.a++;
          expect(b.sendAoe(ba, rec)).toBe(Send.OK);
          sent.b++;
        }
        if (!rekeyStarted && el > FLOOD_MS / 3) {
          // A legitimate new handshake in the middle of the flood.
          rekeyStarted = true;
          initiations0 = a.stats().tunnel.txInitiation;
          connectAt = performance.now();
          expect(a.connect(ab)).toBe(Send.OK);
        }
        loadSeen ||= b.endpoint.load.underLoad(b.now());
        await sleep(5);
      }
      const floodMs = performance.now() - t0;
      expect(await waitFor(() => got.b >= sent.a && got.a >= sent.b, 5000, 5)).toBe(true);
      await sleep(100);
      const sb = b.stats();
      const validMac1 = flooded - badMac1;
      const dhOps = counted.dh.count - dh0;
      // Reported for the lead's benefit; the assertions follow.
      process.stderr.write(
        `flood: ${flooded} in ${Math.round(floodMs)} ms (${badMac1} bad mac1); cookies at flooder ${cookies}; ` +
          `responder rx cookie_sent ${sb.tunnel.rx[Rx.COOKIE_SENT]} bad_mac1 ${sb.tunnel.rx[Rx.BAD_MAC1]} ` +
          `rate_limited ${sb.tunnel.rx[Rx.RATE_LIMITED]} unknown_peer ${sb.tunnel.rx[Rx.UNKNOWN_PEER]}; DH ops ${dhOps}; ` +
          `records a->b ${got.b}/${sent.a}, b->a ${got.a}/${sent.b}\n`,
      );

      // 1. The established session's records all arrived, both ways.
      expect(got.b).toBe(sent.a);
      expect(got.a).toBe(sent.b);
      // 2. Every bad-mac1 initiation was dropped before anything else; none was answered.
      expect(sb.tunnel.rx[Rx.BAD_MAC1]).toBe(badMac1);
      expect(strayReplies).toBe(0);
      // 3. Cookie mode came on and the flood got cookie replies (a few of the first messages went to
      //    the rate limiter or the DH instead), all of them delivered to the flooder.
      expect(loadSeen).toBe(true);
      expect(sb.driver.loadEntered).toBe(driverSignal ? 1 : 0);
      expect(cookies + a.stats().tunnel.rx[Rx.COOKIE]!).toBe(sb.tunnel.txCookieReply);
      expect(cookies).toBeGreaterThanOrEqual(validMac1 * 0.95);
      // 4. The responder's Diffie-Hellman work is bounded: only initiations that passed mac1 before
      //    cookie mode, within the per-source burst (5), reached the DH (2 each: es and ss, then the
      //    unknown static key stops them), plus A's legitimate handshake (2 + 3). The driver's signal
      //    turns cookie mode on before the first flood batch is processed, so there it is none.
      const reachedDh = sb.tunnel.rx[Rx.UNKNOWN_PEER]! + sb.tunnel.rx[Rx.HANDSHAKE_FAILED]!;
      expect(reachedDh).toBeLessThanOrEqual(driverSignal ? 0 : SOURCES * 5);
      expect(dhOps).toBeLessThanOrEqual(2 * reachedDh + 5 * 2);
      // 5. A's handshake during the flood was answered with a cookie, resent at once with mac2 (no
      //    wait for the 5 s retry timer: exactly two initiations) and completed within one extra
      //    round trip (loopback: well under a second even with the responder busy).
      expect(a.stats().tunnel.rx[Rx.COOKIE]).toBeGreaterThanOrEqual(1);
      expect(completed.a).toBe(2);
      expect(completed.b).toBe(2);
      process.stderr.write(
        `flood: legitimate handshake under load took ${(completedAt - connectAt).toFixed(1)} ms\n`,
      );
      expect(completedAt - connectAt).toBeLessThan(1000);
      expect(a.stats().tunnel.txInitiation - initiations0).toBe(2);
      // 6. Cookie mode ends after the flood (1 s hold), and then a handshake needs no cookie.
      expect(await waitFor(() => !b.endpoint.load.underLoad(b.now()), 4000, 20)).toBe(true);
      expect(b.underLoad).toBe(false);
      const cookieSent = sb.tunnel.rx[Rx.COOKIE_SENT]!;
      a.connect(ab);
      expect(await waitFor(() => completed.a === 3 && completed.b === 3, 5000, 5)).toBe(true);
      expect(b.stats().tunnel.rx[Rx.COOKIE_SENT]).toBe(cookieSent);
    });
  }
});

/**
 * The handshake rate limit keys IPv6 sources by /64 (issue 7 #12), over real sockets: an attacker
 * namespace holding eight addresses of one /64 sends genuine initiations (valid mac1, random static
 * keys) from all of them; together they get one bucket (burst 5) of Diffie-Hellman work, not eight.
 * An address in another /64 of the same host still gets its own bucket.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeUdpAddress } from '../../src/io/udp-address.js';
import { UdpLink } from '../../src/io/udp-link.js';
import { type CryptoBackend, loadCrypto } from '../../src/tunnel/crypto.js';
import { type DatagramSink, Rx, TunnelEndpoint } from '../../src/tunnel/endpoint.js';
import { INIT_LEN } from '../../src/tunnel/messages.js';
import { UdpTunnel } from '../../src/tunnel/udp-tunnel.js';
import { Netns, netnsSkipReason, vethPair } from '../helpers/netns.js';
import { waitFor } from '../helpers/wait.js';

const skip = netnsSkipReason();
const PER_ADDRESS = 3;
const BURST = 5;

/** Genuine initiations to `responder` from `n` random static keys. */
function initiations(crypto: CryptoBackend, responder: Uint8Array, n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  const buf = new Uint8Array(2048);
  const sink: DatagramSink = { buffer: () => buf, send: (len) => out.push(buf.slice(0, len)) };
  for (let i = 0; i < n; i++) {
    const ep = new TunnelEndpoint({
      crypto,
      staticKeyPair: crypto.x25519KeyPair(),
      sink,
      clockOffsetMs: Date.now(),
    });
    const peer = ep.addPeer({
      publicKey: responder,
      endpoint: encodeUdpAddress({ address: '::1', port: 1 }),
    });
    ep.initiate(peer, 1);
    ep.destroy();
  }
  return out;
}

describe.skipIf(skip)('handshake rate limit over IPv6', () => {
  let nsX: Netns;
  let nsB: Netns;
  let crypto: CryptoBackend;
  const open: { close(): void }[] = [];
  const attackers = Array.from({ length: 8 }, (_, i) => `fd87:1:0:1::${(i + 16).toString(16)}`);
  const otherPrefix = 'fd87:1:0:2::99';

  beforeAll(async () => {
    crypto = await loadCrypto('sodium-native');
    nsX = new Netns('rlx');
    nsB = new Netns('rlb');
    const v = vethPair(nsX, nsB);
    for (const a of [...attackers, otherPrefix]) nsX.ip('-6', 'addr', 'add', `${a}/64`, 'dev', v.a, 'nodad');
    nsB.ip('-6', 'addr', 'add', 'fd87:1:0:ff::1/64', 'dev', v.b, 'nodad');
    nsX.ip('-6', 'route', 'add', 'fd87:1:0:ff::/64', 'dev', v.a);
    nsB.ip('-6', 'route', 'add', 'fd87:1::/48', 'dev', v.b);
  });
  afterAll(() => {
    for (const o of open.splice(0)) o.close();
    nsX?.delete();
    nsB?.delete();
  });

  it('eight addresses of one /64 share one bucket; another /64 has its own', async () => {
    const kb = crypto.x25519KeyPair();
    const b = UdpTunnel.open({
      crypto,
      staticKeyPair: kb,
      family: 6,
      address: 'fd87:1:0:ff::1',
      port: 0,
      netns: nsB.name,
      // No cookie mode: this is about the per-source limit alone. A rate so low nothing refills.
      load: false,
      loadThreshold: 1_000_000,
      rateLimit: { burst: BURST, ratePerSecond: 0.01 },
    });
    open.push(b);
    const to = encodeUdpAddress({ address: 'fd87:1:0:ff::1', port: b.localPort });
    const msgs = initiations(crypto, kb.publicKey, attackers.length * PER_ADDRESS + 1);
    let m = 0;
    for (const address of attackers) {
      const l = UdpLink.open({ family: 6, address, port: 0, netns: nsX.name });
      open.push(l);
      for (let k = 0; k < PER_ADDRESS; k++) {
        l.txSlot().set(msgs[m++]!);
        l.txCommitTo(INIT_LEN, to, 0);
      }
      l.flush();
    }
    const sent = attackers.length * PER_ADDRESS;
    const handled = () => b.stats().tunnel.rx[Rx.UNKNOWN_PEER]! + b.stats().tunnel.rx[Rx.RATE_LIMITED]!;
    expect(await waitFor(() => handled() === sent, 3000, 10)).toBe(true);
    const st = b.stats().tunnel;
    // Only the /64's one burst reached the Diffie-Hellman (and stopped at the unknown static key).
    expect(st.rx[Rx.UNKNOWN_PEER]).toBe(BURST);
    expect(st.rx[Rx.RATE_LIMITED]).toBe(sent - BURST);

    // The same host's address in another /64 is another source.
    const other = UdpLink.open({ family: 6, address: otherPrefix, port: 0, netns: nsX.name });
    open.push(other);
    other.txSlot().set(msgs[m++]!);
    other.txCommitTo(INIT_LEN, to, 0);
    other.flush();
    expect(await waitFor(() => b.stats().tunnel.rx[Rx.UNKNOWN_PEER] === BURST + 1, 3000, 10)).toBe(true);
    expect(b.stats().tunnel.rx[Rx.RATE_LIMITED]).toBe(sent - BURST);
  });
});

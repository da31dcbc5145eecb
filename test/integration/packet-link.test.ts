/**
 * The addon moves AoE frames both ways between two namespaces over a veth pair with no loss at a
 * bounded rate, at MTU 1500 and 9000, and reports clear errors for bad interfaces.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAoegwError } from '../../src/errors.js';
import { interfaceInfo, PacketLink } from '../../src/io/index.js';
import { TapLink } from '../../src/io/tap-link.js';
import { Netns, netnsSkipReason, vethPair } from '../helpers/netns.js';

const skip = netnsSkipReason();

/** Builds a broadcast-free AoE-typed frame carrying a sequence number. */
function fillFrame(buf: Buffer, dst: Buffer, src: Buffer, seq: number, len: number): number {
  dst.copy(buf, 0);
  src.copy(buf, 6);
  buf.writeUInt16BE(0x88a2, 12);
  buf.writeUInt32BE(seq, 14);
  for (let i = 18; i < len; i++) buf[i] = (seq + i) & 0xff;
  return len;
}

function checkFrame(buf: Buffer, len: number, expectLen: number): number {
  if (len !== expectLen) return -1;
  const seq = buf.readUInt32BE(14);
  for (let i = 18; i < len; i += 97) if (buf[i] !== ((seq + i) & 0xff)) return -2;
  return seq;
}

/** Sends `total` frames from `tx` to `rx` in bursts of `burst`, waiting for each burst to arrive. */
async function transfer(tx: PacketLink, rx: PacketLink, total: number, frameLen: number, burst: number) {
  const seen = new Set<number>();
  let bad = 0;
  let waiter: (() => void) | undefined;
  rx.onBatch((frames, lens, count) => {
    for (let i = 0; i < count; i++) {
      const seq = checkFrame(frames[i]!, lens[i]!, frameLen);
      if (seq < 0) bad++;
      else seen.add(seq);
    }
    waiter?.();
  });
  for (let sent = 0; sent < total; ) {
    const n = Math.min(burst, total - sent);
    for (let i = 0; i < n; i++) {
      const slot = tx.txSlot();
      tx.txCommit(fillFrame(slot, rx.mac, tx.mac, sent + i, frameLen));
    }
    tx.flush();
    sent += n;
    const deadline = Date.now() + 2000;
    while (seen.size < sent && Date.now() < deadline) {
      await new Promise<void>((r) => {
        waiter = r;
        setTimeout(r, 50);
      });
    }
  }
  rx.pause();
  return { seen, bad };
}

describe.skipIf(skip)('PacketLink between two namespaces', () => {
  let nsA: Netns;
  let nsB: Netns;
  const links: PacketLink[] = [];

  beforeAll(() => {
    nsA = new Netns('lka');
    nsB = new Netns('lkb');
  });
  afterAll(() => {
    for (const l of links) l.close();
    nsA?.delete();
    nsB?.delete();
  });

  for (const mtu of [1500, 9000]) {
    it(`moves frames both ways with no loss at MTU ${mtu}`, async () => {
      const v = vethPair(nsA, nsB, mtu);
      const a = PacketLink.open({ iface: v.a, netns: nsA.name });
      const b = PacketLink.open({ iface: v.b, netns: nsB.name });
      links.push(a, b);
      expect(a.mtu).toBe(mtu);
      expect(a.maxFrame).toBe(mtu + 14);
      expect(interfaceInfo(v.a, nsA.name).mac.equals(a.mac)).toBe(true);
      const frameLen = mtu === 1500 ? 1060 : 8740;
      const ab = await transfer(a, b, 20_000, frameLen, 256);
      expect(ab.bad).toBe(0);
      expect(ab.seen.size).toBe(20_000);
      const ba = await transfer(b, a, 20_000, frameLen, 256);
      expect(ba.bad).toBe(0);
      expect(ba.seen.size).toBe(20_000);
      const sa = a.stats();
      const sb = b.stats();
      expect(sa.txFrames).toBe(20_000);
      expect(sb.rxFrames).toBe(20_000);
      expect(sb.kernelDrops + sa.kernelDrops).toBe(0);
      // Batching is real: far fewer receive wakeups than frames.
      expect(sb.rxBatches).toBeLessThan(sb.rxFrames / 4);
    });
  }

  it('rejects a frame larger than the MTU with ERR_FRAME_TOO_LARGE', () => {
    const v = vethPair(nsA, nsB, 1500);
    const a = PacketLink.open({ iface: v.a, netns: nsA.name });
    links.push(a);
    expect(() => a.send(Buffer.alloc(1600))).toThrow(
      expect.objectContaining({ code: 'ERR_FRAME_TOO_LARGE' }),
    );
    const slot = a.txSlot();
    slot.fill(0);
    a.txCommit(1515); // one byte over MTU + 14, caught by the addon
    let err: unknown;
    try {
      a.flush();
    } catch (e) {
      err = e;
    }
    expect(isAoegwError(err, 'ERR_FRAME_TOO_LARGE')).toBe(true);
  });

  it('names the problem: unknown interface, interface down, bad namespace', () => {
    expect(() => PacketLink.open({ iface: 'nope0', netns: nsA.name })).toThrow(
      expect.objectContaining({ code: 'ERR_NO_SUCH_INTERFACE' }),
    );
    expect(() => PacketLink.open({ iface: 'a-name-way-too-long-for-linux' })).toThrow(
      expect.objectContaining({ code: 'ERR_NO_SUCH_INTERFACE' }),
    );
    const v = vethPair(nsA, nsB, 1500);
    nsA.ip('link', 'set', v.a, 'down');
    expect(() => PacketLink.open({ iface: v.a, netns: nsA.name })).toThrow(
      expect.objectContaining({ code: 'ERR_INTERFACE_DOWN' }),
    );
    expect(() => PacketLink.open({ iface: 'lo', netns: 'aoegw-no-such-namespace' })).toThrow(
      expect.objectContaining({ code: 'ERR_NETNS' }),
    );
    // Too long to be a path: an error, never a silent fallback to the current namespace.
    expect(() => PacketLink.open({ iface: 'lo', netns: `/${'x'.repeat(5000)}` })).toThrow(
      expect.objectContaining({ code: 'ERR_NETNS' }),
    );
  });

  it('a TAP device carries frames both ways with its kernel side', async () => {
    const tap = TapLink.open({ name: `agtap${process.pid % 10000}`, netns: nsA.name, mtu: 1500 });
    const kernelSide = PacketLink.open({ iface: tap.name, netns: nsA.name });
    links.push(kernelSide);
    try {
      const got: number[] = [];
      tap.onBatch((frames, lens, count) => {
        // A TAP sees every frame the kernel sends (IPv6 neighbour discovery too): keep AoE only.
        for (let i = 0; i < count; i++) {
          if (frames[i]!.readUInt16BE(12) === 0x88a2) got.push(checkFrame(frames[i]!, lens[i]!, 200));
        }
      });
      const fromTap: number[] = [];
      kernelSide.onBatch((frames, lens, count) => {
        for (let i = 0; i < count; i++) fromTap.push(checkFrame(frames[i]!, lens[i]!, 200));
      });
      for (let i = 0; i < 100; i++)
        kernelSide.txCommit(fillFrame(kernelSide.txSlot(), tap.mac, kernelSide.mac, i, 200));
      for (let i = 0; i < 100; i++)
        tap.txCommit(fillFrame(tap.txSlot(), kernelSide.mac, tap.mac, 1000 + i, 200));
      const deadline = Date.now() + 3000;
      while ((got.length < 100 || fromTap.length < 100) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(got).toEqual(Array.from({ length: 100 }, (_, i) => i));
      expect(fromTap).toEqual(Array.from({ length: 100 }, (_, i) => 1000 + i));
    } finally {
      tap.close();
    }
  });

  it('a TAP frame longer than its slots is counted as truncated and never delivered as data', async () => {
    const name = `agtr${process.pid % 10000}`;
    const tap = TapLink.open({ name, netns: nsA.name, mtu: 1500 });
    try {
      nsA.ip('link', 'set', name, 'mtu', '9000');
      const kernelSide = PacketLink.open({ iface: name, netns: nsA.name });
      links.push(kernelSide);
      const lengths: number[] = [];
      tap.onBatch((frames, lens, count) => {
        for (let i = 0; i < count; i++)
          if (lens[i]! <= 0 || frames[i]!.readUInt16BE(12) === 0x88a2) lengths.push(lens[i]!);
      });
      kernelSide.txCommit(fillFrame(kernelSide.txSlot(), tap.mac, kernelSide.mac, 1, 4000));
      kernelSide.txCommit(fillFrame(kernelSide.txSlot(), tap.mac, kernelSide.mac, 2, 200));
      const deadline = Date.now() + 3000;
      while (lengths.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(lengths[0]).toBeLessThan(0); // truncated: only "longer than the slot" is known
      expect(lengths[1]).toBe(200);
      expect(tap.stats().rxTruncated).toBe(1);
    } finally {
      tap.close();
    }
  });
});

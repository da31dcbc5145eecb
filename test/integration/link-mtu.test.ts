import { describe, expect, it } from 'vitest';
import { Initiator } from '../../src/initiator/initiator.js';
import { discover, identify } from '../../src/initiator/operations.js';
import { verifyPattern } from '../../src/initiator/verify.js';
import type { LinkStateEvent } from '../../src/io/frame-link.js';
import { PacketLink } from '../../src/io/packet-link.js';
import { netnsSkipReason, vethPair } from '../helpers/netns.js';
import { useServePair } from '../helpers/serve-pair.js';
import { sleep, waitFor } from '../helpers/wait.js';

const skip = netnsSkipReason();

function frame(link: PacketLink, dst: Buffer, seq: number, len: number): void {
  const b = link.txSlot();
  dst.copy(b, 0);
  link.mac.copy(b, 6);
  b.writeUInt16BE(0x88a2, 12);
  b.writeUInt32BE(seq, 14);
  link.txCommit(len);
}

describe.skipIf(skip)('MTU lowered at runtime', () => {
  const site = useServePair('mt');

  it('a send batch with one oversized frame still sends the others, and the link reports the new MTU', async () => {
    const v = vethPair(site.nsI, site.nsT, 9000);
    const a = PacketLink.open({ iface: v.a, netns: site.nsI.name });
    const b = PacketLink.open({ iface: v.b, netns: site.nsT.name });
    site.track(a);
    site.track(b);
    const got: number[] = [];
    b.onBatch((frames, lens, count) => {
      for (let i = 0; i < count; i++) if (lens[i]! > 0) got.push(frames[i]!.readUInt32BE(14));
    });
    const events: LinkStateEvent[] = [];
    a.onLinkState((e) => events.push(e));
    // Lower the MTU under the link: it still believes 9000, so only the kernel can refuse.
    site.nsI.ip('link', 'set', v.a, 'mtu', '1500');
    frame(a, b.mac, 1, 1000);
    frame(a, b.mac, 2, 5000);
    frame(a, b.mac, 3, 1000);
    frame(a, b.mac, 4, 1200);
    expect(a.flush()).toBe(3);
    expect(await waitFor(() => got.length >= 3, 2000)).toBe(true);
    expect(got).toEqual([1, 3, 4]);
    expect(a.stats().txOversized).toBe(1);
    // The EMSGSIZE made the link re-read its MTU (well before the periodic check).
    expect(await waitFor(() => events.length > 0, 300)).toBe(true);
    expect(events[0]).toMatchObject({ state: 'up', mtu: 1500, reason: 'changed' });
    expect(a.mtu).toBe(1500);
    expect(a.maxFrame).toBe(1514);
    // Now oversized frames are caught before the kernel, still one by one.
    frame(a, b.mac, 5, 1514);
    frame(a, b.mac, 6, 1515);
    frame(a, b.mac, 7, 60);
    expect(a.flush()).toBe(2);
    expect(await waitFor(() => got.length >= 5, 2000)).toBe(true);
    expect(got.slice(3)).toEqual([5, 7]);
    expect(a.stats().txOversized).toBe(2);
  });

  it('aoegw serve re-announces with the new sectors per frame; a re-discovering initiator works', async () => {
    const { v, srv } = await site.serveOnNewPair({ mtu: 9000, target: '4.2', bytes: 8 << 20 });
    const ini1 = new Initiator(PacketLink.open({ iface: v.a, netns: site.nsI.name }));
    site.track(ini1);
    const [t1] = await discover(ini1, 300);
    expect(t1?.sectorsPerFrame).toBe(17);
    const c1 = ini1.client((await ini1.queryConfig(200, { major: 4, minor: 2 }))[0]!);
    const id = await identify(ini1, c1);
    const r1 = await verifyPattern(ini1, c1, { startLba: 0, sectors: 4096, seed: 9, identity: id });
    expect(r1.mismatches).toBe(0);

    site.nsT.ip('link', 'set', v.b, 'mtu', '1500');
    site.nsI.ip('link', 'set', v.a, 'mtu', '1500');
    expect(
      await waitFor(() => /up \(changed\), mtu 1500, re-announced 1/.test(srv.output()), 5000),
      srv.output(),
    ).toBe(true);
    ini1.close();
    await sleep(50);

    const ini2 = new Initiator(PacketLink.open({ iface: v.a, netns: site.nsI.name }));
    site.track(ini2);
    const [t2] = await discover(ini2, 300);
    expect(t2?.sectorsPerFrame).toBe(2);
    const c2 = ini2.client((await ini2.queryConfig(200, { major: 4, minor: 2 }))[0]!);
    // What was written at MTU 9000 reads back at 1500, and new writes verify.
    const back = await verifyPattern(ini2, c2, {
      startLba: 0,
      sectors: 4096,
      seed: 9,
      readOnly: true,
      identity: id,
    });
    expect(back.mismatches).toBe(0);
    const r2 = await verifyPattern(ini2, c2, { startLba: 4096, sectors: 4096, seed: 10, identity: id });
    expect(r2.mismatches).toBe(0);
    expect(srv.child.exitCode).toBeNull();
  }, 60_000);
});

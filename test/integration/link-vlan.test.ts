/**
 * Issue 7 item 2: the kernel strips an 802.1Q tag before a packet socket sees the frame, so a
 * tagged AoE frame from another VLAN looked native and was served ("VLAN jumping"); and frames for
 * another host's MAC (seen in promiscuous mode) reached the engine. The addon now drops both and
 * counts them. An attacker with a raw socket in another namespace sends them, for real.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { encodeAtaRequest } from '../../src/aoe/ata.js';
import { AtaFlag, AtaOp, Command } from '../../src/aoe/constants.js';
import { interfaceInfo, PacketLink } from '../../src/io/packet-link.js';
import { netnsSkipReason, vethPair } from '../helpers/netns.js';
import type { Spawned } from '../helpers/processes.js';
import { useServePair } from '../helpers/serve-pair.js';
import { sleep, waitFor } from '../helpers/wait.js';

const skip = netnsSkipReason();
const OTHER_HOST = Buffer.from([0x02, 0x00, 0x5e, 0x10, 0x20, 0x99]);

/** A 2-sector ATA WRITE (28-bit LBA) to shelf.slot, filled with `fill`. */
function ataWrite(
  dst: Buffer,
  src: Buffer,
  shelf: number,
  slot: number,
  lba: number,
  tag: number,
  fill: number,
) {
  const out = Buffer.alloc(1100);
  const n = encodeAtaRequest(
    out,
    { dst, src, flags: 0, error: 0, major: shelf, minor: slot, command: Command.ATA, tag },
    { aflags: AtaFlag.WRITE, errFeature: 0, sectorCount: 2, cmdStatus: AtaOp.WRITE_SECTORS, lba },
    Buffer.alloc(1024, fill),
  );
  return out.subarray(0, n);
}

/** The same frame with an 802.1Q tag (TPID 0x8100, VID `vid`) inserted after the MACs. */
function tagged(frame: Buffer, vid: number): Buffer {
  const t = Buffer.from([0x81, 0x00, (vid >> 8) & 0x0f, vid & 0xff]);
  return Buffer.concat([frame.subarray(0, 12), t, frame.subarray(12)]);
}

/** Counts AoE responses with the given tag arriving on `link`. */
function replies(link: PacketLink): Map<number, number> {
  const seen = new Map<number, number>();
  link.onBatch((frames, lens, count) => {
    for (let i = 0; i < count; i++) {
      const f = frames[i]!;
      if (lens[i]! < 24 || (f[14]! & 0x08) === 0) continue;
      const tag = f.readUInt32BE(20);
      seen.set(tag, (seen.get(tag) ?? 0) + 1);
    }
  });
  return seen;
}

async function serverLinkStats(srv: Spawned, name: string): Promise<Record<string, number>> {
  const before = srv.output().length;
  srv.child.kill('SIGUSR1');
  await waitFor(() => srv.output().slice(before).includes('{"engine"'), 3000);
  const line = srv
    .output()
    .slice(before)
    .split('\n')
    .find((l) => l.startsWith('{"engine"'))!;
  return JSON.parse(line).links[name];
}

describe.skipIf(skip)('frames from other VLANs and for other hosts are dropped and counted', () => {
  const site = useServePair('vl');

  it('aoegw serve: a tagged WRITE (VID 100) and an other-host WRITE do not land and get no reply', async () => {
    const { v, img, srv } = await site.serveOnNewPair({ mtu: 1500, target: '7.1', bytes: 1 << 20 });
    site.nsT.ip('link', 'set', v.b, 'promisc', 'on');
    const attacker = PacketLink.open({ iface: v.a, netns: site.nsI.name });
    site.track(attacker);
    const seen = replies(attacker);
    const targetMac = interfaceInfo(v.b, site.nsT.name).mac;

    // Tagged, for this target's MAC: VLAN 100 from a trunk port.
    for (let i = 0; i < 5; i++)
      attacker.send(tagged(ataWrite(targetMac, attacker.mac, 7, 1, 8, 0x100 + i, 0xa5), 100));
    // Untagged, for another host's MAC: seen only because the target's port is promiscuous.
    for (let i = 0; i < 5; i++) attacker.send(ataWrite(OTHER_HOST, attacker.mac, 7, 1, 16, 0x200 + i, 0x5a));
    attacker.flush();
    await sleep(500);
    // Control: the same WRITE, untagged and addressed to the target, is served.
    attacker.send(ataWrite(targetMac, attacker.mac, 7, 1, 24, 0x300, 0x3c));
    attacker.flush();
    expect(await waitFor(() => seen.has(0x300), 3000), srv.output()).toBe(true);

    for (let i = 0; i < 5; i++) {
      expect(seen.has(0x100 + i)).toBe(false);
      expect(seen.has(0x200 + i)).toBe(false);
    }
    const disk = readFileSync(img);
    expect(disk.subarray(8 * 512, 10 * 512).every((b) => b === 0)).toBe(true);
    expect(disk.subarray(16 * 512, 18 * 512).every((b) => b === 0)).toBe(true);
    expect(disk.subarray(24 * 512, 26 * 512).every((b) => b === 0x3c)).toBe(true);
    const st = await serverLinkStats(srv, v.b);
    expect(st.rxVlanDropped).toBe(5);
    expect(st.rxOtherHostDropped).toBe(5);
    expect(srv.child.exitCode).toBeNull();
  }, 30_000);

  // Both receive paths filter: the ring (default; metadata from the frame header) and recvmmsg
  // (sockaddr_ll and auxdata per message).
  for (const rxRing of [true, false]) {
    it(`PacketLink (what the initiator uses too) delivers only untagged frames for this host (${rxRing ? 'ring' : 'recvmmsg'})`, async () => {
      const v = vethPair(site.nsI, site.nsT, 1500);
      site.nsT.ip('link', 'set', v.b, 'promisc', 'on');
      const tx = PacketLink.open({ iface: v.a, netns: site.nsI.name });
      const rx = PacketLink.open({ iface: v.b, netns: site.nsT.name, rxRing });
      expect(rx.rxRingActive).toBe(rxRing);
      site.track(tx);
      site.track(rx);
      const seen = replies(rx);
      const frame = (dst: Buffer, tag: number) => {
        // A "response" so the helper counts it; content is irrelevant to the filter.
        const f = ataWrite(dst, tx.mac, 1, 1, 0, tag, 0);
        f[14] = f[14]! | 0x08;
        return f;
      };
      // Interleaved in one batch so the kept frames must be compacted past the dropped ones.
      for (let i = 0; i < 20; i++) {
        tx.send(tagged(frame(rx.mac, 0x1000 + i), 100 + i));
        tx.send(frame(OTHER_HOST, 0x2000 + i));
        tx.send(frame(rx.mac, 0x3000 + i));
        tx.send(frame(Buffer.alloc(6, 0xff), 0x4000 + i));
      }
      tx.flush();
      await waitFor(() => seen.size >= 40, 3000);
      await sleep(200);
      const tags = [...seen.keys()].sort((a, b) => a - b);
      expect(tags).toEqual([
        ...Array.from({ length: 20 }, (_, i) => 0x3000 + i),
        ...Array.from({ length: 20 }, (_, i) => 0x4000 + i),
      ]);
      const s = rx.stats();
      expect(s.rxVlanDropped).toBe(20);
      expect(s.rxOtherHostDropped).toBe(20);
      expect(s.rxFrames).toBe(40);
    }, 30_000);
  }
});

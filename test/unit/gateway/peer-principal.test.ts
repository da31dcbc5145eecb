/**
 * Side B without sockets: two peers' TunnelPeerLinks (PeerPort pipes) and a local link (in-memory
 * segment) into one TargetServer, peer links carrying the peer's key as principal namespace (as the
 * daemon configures them). A reservation made by an initiator behind P1 must hold against the
 * same MAC behind P2 and on the local segment.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type AoeMessage, decodeFrame, encodeFrame } from '../../../src/aoe/index.js';
import { ExportSide } from '../../../src/gateway/export-side.js';
import { TunnelPeerLink } from '../../../src/gateway/peer-link.js';
import { RESPONSE_PREFIX } from '../../../src/gateway/peer-messages.js';
import type { PeerPort } from '../../../src/gateway/peer-port.js';
import { FakeSegment } from '../../../src/io/fake-link.js';
import type { FrameLink } from '../../../src/io/frame-link.js';
import { TargetServer } from '../../../src/target/server.js';
import type { LinkSpec } from '../../../src/target/spec.js';
import { reserve, write } from '../target/helpers.js';
import { requestRecord } from './helpers.js';

const X = '52:54:00:00:00:01';
const KEY1 = 'a1'.repeat(32);
const KEY2 = 'b2'.repeat(32);
const dir = mkdtempSync(join(tmpdir(), 'aoegw-gw-principal-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A PeerPort whose records land in `out` (decoded as frames). */
function pipe(name: string): PeerPort & { out: AoeMessage[] } {
  const out: AoeMessage[] = [];
  return {
    name,
    out,
    connected: () => true,
    reachable: () => true,
    lastHeardAt: () => 0,
    nudge: () => {},
    send: (_type, buf, off, len) => {
      // [epoch][seq] of the request answered, then the PDU.
      const pdu = buf.subarray(off + RESPONSE_PREFIX, off + len);
      const f = Buffer.alloc(14 + pdu.length);
      f.writeUInt16BE(0x88a2, 12);
      Buffer.from(pdu).copy(f, 14);
      const d = decodeFrame(f);
      if (d.ok) out.push(d.value);
      return true;
    },
  };
}

const until = async (cond: () => boolean, ms = 2000) => {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
  expect(cond()).toBe(true);
};

describe('principals across the tunnel', () => {
  it('a reservation behind P1 blocks the same MAC behind P2 and on a local link (error 6); P1 still writes', async () => {
    const port1 = pipe('p1');
    const port2 = pipe('p2');
    const link1 = new TunnelPeerLink(port1, 0, 1500);
    const link2 = new TunnelPeerLink(port2, 1, 1500);
    const side = new ExportSide(new Map([[1 * 256 + 0, 16]]), null);
    const grant = [{ shelf: 1, slot: 0, readOnly: false }];
    side.addPeer(port1, grant, link1);
    side.addPeer(port2, grant, link2);
    const seg = new FakeSegment();
    const targetLink = seg.attach({ name: 'eth0', mtu: 1500 });
    const ini = seg.attach({ name: 'ini', mac: X, mtu: 1500 });
    const localReplies: AoeMessage[] = [];
    ini.onBatch((frames, lens, n) => {
      for (let i = 0; i < n; i++) {
        const d = decodeFrame(frames[i]!.subarray(0, lens[i]!));
        if (d.ok && d.value.response) localReplies.push(d.value);
      }
    });
    const spec = (name: string, principal?: string): LinkSpec => ({
      name,
      iface: name,
      batch: 64,
      busyPollUs: 0,
      ...(principal !== undefined ? { principal } : {}),
    });
    const links = new Map<string, FrameLink>([
      ['eth0', targetLink],
      [link1.name, link1],
      [link2.name, link2],
    ]);
    const server = TargetServer.start(
      {
        stateFile: join(dir, 'state.json'),
        links: [spec('eth0'), spec(link1.name, KEY1), spec(link2.name, KEY2)],
        exports: [
          {
            shelf: 1,
            slot: 0,
            path: 'memory:1m',
            readOnly: false,
            durability: 'sync',
            offset: 0,
            bufferCount: 16,
            links: [],
            allowMacs: [],
          },
        ],
      },
      { openLink: (l) => links.get(l.name)! },
    );
    try {
      /** An AOE_REQUEST record from initiator X behind `peer`: [MAC][PDU]. */
      const viaPeer = (peer: string, frame: Buffer) => {
        const rec = requestRecord(frame.subarray(6, 12), frame);
        side.handleRequest(peer, rec, 0, rec.length, 0);
        side.endBatch();
      };
      const data = Buffer.alloc(512, 0x5a);
      viaPeer('p1', reserve({ tag: 1, src: X, rcmd: 1, macs: [X] }));
      // The reply is held until the state file has the reservation.
      await until(() => port1.out.some((m) => m.tag === 1));
      expect(port1.out.find((m) => m.tag === 1)).toMatchObject({ errorFlag: false, macs: [X] });
      viaPeer('p2', write(0, data, { tag: 2, src: X }));
      expect(port2.out.find((m) => m.tag === 2)).toMatchObject({ errorFlag: true, error: 6 });
      ini.send(encodeFrame(decodeOk(write(0, data, { tag: 3, src: X, dst: fmt(targetLink.mac) }))));
      ini.flush();
      await until(() => localReplies.some((m) => m.tag === 3));
      expect(localReplies.find((m) => m.tag === 3)).toMatchObject({ errorFlag: true, error: 6 });
      viaPeer('p1', write(0, data, { tag: 4, src: X }));
      expect(port1.out.find((m) => m.tag === 4)).toMatchObject({ errorFlag: false, cmdStatus: 0x40 });
      // P2 and the local initiator see no reservation entry of theirs (P1's MAC is not disclosed).
      viaPeer('p2', reserve({ tag: 5, src: X, rcmd: 0 }));
      expect(port2.out.find((m) => m.tag === 5)).toMatchObject({ errorFlag: false, macs: [] });
      const st = server.engine.exportState('e1.0')!;
      expect(st.reserve).toEqual([{ ns: KEY1, mac: Buffer.from('525400000001', 'hex') }]);
    } finally {
      server.stop();
    }
  });
});

function decodeOk(f: Buffer): AoeMessage {
  const d = decodeFrame(f);
  if (!d.ok) throw d.error;
  return d.value;
}

function fmt(mac: Buffer): string {
  return [...mac].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

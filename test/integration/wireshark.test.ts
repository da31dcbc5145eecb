/**
 * Wireshark as an independent reader of what the project emits. Our tunnel dissector
 * (deploy/wireshark/aoegw.lua) decodes well-formed messages of every type cleanly and flags each
 * kind of bad message as expert info without failing; on a real gateway pair's routed WAN hop,
 * captured through handshake, I/O and an (unanswered) enrollment attempt, every datagram to or from the gateway port decodes as our
 * protocol with no malformed flag and no expert warning or error. Wireshark's own AoE dissector
 * then decodes every 0x88A2 frame on both LANs (our initiator, both gateways, the built-in target
 * answering an initiator on its LAN directly, vblade) with no malformed flag and no expert warning.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECTOR_SIZE } from '../../src/aoe/constants.js';
import { enrollWithInviter } from '../../src/gateway/enroll-session.js';
import { macMask, queryConfig, reserve } from '../../src/initiator/control.js';
import { Initiator } from '../../src/initiator/initiator.js';
import { identify, readSectors, writeSectors } from '../../src/initiator/operations.js';
import { verifyPattern } from '../../src/initiator/verify.js';
import { PacketLink } from '../../src/io/packet-link.js';
import { loadCrypto } from '../../src/tunnel/crypto.js';
import { ROOT } from '../../support/aoegw.js';
import {
  GATEWAY_PORT,
  type GatewayPair,
  gatewayRunSkipReason,
  startGatewayPair,
} from '../../support/gateway-pair.js';
import { sparseImage } from '../../support/images.js';
import { netnsSkipReason } from '../../support/netns.js';
import { hasCommand, type Spawned, startVblade } from '../../support/processes.js';
import {
  EXPERT_ERROR,
  EXPERT_WARN,
  type TsharkRow,
  tsharkFields,
  tsharkSkipReason,
  udpFrame,
  worstSeverity,
  writePcap,
} from '../../support/tshark.js';
import {
  type Capture,
  type CaptureResult,
  capture,
  captureSkipReason,
  createTwoSite,
  type TwoSite,
} from '../../support/two-site.js';
import { sleep } from '../../support/wait.js';

const tsharkSkip = tsharkSkipReason();
const pairSkip =
  tsharkSkip ??
  netnsSkipReason() ??
  captureSkipReason() ??
  (hasCommand('vblade') ? undefined : 'vblade is not installed') ??
  gatewayRunSkipReason();

const TUNNEL_FIELDS = [
  'frame.number',
  'frame.protocols',
  '_ws.malformed',
  'udp.srcport',
  'udp.dstport',
  'udp.length',
  'aoegw.type',
  'aoegw.plaintext_len',
  '_ws.expert.severity',
  '_ws.expert.message',
];

/** A message of `type` and `len` bytes with a valid header, filled with `fill`. */
function message(type: number, len: number, fill = 0xab): Buffer {
  const b = Buffer.alloc(len, fill);
  b[0] = type;
  b[1] = 1;
  b[2] = 0;
  b[3] = 0;
  return b;
}

/** The malformed flag: an exception in a dissector, or expert info of the group "malformed". */
const isMalformed = (r: TsharkRow) => r['_ws.malformed'] !== '';
/** Lua runtime errors show as expert errors too; keep their text for the failure message. */
const describeRow = (r: TsharkRow) =>
  `frame ${r['frame.number']}: ${r['frame.protocols']} ${r['_ws.expert.message']}`;

describe.skipIf(tsharkSkip)('aoegw.lua on crafted messages', () => {
  it('decodes a well-formed message of every type with no expert info', () => {
    const msgs = [
      message(1, 148),
      message(2, 92),
      message(3, 64),
      message(4, 32),
      message(4, 32 + 96),
      message(5, 164),
    ];
    const rows = tsharkFields(writePcap(msgs.map((m) => udpFrame(m, 7788))), TUNNEL_FIELDS, {
      lua: true,
      prefs: { 'aoegw.port': 7788 },
    });
    expect(rows.map((r) => r['aoegw.type'])).toEqual(['1', '2', '3', '4', '4', '5']);
    expect(rows.map((r) => r['aoegw.plaintext_len'])).toEqual(['', '', '', '0', '96', '']);
    for (const r of rows) {
      expect(isMalformed(r), describeRow(r)).toBe(false);
      expect(r['_ws.expert.message'], describeRow(r)).toBe('');
    }
  });

  it('flags wrong lengths, version, reserved bytes and type as expert errors, without a Lua error', () => {
    const withByte = (m: Buffer, at: number, v: number) => {
      m[at] = v;
      return m;
    };
    const cases: [Buffer, RegExp][] = [
      [message(1, 147), /Handshake Initiation of 147 bytes, expected 148/],
      [message(2, 100), /Handshake Response of 100 bytes, expected 92/],
      [message(3, 10), /Cookie Reply of 10 bytes, expected 64/],
      [message(4, 20), /Transport Data of 20 bytes, expected at least 32/],
      [message(5, 148), /Enrollment Initiation of 148 bytes, expected 164/],
      [withByte(message(4, 48), 2, 1), /Reserved bytes are not zero/],
      [withByte(message(1, 148), 1, 2), /Version 2, expected 1/],
      [message(9, 40), /Unknown message type/],
      [Buffer.from([4, 1]), /shorter than the 4-byte header/],
    ];
    const rows = tsharkFields(writePcap(cases.map(([m]) => udpFrame(m, 7788))), TUNNEL_FIELDS, {
      lua: true,
      prefs: { 'aoegw.port': 7788 },
    });
    expect(rows).toHaveLength(cases.length);
    rows.forEach((r, i) => {
      expect(r['frame.protocols']).toMatch(/:udp:aoegw/);
      expect(r['_ws.expert.message']).toMatch(cases[i]![1]);
      expect(r['_ws.expert.message']).not.toMatch(/Lua Error/);
      expect(worstSeverity(r)).toBe(EXPERT_ERROR);
    });
  });

  it('splits a GSO/GRO super-frame into its transport messages, and only a run of consecutive counters', () => {
    const transport = (counter: number, len: number) => {
      const m = message(4, len);
      m.writeUInt32LE(0x11223344, 4);
      m.writeBigUInt64LE(BigInt(counter), 8);
      return m;
    };
    const run = Buffer.concat([transport(5, 64), transport(6, 64), transport(7, 48)]);
    const broken = Buffer.concat([transport(5, 64), transport(9, 64)]);
    const rows = tsharkFields(
      writePcap([udpFrame(run, 7788), udpFrame(broken, 7788)]),
      [...TUNNEL_FIELDS, 'aoegw.counter', 'aoegw.gso.segments'],
      { lua: true, prefs: { 'aoegw.port': 7788 } },
    );
    expect(rows[0]).toMatchObject({
      'aoegw.type': '4;4;4',
      'aoegw.counter': '5;6;7',
      'aoegw.plaintext_len': '32;32;16',
      'aoegw.gso.segments': '3',
    });
    expect(worstSeverity(rows[0]!)).toBeLessThan(EXPERT_WARN);
    // Not a run: one transport message of 128 bytes, as the datagram says.
    expect(rows[1]).toMatchObject({ 'aoegw.type': '4', 'aoegw.counter': '5', 'aoegw.plaintext_len': '96' });
  });

  it('finds the protocol on another port by heuristic, and by the port preference', () => {
    const pcap = writePcap([udpFrame(message(1, 148), 9999), udpFrame(message(4, 64), 9999)]);
    const heur = tsharkFields(pcap, ['aoegw.type'], { lua: true });
    expect(heur.map((r) => r['aoegw.type'])).toEqual(['1', '4']);
    const byPref = tsharkFields(pcap, ['aoegw.type'], {
      lua: true,
      prefs: { 'aoegw.port': 9999 },
      args: ['--disable-heuristic', 'aoegw_udp'],
    });
    expect(byPref.map((r) => r['aoegw.type'])).toEqual(['1', '4']);
  });
});

describe.skipIf(tsharkSkip)("Wireshark's AoE dissector", () => {
  it('flags an AoE frame cut inside its ATA header as malformed (so the LAN check below can fail)', () => {
    const aoe = (len: number) => {
      const f = Buffer.alloc(len);
      f.fill(0xff, 0, 6);
      f.writeUInt16BE(0x88a2, 12);
      f[14] = 0x10; // version 1, request
      f.writeUInt16BE(1, 16);
      f[18] = 1;
      return f; // command 0 (ATA)
    };
    const rows = tsharkFields(writePcap([aoe(24), aoe(60)]), [
      'frame.protocols',
      '_ws.malformed',
      '_ws.expert.severity',
    ]);
    expect(rows.map(isMalformed)).toEqual([true, false]);
    expect(worstSeverity(rows[0]!)).toBe(EXPERT_ERROR);
  });
});

describe.skipIf(pairSkip)(
  'Wireshark on a gateway pair: the tunnel dissector on the WAN, its AoE dissector on the LANs',
  () => {
    let dir: string | undefined;
    let site: TwoSite | undefined;
    let vblade: Spawned | undefined;
    let pair: GatewayPair | undefined;
    const caps: Capture[] = [];
    let wan: CaptureResult | undefined;
    let lans: { name: string; cap: CaptureResult; builtIn?: { major: string; minor: string } }[] = [];

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'aoegw-ws-'));
      site = createTwoSite({ lanMtu: 1500 });
      vblade = startVblade(site.ns.tgt.name, 1, 0, site.iface.tgt, sparseImage(dir, 'vb.img', 32 << 20));
      // Captures start before the daemons, so the first handshake is in the WAN capture.
      const wanCap = await capture(site.ns.router, site.iface.routerA);
      const lanA = await capture(site.ns.ini, site.iface.ini);
      const lanB = await capture(site.ns.tgt, site.iface.tgt);
      caps.push(wanCap, lanA, lanB);
      await sleep(300);
      pair = await startGatewayPair(site, {
        a: {
          imports: [
            { remote: '1.0', local: '7.0', links: ['lan'] },
            { remote: '1.1', local: '7.1', links: ['lan'] },
          ],
        },
        b: {
          // Served on B's LAN too (links default to all): an initiator there uses it directly.
          exports: [{ target: '1.1', path: sparseImage(dir, 'ex.img', 32 << 20), name: 'disk-b1' }],
          forwards: [{ link: 'lan', targets: ['1.0'] }],
          allow: [{ targets: ['1.0', '1.1'], access: 'rw' }],
        },
      });
      const data = Buffer.alloc(16 * SECTOR_SIZE, 0x3c);
      // Through the pair (A's LAN: our initiator and gateway A; B's LAN: gateway B's forwards to
      // vblade), then B's built-in target directly from an initiator on B's LAN.
      const sides = [
        {
          ns: site.ns.ini.name,
          iface: site.iface.ini,
          targets: [
            { major: 7, minor: 0 },
            { major: 7, minor: 1 },
          ],
        },
        { ns: site.ns.tgt.name, iface: site.iface.tgt, targets: [{ major: 1, minor: 1 }] },
      ];
      for (const side of sides) {
        const ini = new Initiator(PacketLink.open({ iface: side.iface, netns: side.ns }));
        try {
          for (const { major, minor } of side.targets) {
            let advert: Awaited<ReturnType<Initiator['queryConfig']>>[number] | undefined;
            const until = Date.now() + 10_000;
            while (!advert && Date.now() < until) [advert] = await ini.queryConfig(300, { major, minor });
            expect(advert, `${major}.${minor} not advertised; A said: ${pair.a.output()}`).toBeDefined();
            const c = ini.client(advert!);
            const id = await identify(ini, c);
            await writeSectors(ini, c, 100, data);
            const back = Buffer.alloc(data.length);
            await readSectors(ini, c, 100, back);
            expect(back.equals(data)).toBe(true);
            const v = await verifyPattern(ini, c, {
              startLba: 4096,
              sectors: 1024,
              seed: minor,
              identity: id,
            });
            expect(v.mismatches).toBe(0);
            // The control commands: Query Config read, Mac Mask List read, Reserve/Release read.
            const target = { major, minor, mac: advert!.mac };
            await queryConfig(ini, target, 0);
            await macMask(ini, target, 0);
            await reserve(ini, target, 0);
          }
        } finally {
          ini.close();
        }
      }
      // Enrollment initiations (type 5), from the project's enrolling side in A's namespace, with an
      // invite B does not know: B drops them, the hop carries them.
      const crypto = await loadCrypto();
      const enroll = await enrollWithInviter({
        crypto,
        keyPair: crypto.x25519KeyPair(),
        invite: {
          inviterPublicKey: Buffer.from(
            readFileSync(join(ROOT, 'keys-example', 'gateway-b.pub'), 'utf8').trim(),
            'base64',
          ),
          endpoints: [{ address: site.ip.gwBWan, port: GATEWAY_PORT }],
          inviteId: randomBytes(16),
          psk: randomBytes(32),
        },
        name: 'wireshark-test',
        perEndpointMs: 2500,
        netns: site.ns.gwA.name,
      }).then(
        () => 'enrolled',
        (e: Error) => e.message,
      );
      expect(enroll).toMatch(/no inviter answered/);
      await sleep(300);
      const [w, a, b] = await Promise.all(caps.splice(0).map((c) => c.stop()));
      wan = w;
      lans = [
        { name: "A's LAN (ini)", cap: a! },
        { name: "B's LAN (tgt)", cap: b!, builtIn: { major: '0x0001', minor: '0x01' } },
      ];
    }, 120_000);

    afterAll(async () => {
      await Promise.all(caps.map((c) => c.stop()));
      await pair?.stop();
      await vblade?.stop();
      site?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('every datagram to or from the gateway port on the routed hop decodes as aoegw, clean', () => {
      expect(wan!.droppedByKernel).toBe(0);
      const rows = tsharkFields(wan!.pcap, [...TUNNEL_FIELDS, 'aoegw.receiver', 'aoegw.counter'], {
        lua: true,
        prefs: { 'aoegw.port': GATEWAY_PORT },
      });
      const port = String(GATEWAY_PORT);
      const toOrFrom = rows.filter((r) => r['udp.srcport'] === port || r['udp.dstport'] === port);
      // Every datagram, and the copy an ICMP error quotes (the first initiation can reach A before
      // A listens), decodes as aoegw without a malformed flag or an expert warning.
      const problems = toOrFrom.filter(
        (r) =>
          !r['frame.protocols']!.endsWith(':udp:aoegw') || isMalformed(r) || worstSeverity(r) >= EXPERT_WARN,
      );
      expect(problems.map(describeRow)).toEqual([]);
      const datagrams = toOrFrom.filter((r) => r['frame.protocols']!.startsWith('eth:ethertype:ip:udp:'));
      // Our own pcap parser counts the datagrams to the port independently of tshark.
      expect(datagrams.length).toBe(wan!.udpDstPorts.get(GATEWAY_PORT) ?? 0);
      // A frame is one message, or a GSO/GRO run of transport messages (the hop is inside one
      // kernel, so the gateways' UDP_SEGMENT sends cross it whole): count messages, not frames.
      const types = datagrams.flatMap((r) => r['aoegw.type']!.split(';').map(Number));
      const count = (t: number) => types.filter((x) => x === t).length;
      expect(count(1)).toBeGreaterThanOrEqual(1);
      expect(count(2)).toBeGreaterThanOrEqual(1);
      expect(count(5)).toBeGreaterThanOrEqual(1);
      expect(count(1) + count(2) + count(3) + count(4) + count(5)).toBe(types.length);
      // Transport counters per receiver index: none seen twice, and (captured from before the first
      // handshake on a lossless hop) every counter from 0 to the highest seen, so the transport
      // messages decoded are the messages the gateways sent.
      const counters = new Map<string, number[]>();
      for (const r of datagrams) {
        if (!/^4(;4)*$/.test(r['aoegw.type']!)) continue;
        const rx = r['aoegw.receiver']!.split(';');
        const ctr = r['aoegw.counter']!.split(';').map(Number);
        expect(rx.length, describeRow(r)).toBe(ctr.length);
        rx.forEach((x, i) => {
          const list = counters.get(x) ?? [];
          list.push(ctr[i]!);
          counters.set(x, list);
        });
      }
      let expected = 0;
      for (const [rx, list] of counters) {
        expect(new Set(list).size, `receiver ${rx}: a counter seen twice`).toBe(list.length);
        expected += Math.max(...list) + 1;
      }
      expect(count(4)).toBe(expected);
      // The I/O above is thousands of sectors: most messages are transport data.
      expect(count(4)).toBeGreaterThan(1000);
      const superFrames = datagrams.filter((r) => r['aoegw.type']!.includes(';')).length;
      console.log(
        `wireshark: ${datagrams.length} datagrams on the WAN hop (${superFrames} GSO/GRO super-frames) carrying ` +
          `${types.length} messages: ${count(1)} initiations, ${count(2)} responses, ${count(3)} cookie replies, ` +
          `${count(5)} enrollment initiations, ${count(4)} transport data in ${counters.size} sessions ` +
          `(${datagrams.filter((r) => r['aoegw.plaintext_len'] === '0').length} keepalives)`,
      );
    });

    it("every 0x88A2 frame on both LANs decodes with Wireshark's AoE dissector, clean", () => {
      for (const { name, cap, builtIn } of lans) {
        expect(cap.droppedByKernel, name).toBe(0);
        const rows = tsharkFields(cap.pcap, [
          'frame.number',
          'frame.protocols',
          '_ws.malformed',
          'eth.type',
          'aoe.cmd',
          'aoe.response',
          'aoe.major',
          'aoe.minor',
          '_ws.expert.severity',
          '_ws.expert.message',
        ]);
        const aoe = rows.filter((r) => r['eth.type'] === '0x88a2');
        expect(aoe.length, name).toBe(cap.count(0x88a2));
        const problems = aoe.filter(
          (r) => !r['frame.protocols']!.endsWith(':aoe') || isMalformed(r) || worstSeverity(r) >= EXPERT_WARN,
        );
        expect(problems.map(describeRow), name).toEqual([]);
        const byCmd = new Map<string, number>();
        for (const r of aoe) {
          const k = `cmd ${r['aoe.cmd']} ${r['aoe.response'] === '1' ? 'response' : 'request'}`;
          byCmd.set(k, (byCmd.get(k) ?? 0) + 1);
        }
        // ATA, Query Config, Mac Mask List and Reserve/Release, each both ways.
        for (const k of [0, 1, 2, 3].flatMap((c) => [`cmd ${c} request`, `cmd ${c} response`])) {
          expect(byCmd.get(k) ?? 0, `${name}: ${k}`).toBeGreaterThan(0);
        }
        // The built-in target's own answers (e1.1 on B's LAN) are among the frames checked.
        if (builtIn) {
          const own = aoe.filter(
            (r) =>
              r['aoe.response'] === '1' &&
              r['aoe.major'] === builtIn.major &&
              r['aoe.minor'] === builtIn.minor,
          );
          expect(own.length, name).toBeGreaterThan(100);
        }
        console.log(
          `wireshark: ${aoe.length} AoE frames on ${name}: ${JSON.stringify(Object.fromEntries(byCmd))}`,
        );
      }
    });
  },
);

/**
 * The product end to end: initiator segment — gateway A — router — gateway B — target segment,
 * each a network namespace. Behind B: vblade (a forward) and built-in exports; A imports them at
 * its own shelf.slot addresses. Our initiator and the real Linux aoe driver read, write and verify
 * through the pair at MTU 1500 and 9000, and the images are checked on the host. A capture on
 * the routed hop shows UDP only: no AoE EtherType frame and none of the data written in clear.
 * Policy: a target not granted is neither advertised nor reachable, even with records crafted by
 * an authenticated peer; a read-only grant refuses writes; an unknown key gets no answer.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AtaOp, AtaStatus, SECTOR_SIZE } from '../../src/aoe/constants.js';
import {
  RECORD_AOE_REQUEST,
  RECORD_AOE_RESPONSE,
  REQUEST,
  REQUEST_PREFIX,
  RESPONSE_PREFIX,
  writeU64Number,
} from '../../src/gateway/peer-messages.js';
import { Initiator } from '../../src/initiator/initiator.js';
import { identify, readSectors, writeSectors } from '../../src/initiator/operations.js';
import { fillPattern } from '../../src/initiator/pattern.js';
import { verifyPattern } from '../../src/initiator/verify.js';
import { PacketLink } from '../../src/io/packet-link.js';
import { loadCrypto } from '../../src/tunnel/crypto.js';
import { UdpTunnel } from '../../src/tunnel/udp-tunnel.js';
import { gatewayStats } from '../../support/gateway-pair.js';
import { AOEGW, ROOT } from '../helpers/aoegw.js';
import { linuxInitiatorSkipReason, runLinuxInitiator } from '../helpers/linux-initiator.js';
import { Netns, netnsSkipReason, vethPair } from '../helpers/netns.js';
import { hasCommand, type Spawned, spawnTracked, startVblade } from '../helpers/processes.js';
import { sleep, waitFor } from '../helpers/wait.js';

const skip = netnsSkipReason() ?? (hasCommand('vblade') ? undefined : 'vblade is not installed');
const liSkip = linuxInitiatorSkipReason();
const KEYS = join(ROOT, 'keys-example');
const pub = (n: string) => readFileSync(join(KEYS, `gateway-${n}.pub`), 'utf8').trim();
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const IMAGE = 64 << 20;

interface Site {
  dir: string;
  ns: Record<'ini' | 'gwa' | 'rtr' | 'gwb' | 'tgt', Netns>;
  iniIf: string;
  images: { vblade: string; disk: string; secret: string; ro: string };
  procs: Spawned[];
  gwA: Spawned;
  gwB: Spawned;
  configA: string;
  configB: string;
  /** A's TAP device (in A's namespace) for an initiator on A's host. */
  tapName: string;
}

/** The five namespaces, addresses and routes; every link at `mtu` (the routed path too). */
function topology(mtu: number): Omit<
  Site,
  'gwA' | 'gwB' | 'procs' | 'images' | 'configA' | 'configB' | 'tapName'
> & {
  aLan: string;
  bLan: string;
  tgtIf: string;
  rIfs: string[];
} {
  const ns = {
    ini: new Netns('ini'),
    gwa: new Netns('gwa'),
    rtr: new Netns('rtr'),
    gwb: new Netns('gwb'),
    tgt: new Netns('tgt'),
  };
  const lanA = vethPair(ns.ini, ns.gwa, mtu);
  const wanA = vethPair(ns.gwa, ns.rtr, mtu);
  const wanB = vethPair(ns.rtr, ns.gwb, mtu);
  const lanB = vethPair(ns.gwb, ns.tgt, mtu);
  ns.gwa.ip('addr', 'add', '10.91.1.2/24', 'dev', wanA.a);
  ns.rtr.ip('addr', 'add', '10.91.1.1/24', 'dev', wanA.b);
  ns.rtr.ip('addr', 'add', '10.91.2.1/24', 'dev', wanB.a);
  ns.gwb.ip('addr', 'add', '10.91.2.2/24', 'dev', wanB.b);
  ns.gwa.ip('route', 'add', 'default', 'via', '10.91.1.1');
  ns.gwb.ip('route', 'add', 'default', 'via', '10.91.2.1');
  ns.rtr.exec('sysctl', '-qw', 'net.ipv4.ip_forward=1');
  const dir = mkdtempSync(join(tmpdir(), 'aoegw-gw-'));
  return { dir, ns, iniIf: lanA.a, aLan: lanA.b, bLan: lanB.a, tgtIf: lanB.b, rIfs: [wanA.b, wanB.a] };
}

function sparse(dir: string, name: string): string {
  const p = join(dir, name);
  writeFileSync(p, '');
  truncateSync(p, IMAGE);
  return p;
}

function key(dir: string, n: string): string {
  const p = join(dir, `gateway-${n}.key`);
  copyFileSync(join(KEYS, `gateway-${n}.key`), p);
  chmodSync(p, 0o600);
  return p;
}

async function startGateway(ns: Netns, config: string): Promise<Spawned> {
  const p = spawnTracked('ip', [
    'netns',
    'exec',
    ns.name,
    process.execPath,
    AOEGW,
    'run',
    '--config',
    config,
  ]);
  const ok = await waitFor(() => /ready: /.test(p.output()) || p.child.exitCode !== null, 10_000);
  if (!ok || p.child.exitCode !== null) {
    await p.stop('SIGKILL');
    throw new Error(`aoegw run did not start: ${p.output()}`);
  }
  return p;
}

async function buildSite(mtu: number): Promise<Site> {
  const t = topology(mtu);
  const images = {
    vblade: sparse(t.dir, 'vblade.img'),
    disk: sparse(t.dir, 'disk.img'),
    secret: sparse(t.dir, 'secret.img'),
    ro: sparse(t.dir, 'ro.img'),
  };
  writeFileSync(images.ro, Buffer.alloc(65536, 0x5a), { flag: 'r+' });
  const procs = [startVblade(t.ns.tgt.name, 1, 0, t.tgtIf, images.vblade)];
  const tunnelMtu = mtu - 28;
  const configB = join(t.dir, 'b.json');
  writeFileSync(
    configB,
    JSON.stringify({
      name: 'gw-b',
      privateKeyFile: key(t.dir, 'b'),
      listen: '10.91.2.2:7788',
      stateFile: join(t.dir, 'b-state.json'),
      // Both daemons keep their files in one directory: each its own socket and enrollment file.
      controlSocket: join(t.dir, 'b.sock'),
      enrollmentFile: join(t.dir, 'b-enrollment.json'),
      links: [{ name: 'lan', iface: t.bLan }],
      exports: [
        { target: '1.1', path: images.disk, name: 'disk-b1', links: ['lan'] },
        { target: '1.2', path: images.secret, name: 'secret' },
        { target: '1.3', path: images.ro, name: 'shared-ro' },
      ],
      forwards: [{ link: 'lan', targets: ['1.0'] }],
      peers: [
        {
          name: 'a',
          publicKey: pub('a'),
          allow: [
            { targets: ['1.0', 'disk-b1'], access: 'rw' },
            { targets: ['shared-ro'], access: 'ro' },
          ],
        },
      ],
      tunnel: { mtu: tunnelMtu },
    }),
  );
  const configA = join(t.dir, 'a.json');
  const tapName = `aoegwt${Math.floor(Math.random() * 1e6)}`;
  writeFileSync(
    configA,
    JSON.stringify({
      name: 'gw-a',
      privateKeyFile: key(t.dir, 'a'),
      listen: '10.91.1.2:7788',
      stateFile: join(t.dir, 'a-state.json'),
      controlSocket: join(t.dir, 'a.sock'),
      enrollmentFile: join(t.dir, 'a-enrollment.json'),
      // The initiator segment, and a TAP device A creates for an initiator on A's own host.
      links: [
        { name: 'lan', iface: t.aLan },
        { name: 'local', tap: tapName, mtu },
      ],
      peers: [
        {
          name: 'b',
          publicKey: pub('b'),
          endpoint: '10.91.2.2:7788',
          imports: [
            { remote: '1.0', local: '7.0' },
            { remote: 'disk-b1', local: '7.1' },
            // Not granted to A: must never become usable.
            { remote: '1.2', local: '7.2' },
            { remote: 'shared-ro', local: '7.3' },
          ],
        },
      ],
      tunnel: { mtu: tunnelMtu },
    }),
  );
  const gwB = await startGateway(t.ns.gwb, configB);
  const gwA = await startGateway(t.ns.gwa, configA);
  procs.push(gwB, gwA);
  const usable = await waitFor(() => /import e7\.1 .*: usable/.test(gwA.output()), 15_000);
  if (!usable) throw new Error(`imports never became usable:\n${gwA.output()}\n${gwB.output()}`);
  await waitFor(() => /import e7\.0 .*: usable/.test(gwA.output()), 15_000);
  return { ...t, images, procs, gwA, gwB, configA, configB, tapName };
}

async function teardown(s: Site | undefined): Promise<void> {
  if (!s) return;
  for (const p of s.procs.reverse()) await p.stop();
  for (const n of Object.values(s.ns)) n.delete();
  rmSync(s.dir, { recursive: true, force: true });
}

/** tcpdump on the router's interfaces while `fn` runs; returns the raw pcap files' bytes. */
async function capture(s: Site & { rIfs: string[] }, fn: () => Promise<void>): Promise<Buffer[]> {
  const files = s.rIfs.map((i) => join(s.dir, `cap-${i}.pcap`));
  const dumps = s.rIfs.map((iface, k) =>
    spawn(
      'ip',
      ['netns', 'exec', s.ns.rtr.name, 'tcpdump', '-i', iface, '-n', '-U', '-B', '16384', '-w', files[k]!],
      {
        stdio: 'ignore',
      },
    ),
  );
  await sleep(500);
  try {
    await fn();
  } finally {
    await sleep(300);
    for (const d of dumps) d.kill('SIGINT');
    await Promise.all(dumps.map((d) => new Promise((r) => (d.exitCode !== null ? r(0) : d.on('exit', r)))));
  }
  return files.map((f) => readFileSync(f));
}

/** EtherTypes of the frames in a pcap (Ethernet link type), counted. */
function etherTypes(pcap: Buffer): Map<number, number> {
  const out = new Map<number, number>();
  let o = 24;
  while (o + 16 <= pcap.length) {
    const incl = pcap.readUInt32LE(o + 8);
    const f = o + 16;
    if (f + 14 <= pcap.length) {
      const et = pcap.readUInt16BE(f + 12);
      out.set(et, (out.get(et) ?? 0) + 1);
    }
    o = f + incl;
  }
  return out;
}

/** Registers nothing: tests that need only one MTU run once, at 1500, instead of reporting a skip. */
const SKIP_AT_THIS_MTU = (..._args: unknown[]): void => {};

for (const mtu of [1500, 9000]) {
  describe.skipIf(skip)(`gateway pair across a router at MTU ${mtu}`, () => {
    let s: (Site & { rIfs: string[] }) | undefined;
    let ini: Initiator | undefined;
    beforeAll(async () => {
      const built = await buildSite(mtu);
      s = built as Site & { rIfs: string[] };
      ini = new Initiator(PacketLink.open({ iface: s.iniIf, netns: s.ns.ini.name }));
    }, 60_000);
    afterAll(async () => {
      ini?.close();
      await teardown(s);
    });

    it("advertises only what B grants A, at A's own MAC, with the frame size the path allows", async () => {
      const adverts = await ini!.queryConfig(1500);
      const found = adverts.map((a) => `e${a.major}.${a.minor}`).sort();
      expect(found).toEqual(['e7.0', 'e7.1', 'e7.3']);
      const expectSectors = Math.floor((mtu - 36) / 512);
      for (const a of adverts) {
        expect(a.sectorCount || 2).toBe(expectSectors);
        expect(a.bufferCount).toBeGreaterThanOrEqual(2);
      }
      const b1 = adverts.find((a) => a.minor === 1)!;
      const id = await identify(ini!, ini!.client(b1));
      expect(id.sectors).toBe(IMAGE / SECTOR_SIZE);
      // The named export's serial follows it through the gateway.
      expect(id.serial).toBe('disk-b1');
      // And so does its world wide name (NAA 3, from the name).
      const wwn =
        (3n << 60n) |
        (createHash('sha256').update('aoegw export disk-b1').digest().readBigUInt64BE(0) &
          ((1n << 60n) - 1n));
      expect(id.wwn).toBe(wwn);
    });

    it('our initiator writes and verifies vblade and a built-in export through the pair; the routed hop carries only ciphertext', async () => {
      const adverts = await ini!.queryConfig(1500);
      const seed = 0x5eed + mtu;
      const caps = await capture(s!, async () => {
        for (const minor of [0, 1]) {
          const a = adverts.find((x) => x.major === 7 && x.minor === minor)!;
          const c = ini!.client(a);
          const identity = await identify(ini!, c);
          const r = await verifyPattern(ini!, c, { startLba: 2048, sectors: 8192, seed, identity });
          expect(r.mismatches, `e7.${minor}: ${r.firstMismatches}`).toBe(0);
        }
      });
      // Host-side: the bytes are in the images behind B, where they belong.
      const expected = Buffer.alloc(8192 * SECTOR_SIZE);
      fillPattern(expected, 0, 2048, 8192, seed);
      for (const img of [s!.images.vblade, s!.images.disk]) {
        const onDisk = readFileSync(img).subarray(2048 * SECTOR_SIZE, (2048 + 8192) * SECTOR_SIZE);
        expect(sha(onDisk)).toBe(sha(expected));
      }
      let frames = 0;
      for (const cap of caps) {
        const types = etherTypes(cap);
        for (const n of types.values()) frames += n;
        expect(types.get(0x88a2) ?? 0).toBe(0);
        // No 64-byte run of the data written appears anywhere on the hop.
        for (const lba of [2048, 4000, 10000]) {
          const at = (lba - 2048) * SECTOR_SIZE + 200;
          expect(cap.indexOf(expected.subarray(at, at + 64))).toBe(-1);
        }
      }
      expect(frames).toBeGreaterThan(8192 / Math.floor((mtu - 36) / 512));
    });

    it('a read-only grant reads but refuses writes with an ATA error', async () => {
      const adverts = await ini!.queryConfig(1000, { major: 7, minor: 3 });
      const c = ini!.client(adverts[0]!);
      const data = Buffer.alloc(8 * SECTOR_SIZE);
      await readSectors(ini!, c, 0, data);
      expect(data.equals(Buffer.alloc(8 * SECTOR_SIZE, 0x5a))).toBe(true);
      await expect(writeSectors(ini!, c, 0, Buffer.alloc(2 * SECTOR_SIZE, 1))).rejects.toMatchObject({
        code: 'ERR_ATA',
      });
      expect(readFileSync(s!.images.ro).subarray(0, 1024).equals(Buffer.alloc(1024, 0x5a))).toBe(true);
    });

    it.skipIf(liSkip)(
      'the real Linux aoe initiator writes and reads both imports through the pair',
      { timeout: 240_000 },
      async () => {
        const r = await runLinuxInitiator({
          netns: s!.ns.ini.name,
          iface: s!.iniIf,
          mtu,
          script: readFileSync(join(import.meta.dirname, '..', 'fixtures', 'li', 'gateway-check.sh'), 'utf8'),
          env: { LI_TARGETS: 'e7.0 e7.1', LI_EXPECT_SECTORS: IMAGE / SECTOR_SIZE },
          timeoutS: 200,
        });
        expect(r.failed, r.log.slice(-4000)).toEqual([]);
        expect(r.result).toBe('PASS');
        const payload = String(Math.floor((mtu - 36) / 512) * 512);
        expect(r.data['payload.e7.0']).toBe(payload);
        expect(r.data['payload.e7.1']).toBe(payload);
        for (const [t, img] of [
          ['e7.0', s!.images.vblade],
          ['e7.1', s!.images.disk],
        ] as const) {
          const onDisk = readFileSync(img).subarray(1 << 20, (1 << 20) + 262144);
          expect(sha(onDisk), t).toBe(r.data[`final.${t}`]);
        }
      },
    );

    it('an initiator on the gateway host uses the imports through the TAP device A owns', async () => {
      const local = new Initiator(PacketLink.open({ iface: s!.tapName, netns: s!.ns.gwa.name }));
      try {
        const adverts = await local.queryConfig(1500);
        expect(adverts.map((a) => `e${a.major}.${a.minor}`).sort()).toEqual(['e7.0', 'e7.1', 'e7.3']);
        const a = adverts.find((x) => x.minor === 1)!;
        const c = local.client(a);
        const identity = await identify(local, c);
        const r = await verifyPattern(local, c, { startLba: 30000, sectors: 2048, seed: 77, identity });
        expect(r.mismatches).toBe(0);
      } finally {
        local.close();
      }
    });

    (mtu === 1500 ? it.skipIf(liSkip) : SKIP_AT_THIS_MTU)(
      'the real Linux aoe initiator on the gateway host, attached to its TAP device',
      { timeout: 240_000 },
      async () => {
        const r = await runLinuxInitiator({
          netns: s!.ns.gwa.name,
          iface: s!.tapName,
          mtu,
          script: readFileSync(join(import.meta.dirname, '..', 'fixtures', 'li', 'gateway-check.sh'), 'utf8'),
          env: { LI_TARGETS: 'e7.1', LI_EXPECT_SECTORS: IMAGE / SECTOR_SIZE, LI_WRITE_OFFSET: 8 << 20 },
          timeoutS: 200,
        });
        expect(r.failed, r.log.slice(-4000)).toEqual([]);
        expect(r.result).toBe('PASS');
        const onDisk = readFileSync(s!.images.disk).subarray(8 << 20, (8 << 20) + 262144);
        expect(sha(onDisk)).toBe(r.data['final.e7.1']);
      },
    );

    (mtu === 1500 ? it : SKIP_AT_THIS_MTU)(
      'an authenticated peer cannot reach what it is not granted, even with hand-crafted records; an unknown key gets no answer',
      async () => {
        const crypto = await loadCrypto();
        const aKey = readFileSync(join(KEYS, 'gateway-a.key'), 'utf8').trim().split('\n').pop()!;
        const secretKey = Buffer.from(aKey, 'base64');
        const publicKey = Buffer.from(pub('a'), 'base64');
        const replies: Buffer[] = [];
        let up = false;
        // A second client with A's key, from A's namespace on another port: B takes it for A.
        const t = UdpTunnel.open({
          crypto,
          staticKeyPair: { secretKey, publicKey },
          port: 0,
          netns: s!.ns.gwa.name,
          events: {
            handshakeComplete: () => {
              up = true;
            },
            record: (_p, type, buf, off, len) => {
              // [epoch][seq] of the request answered, then the PDU: keep the PDU.
              if (type === RECORD_AOE_RESPONSE)
                replies.push(Buffer.from(buf.subarray(off + RESPONSE_PREFIX, off + len)));
            },
          },
        });
        try {
          const peer = t.addPeer({
            publicKey: Buffer.from(pub('b'), 'base64'),
            endpoint: { address: '10.91.2.2', port: 7788 },
          });
          t.connect(peer);
          expect(await waitFor(() => up, 5000)).toBe(true);
          // An epoch above the real gateway A's (B refuses older ones), one request number per tag.
          const prefix = (r: Buffer, seq: number) => {
            r.writeUInt32BE(0xffff_fff0, REQUEST.EPOCH);
            writeU64Number(r, REQUEST.SEQ, seq);
            Buffer.from([0x02, 0, 0, 0, 0, 0x77]).copy(r, REQUEST.MAC);
          };
          const request = (major: number, minor: number, op: number, tag: number, write: boolean) => {
            const r = Buffer.alloc(REQUEST_PREFIX + 22 + (write ? 512 : 0));
            prefix(r, tag);
            const p = REQUEST_PREFIX;
            r[p] = 0x10;
            r.writeUInt16BE(major, p + 2);
            r[p + 4] = minor;
            r[p + 5] = 0; // ATA
            r.writeUInt32BE(tag, p + 6);
            r[p + 10] = 0x40 | (write ? 1 : 0);
            r[p + 12] = 1;
            r[p + 13] = op;
            if (write) r.fill(0xee, p + 22);
            return r;
          };
          const before = await gatewayStats(s!.gwB);
          // Not granted: a read and a write of e1.2 (the "secret" export) get nothing back.
          t.send(peer, RECORD_AOE_REQUEST, request(1, 2, AtaOp.READ_SECTORS_EXT, 101, false));
          t.send(peer, RECORD_AOE_REQUEST, request(1, 2, AtaOp.WRITE_SECTORS_EXT, 102, true));
          // Read-only grant: a write to e1.3 gets ATA ABRT.
          t.send(peer, RECORD_AOE_REQUEST, request(1, 3, AtaOp.WRITE_SECTORS_EXT, 103, true));
          // Granted read: answered (proves the channel works).
          t.send(peer, RECORD_AOE_REQUEST, request(1, 3, AtaOp.READ_SECTORS_EXT, 104, false));
          // Read-only grant: a config-string set, a mask edit and a reservation get AoE errors 4, 2, 6.
          const control = (command: number, tag: number, arg: number[]) => {
            const r = Buffer.alloc(REQUEST_PREFIX + 10 + arg.length);
            prefix(r, tag);
            const p = REQUEST_PREFIX;
            r[p] = 0x10;
            r.writeUInt16BE(1, p + 2);
            r[p + 4] = 3;
            r[p + 5] = command;
            r.writeUInt32BE(tag, p + 6);
            Buffer.from(arg).copy(r, p + 10);
            return r;
          };
          // Query Config force-set of "x"; Mac Mask edit adding 02:..:77; Reserve set of 02:..:77.
          t.send(peer, RECORD_AOE_REQUEST, control(1, 105, [0, 0, 0, 0, 0, 0x14, 0, 1, 0x78]));
          t.send(peer, RECORD_AOE_REQUEST, control(2, 106, [0, 1, 0, 1, 0, 1, 2, 0, 0, 0, 0, 0x77]));
          t.send(peer, RECORD_AOE_REQUEST, control(3, 107, [1, 1, 2, 0, 0, 0, 0, 0x77]));
          expect(await waitFor(() => replies.length >= 5, 3000)).toBe(true);
          await sleep(300);
          const tags = replies.map((r) => r.readUInt32BE(6)).sort();
          expect(tags).toEqual([103, 104, 105, 106, 107]);
          const abrt = replies.find((r) => r.readUInt32BE(6) === 103)!;
          expect(abrt[13]! & AtaStatus.ERR).toBe(AtaStatus.ERR);
          expect(abrt[11]).toBe(0x04);
          for (const [tag, code] of [
            [105, 4],
            [106, 2],
            [107, 6],
          ] as const) {
            const r = replies.find((x) => x.readUInt32BE(6) === tag)!;
            expect(r[0]! & 0x0c, `tag ${tag}: R and E set`).toBe(0x0c);
            expect(r[1], `tag ${tag}`).toBe(code);
          }
          // Nothing of it reached B's state file.
          const statePath = join(s!.dir, 'b-state.json');
          const state = existsSync(statePath)
            ? readFileSync(statePath, 'utf8').toLowerCase().replace(/[:-]/g, '')
            : '';
          expect(state).not.toContain('020000000077');
          const after = await gatewayStats(s!.gwB);
          expect(after.exportSide.denied - before.exportSide.denied).toBe(2);
          expect(readFileSync(s!.images.secret).subarray(0, 512).equals(Buffer.alloc(512))).toBe(true);
          expect(readFileSync(s!.images.ro).subarray(0, 512).equals(Buffer.alloc(512, 0x5a))).toBe(true);
        } finally {
          t.close();
        }
        // An unknown key: B answers nothing at all.
        const stranger = crypto.x25519KeyPair();
        if (stranger) {
          let got = 0;
          const u = UdpTunnel.open({ crypto, staticKeyPair: stranger, port: 0, netns: s!.ns.gwa.name });
          try {
            const peer = u.addPeer({
              publicKey: Buffer.from(pub('b'), 'base64'),
              endpoint: { address: '10.91.2.2', port: 7788 },
            });
            u.connect(peer);
            await sleep(1500);
            got = u.stats().link.rxFrames;
          } finally {
            u.close();
          }
          expect(got).toBe(0);
        }
        // The real A reconnects and its imports come back.
        await sleep(100);
      },
    );
  });
}

/**
 * `aoegw serve` (the built-in target) in one namespace, our initiator in another: every command,
 * read-only and out-of-range errors, persistence of config string / mask list / reservations
 * across a restart, mask-list and reservation enforcement between two initiators on two links,
 * and 64 exports in one process.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AtaOp } from '../../src/aoe/constants.js';
import { formatMac } from '../../src/aoe/mac.js';
import { macMask, queryConfig, reserve } from '../../src/initiator/control.js';
import { Initiator } from '../../src/initiator/initiator.js';
import { discover, identify, readSectors, writeSectors } from '../../src/initiator/operations.js';
import { checkPattern } from '../../src/initiator/pattern.js';
import type { Io } from '../../src/initiator/target-client.js';
import { verifyPattern } from '../../src/initiator/verify.js';
import { PacketLink } from '../../src/io/packet-link.js';
import { startServe } from '../helpers/aoegw.js';
import { sparseImage } from '../helpers/images.js';
import { Netns, netnsSkipReason, vethPair } from '../helpers/netns.js';
import type { Spawned } from '../helpers/processes.js';

const skip = netnsSkipReason();

describe.skipIf(skip)('aoegw serve with our initiator', () => {
  let dir: string;
  let nsI: Netns;
  let nsT: Netns;
  const servers: Spawned[] = [];
  const inis: Initiator[] = [];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'aoegw-tgt-'));
    nsI = new Netns('tsi');
    nsT = new Netns('tst');
  });
  afterAll(async () => {
    for (const i of inis) i.close();
    for (const s of servers) await s.stop();
    nsI?.delete();
    nsT?.delete();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function initiator(iface: string): Initiator {
    const ini = new Initiator(PacketLink.open({ iface, netns: nsI.name }));
    inis.push(ini);
    return ini;
  }

  async function serve(args: string[]): Promise<Spawned> {
    const s = await startServe([...args, '--netns', nsT.name]);
    servers.push(s);
    return s;
  }

  it('serves reads, writes, IDENTIFY, FLUSH, CHECK POWER, and the errors the protocol defines', async () => {
    const v = vethPair(nsI, nsT, 9000);
    const rw = sparseImage(dir, 'rw.img', 32 << 20);
    const ro = sparseImage(dir, 'ro.img', 8 << 20);
    writeFileSync(ro, Buffer.alloc(4096, 0x5a), { flag: 'r+' });
    await serve([
      '--iface',
      v.b,
      '--export',
      `3.1=${rw}`,
      '--export',
      `3.2=${ro},ro`,
      '--state',
      join(dir, 'st1.json'),
    ]);
    const ini = initiator(v.a);
    const found = await discover(ini, 300);
    expect(found.map((r) => [r.target, r.sectors, r.sectorsPerFrame, r.bufferCount])).toEqual([
      ['e3.1', (32 << 20) / 512, 17, 64],
      ['e3.2', (8 << 20) / 512, 17, 64],
    ]);
    const [a1] = await ini.queryConfig(200, { major: 3, minor: 1 });
    const c = ini.client(a1!);
    const id = await identify(ini, c);
    expect(id).toMatchObject({
      lba48: true,
      flushCache: true,
      flushCacheExt: true,
      sectors: (32 << 20) / 512,
    });
    const r = await verifyPattern(ini, c, { startLba: 100, sectors: 20_000, seed: 3, identity: id });
    expect(r).toMatchObject({ mismatches: 0, flushed: true });
    expect(checkPattern(readFileSync(rw).subarray(100 * 512), 0, 100, 20_000, 3)).toEqual([]);

    const power = await new Promise<Io>((res, rej) =>
      c.command(AtaOp.CHECK_POWER_MODE, null, ini.now(), (e, io) => (e ? rej(e) : res(io))),
    );
    expect(power.replySectorCount).toBe(0xff);
    // Past the end: IDNF; unknown opcode: ABRT.
    const end = (32 << 20) / 512;
    await expect(readSectors(ini, c, end - 1, Buffer.alloc(1024))).rejects.toMatchObject({ code: 'ERR_ATA' });
    const unknown = new Promise<Io>((res) => c.command(0x99, null, ini.now(), (_e, io) => res(io)));
    expect((await unknown).ataError & 0x04).toBe(0x04);

    const [a2] = await ini.queryConfig(200, { major: 3, minor: 2 });
    const c2 = ini.client(a2!);
    const back = Buffer.alloc(4096);
    await readSectors(ini, c2, 0, back);
    expect(back.equals(Buffer.alloc(4096, 0x5a))).toBe(true);
    const err = await writeSectors(ini, c2, 0, Buffer.alloc(512, 1)).catch((e) => e);
    expect(err).toMatchObject({ code: 'ERR_ATA' });
    expect(readFileSync(ro).subarray(0, 512).equals(Buffer.alloc(512, 0x5a))).toBe(true);
  });

  it('persists config string, mask list and reservations across a restart, and enforces them', async () => {
    const v1 = vethPair(nsI, nsT, 1500);
    const v2 = vethPair(nsI, nsT, 1500);
    const img = sparseImage(dir, 'persist.img', 16 << 20);
    const state = join(dir, 'persist-state.json');
    const args = ['--iface', v1.b, '--iface', v2.b, '--export', `4.4=${img}`, '--state', state];
    let server = await serve(args);
    const A = initiator(v1.a);
    const B = initiator(v2.a);
    const t = { major: 4, minor: 4 };

    // Config string: set-if-empty succeeds once, then answers "config string present".
    expect((await queryConfig(A, t, 3, Buffer.from('owner=A'))).errorFlag).toBe(false);
    const again = await queryConfig(B, t, 3, Buffer.from('owner=B'));
    expect([again.errorFlag, again.error]).toEqual([true, 4]);
    expect((await queryConfig(B, t, 0)).config.toString()).toBe('owner=A');

    // Reservation by A: B's I/O gets error 6, A's works; IDENTIFY stays allowed for B.
    const macA = formatMac(A.link.mac);
    expect((await reserve(A, t, 1, [macA])).errorFlag).toBe(false);
    const [advB] = await B.queryConfig(200, t);
    const cB = B.client(advB!);
    await expect(readSectors(B, cB, 0, Buffer.alloc(512))).rejects.toMatchObject({
      code: 'ERR_AOE_ERROR_REPLY',
    });
    await identify(B, cB);
    const taken = await reserve(B, t, 1, [formatMac(B.link.mac)]);
    expect([taken.errorFlag, taken.error]).toEqual([true, 6]);
    const [advA] = await A.queryConfig(200, t);
    const cA = A.client(advA!);
    await writeSectors(A, cA, 10, Buffer.alloc(512, 7));

    // Mask list: only A may talk; restart; everything still holds.
    const edited = await macMask(A, t, 1, [{ dcmd: 1, mac: macA }]);
    expect(edited.merror).toBe(0);
    await server.stop('SIGTERM');
    server = await serve(args);
    expect((await queryConfig(A, t, 0)).config.toString()).toBe('owner=A');
    expect((await reserve(A, t, 0)).macs).toEqual([macA]);
    expect((await macMask(A, t, 0)).directives.map((d) => d.mac)).toEqual([macA]);
    // B is not on the mask list: its ATA requests are ignored (no reply at all).
    B.dropClient(4, 4);
    const cB2 = B.client(advB!, { giveUpMs: 600 });
    await expect(readSectors(B, cB2, 0, Buffer.alloc(512))).rejects.toMatchObject({ code: 'ERR_TIMEOUT' });
    A.dropClient(4, 4);
    const cA2 = A.client(advA!);
    const got = Buffer.alloc(512);
    await readSectors(A, cA2, 10, got);
    expect(got.equals(Buffer.alloc(512, 7))).toBe(true);
    // Release and unmask: B works again.
    await reserve(A, t, 2, []);
    await macMask(A, t, 1, [{ dcmd: 2, mac: macA }]);
    B.dropClient(4, 4);
    await readSectors(B, B.client(advB!), 10, got);
    expect(JSON.parse(readFileSync(state, 'utf8')).exports['e4.4']).toMatchObject({ masks: [], reserve: [] });
  });

  it('serves 64 exports from one process', async () => {
    const v = vethPair(nsI, nsT, 9000);
    const args = ['--iface', v.b, '--state', join(dir, 'st64.json')];
    for (let i = 0; i < 64; i++) args.push('--export', `7.${i}=${sparseImage(dir, `m${i}.img`, 4 << 20)}`);
    const server = await serve(args);
    const ini = initiator(v.a);
    const found = await discover(ini, 500);
    expect(found.map((r) => r.target)).toEqual(Array.from({ length: 64 }, (_, i) => `e7.${i}`));
    const adverts = await ini.queryConfig(300);
    await Promise.all(
      adverts.map(async (a) => {
        const c = ini.client(a);
        const data = Buffer.alloc(64 * 1024, a.minor + 1);
        await writeSectors(ini, c, 1000, data);
        const back = Buffer.alloc(data.length);
        await readSectors(ini, c, 1000, back);
        expect(back.equals(data)).toBe(true);
      }),
    );
    for (let i = 0; i < 64; i += 21) {
      expect(
        readFileSync(join(dir, `m${i}.img`))
          .subarray(1000 * 512, 1000 * 512 + 65536)
          .equals(Buffer.alloc(65536, i + 1)),
      ).toBe(true);
    }
    expect(server.output()).toMatch(/ready: 64 exports on 1 links/);
  });
});

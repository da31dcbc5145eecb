/**
 * Our initiator against the reference target, real vblade, across a veth pair between two
 * namespaces: discover, IDENTIFY, write, read, verify (checked on the host image too), at MTU 1500
 * and 9000, and the CLI's discover/verify/bench end to end.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECTOR_SIZE } from '../../src/aoe/constants.js';
import { Initiator } from '../../src/initiator/initiator.js';
import { discover, identify, readSectors, writeSectors } from '../../src/initiator/operations.js';
import { checkPattern } from '../../src/initiator/pattern.js';
import { verifyPattern } from '../../src/initiator/verify.js';
import { PacketLink } from '../../src/io/packet-link.js';
import { Netns, netnsSkipReason, vethPair } from '../helpers/netns.js';
import { hasCommand, type Spawned, startVblade } from '../helpers/processes.js';
import { sleep } from '../helpers/wait.js';

const skip =
  netnsSkipReason() ??
  (hasCommand('vblade') ? undefined : 'vblade is not installed (apt-get install vblade)');
const IMAGE_BYTES = 64 * 1024 * 1024;
const root = join(import.meta.dirname, '..', '..');

function readImage(path: string, off: number, len: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(len);
    readSync(fd, b, 0, len, off);
    return b;
  } finally {
    closeSync(fd);
  }
}

describe.skipIf(skip)('initiator against vblade', () => {
  let dir: string;
  let nsI: Netns;
  let nsT: Netns;
  const vblades: Spawned[] = [];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'aoegw-vb-'));
    nsI = new Netns('ini');
    nsT = new Netns('tgt');
  });
  afterAll(async () => {
    for (const v of vblades) await v.stop();
    nsI?.delete();
    nsT?.delete();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const mtu of [1500, 9000]) {
    it(`discovers, identifies, writes, reads and verifies e1.${mtu === 1500 ? 2 : 3} at MTU ${mtu}`, async () => {
      const slot = mtu === 1500 ? 2 : 3;
      const image = join(dir, `disk-${mtu}.img`);
      writeFileSync(image, '');
      truncateSync(image, IMAGE_BYTES);
      const v = vethPair(nsI, nsT, mtu);
      const vb = startVblade(nsT.name, 1, slot, v.b, image);
      vblades.push(vb);
      await sleep(300);
      const ini = new Initiator(PacketLink.open({ iface: v.a, netns: nsI.name }));
      try {
        const found = await discover(ini, 500);
        const row = found.find((r) => r.target === `e1.${slot}`);
        expect(row, `discovery found ${JSON.stringify(found)}; vblade said: ${vb.output()}`).toBeDefined();
        expect(row!.sectors).toBe(IMAGE_BYTES / SECTOR_SIZE);
        expect(row!.sectorsPerFrame).toBe(Math.floor((mtu - 36) / 512));
        expect(row!.model).toContain('vblade');

        const [advert] = await ini.queryConfig(300, { major: 1, minor: slot });
        const c = ini.client(advert!);
        expect(c.sectorsPerFrame).toBe(Math.floor((mtu - 36) / 512));
        const id = await identify(ini, c);
        expect(id.lba48).toBe(true);

        // An unaligned multi-frame write, read back through the protocol and from the image file.
        const data = Buffer.alloc(37 * SECTOR_SIZE);
        for (let i = 0; i < data.length; i++) data[i] = (i * 7 + 3) & 0xff;
        await writeSectors(ini, c, 1001, data);
        const back = Buffer.alloc(data.length);
        await readSectors(ini, c, 1001, back);
        expect(back.equals(data)).toBe(true);
        expect(readImage(image, 1001 * SECTOR_SIZE, data.length).equals(data)).toBe(true);

        const r = await verifyPattern(ini, c, { startLba: 4096, sectors: 8192, seed: mtu, identity: id });
        expect(r.mismatches).toBe(0);
        expect(r.flushed).toBe(true);
        const onDisk = readImage(image, 4096 * SECTOR_SIZE, 8192 * SECTOR_SIZE);
        expect(checkPattern(onDisk, 0, 4096, 8192, mtu)).toEqual([]);

        // Reading past the end is an ATA error, not a hang.
        await expect(
          readSectors(ini, c, IMAGE_BYTES / SECTOR_SIZE, Buffer.alloc(SECTOR_SIZE)),
        ).rejects.toMatchObject({
          code: 'ERR_ATA',
        });
        expect(c.stats.timeouts).toBe(0);
      } finally {
        ini.close();
      }
    });
  }

  it('the CLI discovers, verifies and benchmarks vblade', async () => {
    const image = join(dir, 'cli.img');
    writeFileSync(image, '');
    truncateSync(image, IMAGE_BYTES);
    const v = vethPair(nsI, nsT, 1500);
    const vb = startVblade(nsT.name, 5, 1, v.b, image);
    vblades.push(vb);
    await sleep(300);
    const cli = (...args: string[]) =>
      execFileSync(
        'npx',
        ['tsx', join(root, 'src/cli/main.ts'), ...args, '--iface', v.a, '--netns', nsI.name],
        {
          encoding: 'utf8',
          cwd: root,
        },
      );
    const rows = JSON.parse(cli('discover', '--json', '--wait', '300'));
    expect(rows).toMatchObject([{ target: 'e5.1', sectors: IMAGE_BYTES / 512, bufferCount: 16 }]);
    const ver = JSON.parse(cli('verify', '--target', 'e5.1', '--size', '4m', '--seed', '7', '--json'));
    expect(ver).toMatchObject({ mismatches: 0, sectors: 8192 });
    expect(checkPattern(readImage(image, 0, 4 << 20), 0, 0, 8192, 7)).toEqual([]);
    const bench = JSON.parse(
      cli(
        'bench',
        '--target',
        'e5.1',
        '--rw',
        'randread',
        '--bs',
        '4k',
        '--qd',
        '4',
        '--time',
        '1',
        '--json',
      ),
    );
    expect(bench.ios).toBeGreaterThan(100);
    expect(bench.errors).toBe(0);
    expect(bench.latencyUs.p50).toBeGreaterThan(0);
    expect(() => cli('bench', '--target', 'e5.9', '--time', '1')).toThrow(/no answer from e5.9/);
  });
});

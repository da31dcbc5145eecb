/**
 * The real Linux `aoe` driver (Debian kernel in qemu) against aoegw's built-in target: discovery,
 * reads, O_DIRECT writes read back after drop_caches, a sub-page write, and a host-side check of
 * the image, at MTU 1500 and 9000; and the device staying usable while the target restarts.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServe } from '../helpers/aoegw.js';
import { linuxInitiatorSkipReason, runLinuxInitiator } from '../helpers/linux-initiator.js';
import { Netns, netnsSkipReason, vethPair } from '../helpers/netns.js';
import type { Spawned } from '../helpers/processes.js';

const skip = netnsSkipReason() ?? linuxInitiatorSkipReason();
const fixtures = join(import.meta.dirname, '..', 'fixtures', 'li');
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe.skipIf(skip)('Linux aoe initiator against aoegw serve', () => {
  let dir: string;
  let ns: Netns;
  const servers: Spawned[] = [];
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'aoegw-li-'));
    ns = new Netns('li');
  });
  afterAll(async () => {
    for (const s of servers) await s.stop();
    ns?.delete();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const mtu of [1500, 9000]) {
    it(
      `discovers, reads, writes and reads back after drop_caches at MTU ${mtu}`,
      { timeout: 200_000 },
      async () => {
        const img = join(dir, `li${mtu}.img`);
        writeFileSync(img, '');
        truncateSync(img, 64 << 20);
        writeFileSync(img, Buffer.alloc(65536, 0x3c), { flag: 'r+' });
        // Target on one end of a veth; the VM's TAP is spliced onto the other end (tc mode).
        const v = vethPair(ns, ns, mtu);
        const slot = mtu === 1500 ? 1 : 2;
        servers.push(
          await startServe([
            '--iface',
            v.b,
            '--netns',
            ns.name,
            '--export',
            `5.${slot}=${img}`,
            '--state',
            join(dir, `s${mtu}.json`),
          ]),
        );
        const r = await runLinuxInitiator({
          netns: ns.name,
          iface: v.a,
          script: readFileSync(join(fixtures, 'rw-check.sh'), 'utf8'),
          env: { LI_TARGET: `e5.${slot}`, LI_EXPECT_SECTORS: (64 << 20) / 512 },
        });
        expect(r.failed, r.log.slice(-3000)).toEqual([]);
        expect(r.result).toBe('PASS');
        expect(r.data.payload).toBe(String(Math.floor((mtu - 36) / 512) * 512));
        expect(r.data.first64k).toBe(sha(Buffer.alloc(65536, 0x3c)));
        const onDisk = readFileSync(img).subarray(1 << 20, (1 << 20) + 262144);
        expect(sha(onDisk)).toBe(r.data.final);
      },
    );
  }

  it('keeps the open device working while the target restarts', { timeout: 200_000 }, async () => {
    const img = join(dir, 'restart.img');
    writeFileSync(img, '');
    truncateSync(img, 16 << 20);
    const v = vethPair(ns, ns, 1500);
    const args = [
      '--iface',
      v.b,
      '--netns',
      ns.name,
      '--export',
      `6.1=${img}`,
      '--state',
      join(dir, 'sr.json'),
    ];
    let server = await startServe(args);
    servers.push(server);
    let restarted: Promise<void> | undefined;
    const r = await runLinuxInitiator({
      netns: ns.name,
      iface: v.a,
      script: readFileSync(join(fixtures, 'restart-open.sh'), 'utf8'),
      env: { LI_TARGET: 'e6.1', LI_RESTART_WAIT_S: 6 },
      onLine: (line) => {
        if (line.includes('LI-DATA: restart-now=1') && !restarted) {
          restarted = (async () => {
            await server.stop('SIGTERM');
            server = await startServe(args);
            servers.push(server);
          })();
        }
      },
    });
    await restarted;
    expect(restarted).toBeDefined();
    expect(r.failed, r.log.slice(-3000)).toEqual([]);
    expect(r.result).toBe('PASS');
    const disk = readFileSync(img);
    expect(sha(disk.subarray(1 << 20, (1 << 20) + 262144))).toBe(r.data.a);
    expect(sha(disk.subarray(2 << 20, (2 << 20) + 262144))).toBe(r.data.b);
  });
});

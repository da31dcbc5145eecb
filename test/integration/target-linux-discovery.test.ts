/**
 * The real Linux `aoe` driver (qemu) discovers every export of `aoegw serve` while a raw-socket
 * attacker on the same segment floods broadcast Query Configs (from one MAC, and from group-bit
 * source MACs): the broadcast rate limit bounds the attacker's answers without starving Linux's
 * own discovery (its load-time broadcast, and aoe-discover's).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PacketLink } from '../../src/io/packet-link.js';
import type { ServerStats } from '../../src/target/server.js';
import { startServe } from '../helpers/aoegw.js';
import { linuxInitiatorSkipReason, runLinuxInitiator } from '../helpers/linux-initiator.js';
import { Netns, netnsSkipReason, vethPair } from '../helpers/netns.js';
import type { Spawned } from '../helpers/processes.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { qc } from '../unit/target/helpers.js';

const skip = netnsSkipReason() ?? linuxInitiatorSkipReason();
const N = 16;

const script = `. /li/lib.sh
n=0
i=0
while [ $i -lt ${N} ]; do
  if aoe_wait e1.$i 30; then n=$((n + 1)); else li_fail "discover e1.$i"; fi
  i=$((i + 1))
done
li_data found "$n"
aoe_stat
[ "$LI_FAILED" -eq 0 ]
`;

describe.skipIf(skip)('Linux discovery under a broadcast flood', () => {
  let dir: string;
  let ns: Netns;
  const servers: Spawned[] = [];
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'aoegw-lid-'));
    ns = new Netns('lid');
  });
  afterAll(async () => {
    for (const s of servers) await s.stop('SIGKILL');
    ns?.delete();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(`sees all ${N} exports while an attacker floods broadcast queries`, { timeout: 200_000 }, async () => {
    const v = vethPair(ns, ns, 1500);
    const args = ['--iface', v.b, '--netns', ns.name, '--state', join(dir, 's.json')];
    for (let i = 0; i < N; i++) args.push('--export', `1.${i}=memory:1m`);
    const server = await startServe(args);
    servers.push(server);
    const attacker = PacketLink.open({ iface: v.a, netns: ns.name });
    const wild = { dst: 'ff:ff:ff:ff:ff:ff', major: 0xffff, minor: 0xff };
    const flood = [qc({ ...wild, src: '02:66:00:00:00:09' }), qc({ ...wild, src: 'ff:ff:ff:ff:ff:ff' })];
    let flooding = true;
    let sent = 0;
    // 200 broadcast queries a second, for at most 180 s (the VM run's bound).
    const loop = (async () => {
      const end = performance.now() + 180_000;
      while (flooding && performance.now() < end) {
        for (let j = 0; j < 10; j++) for (const f of flood) attacker.send(f);
        attacker.flush();
        sent += 20;
        await sleep(100);
      }
    })();
    try {
      const r = await runLinuxInitiator({ netns: ns.name, iface: v.a, script, timeoutS: 150 });
      expect(r.failed, r.log.slice(-3000)).toEqual([]);
      expect(r.result).toBe('PASS');
      expect(r.data.found).toBe(String(N));
    } finally {
      flooding = false;
      await loop;
      attacker.close();
    }
    expect(sent).toBeGreaterThan(100);
    server.child.kill('SIGUSR1');
    await waitFor(() => /"engine"/.test(server.output()), 3000);
    const line = server
      .output()
      .split('\n')
      .find((l) => l.startsWith('{"engine"'))!;
    const st = JSON.parse(line) as ServerStats;
    const link = Object.values(st.engine.links)[0]!;
    expect(link.groupSource).toBeGreaterThan(sent / 4);
    expect(link.broadcastRateLimited).toBeGreaterThan(sent / 4);
  });
});

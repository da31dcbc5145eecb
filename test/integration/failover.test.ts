/**
 * Active/passive target-side failover as Pacemaker runs it (docs/operations.md "Failover"): two
 * nodes, each an aoegw daemon with its own link on one segment and the same export (e7.1) of one
 * shared image, started and stopped only through the OCF agent (deploy/ocf/aoegw). The real Linux
 * aoe driver keeps the device open and writes a stream of O_DIRECT chunks while the resource moves
 * A → B (planned: stop drains and syncs in-flight writes, then B starts and announces), and then B
 * is killed with SIGKILL (a crash: monitor says not running, stop, start on A). The VM must see no
 * I/O error, and every chunk it saw acknowledged must be in the image. Twice: with each node's own
 * MAC (the driver learns the new one from the announcement, and resends requests stuck on the old
 * one only after it gives up on it, ~10 s), and with a service MAC that moves with the resource
 * (links[].mac: requests in flight reach the new node as soon as it runs).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aoegwSync } from '../helpers/aoegw.js';
import { sparseImage } from '../helpers/images.js';
import { liWriteStream } from '../helpers/li-stream.js';
import { linuxInitiatorSkipReason } from '../helpers/linux-initiator.js';
import { Netns, netnsSkipReason, uniqueId } from '../helpers/netns.js';
import { OCF, ocfAgent } from '../helpers/ocf.js';

const skip = netnsSkipReason() ?? linuxInitiatorSkipReason();
/** 256 KiB chunks; the marks far enough apart that the first failover is over before the second. */
const CHUNKS = 40;
const MARKS = [7, 27];

interface Node {
  name: string;
  config: string;
  /** The node's own resource-agent state directory (Pacemaker keeps one per node). */
  rsctmp: string;
  log: string;
  iface: string;
  /** The interface's own address, before any service MAC. */
  ownMac: string;
}

describe.skipIf(skip)('target-side failover with the OCF agent under a Linux-initiator write stream', () => {
  let dir: string;
  let seg: Netns;
  let image: string;
  const nodes: Node[] = [];
  const SERVICE_MAC = '02:00:5e:a0:e7:01';

  const ocf = (n: Node, action: string) =>
    ocfAgent({
      config: n.config,
      log: n.log,
      rsctmp: n.rsctmp,
      ocfRoot: join(dir, 'no-ocf-root'),
      waitS: 30,
    })(action);
  const status = (n: Node) => {
    const r = aoegwSync('status', '--config', n.config, '--json');
    return r.status === 0 ? JSON.parse(r.stdout) : undefined;
  };
  /** Write requests node `n` has served to e7.1 since it started (from its control socket). */
  const writesServed = (n: Node): number => {
    const s = status(n);
    const e = (s?.exports?.exports ?? []).find((x: { target: string }) => /(^|e)7\.1$/.test(x.target));
    return Number(e?.writes ?? Number.NaN);
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'aoegw-failover-'));
    image = sparseImage(dir, 'shared.img', 64 << 20);
    // The segment: a bridge; each node's link is a veth whose other end is a bridge port. The VM's
    // TAP joins the bridge too.
    seg = new Netns('fo');
    seg.ip('link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
    seg.ip('link', 'set', 'br0', 'up');
    for (const name of ['a', 'b', 'sa', 'sb']) {
      const tag = uniqueId();
      const iface = `fo${name}${tag}`;
      seg.ip('link', 'add', iface, 'type', 'veth', 'peer', 'name', `fb${name}${tag}`);
      seg.ip('link', 'set', `fb${name}${tag}`, 'master', 'br0');
      seg.ip('link', 'set', `fb${name}${tag}`, 'up');
      seg.ip('link', 'set', iface, 'up');
      const home = join(dir, name);
      mkdirSync(home);
      const config = join(home, 'aoegw.json');
      writeFileSync(
        config,
        JSON.stringify({
          name: `node-${name}`,
          stateFile: join(home, 'state.json'),
          links: [
            { name: 'lan', iface, netns: seg.name, ...(name.startsWith('s') ? { mac: SERVICE_MAC } : {}) },
          ],
          exports: [{ target: '7.1', name: 'shared', path: image, durability: 'sync' }],
        }),
      );
      nodes.push({
        name,
        config,
        rsctmp: join(home, 'rsctmp'),
        log: join(home, 'daemon.log'),
        iface,
        ownMac: macOf(iface),
      });
    }
  });

  afterAll(() => {
    for (const n of nodes) ocf(n, 'stop');
    seg?.delete();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const serviceMac of [false, true]) {
    it(
      `planned move A → B, then B crashes and A takes over (${serviceMac ? 'a service MAC moves' : 'own MACs'}): no I/O error, every acknowledged write kept`,
      { timeout: 300_000 },
      async () => {
        const [a, b] = (serviceMac ? nodes.slice(2) : nodes.slice(0, 2)) as [Node, Node];
        const offset = serviceMac ? 24 << 20 : 4 << 20;
        expect(ocf(a, 'start').code, readLog(a)).toBe(OCF.SUCCESS);
        expect(ocf(b, 'monitor').code).toBe(OCF.NOT_RUNNING);
        const moves: { what: string; ms: number }[] = [];
        let servedByB = 0;
        const s = await liWriteStream({
          netns: seg.name,
          iface: 'br0',
          image,
          target: 'e7.1',
          chunks: CHUNKS,
          marks: MARKS,
          offset,
          // The fault hits writes in flight: the VM goes on writing at once.
          markWaitS: 0,
          onMark: async (k) => {
            const t0 = Date.now();
            if (k === 0) {
              // Planned: Pacemaker stops the resource on A (in-flight writes complete and are
              // synced), then starts it on B, never both at once.
              const stopped = ocf(a, 'stop');
              expect(stopped.code, stopped.err).toBe(OCF.SUCCESS);
              expect(ocf(a, 'monitor').code).toBe(OCF.NOT_RUNNING);
              expect(ocf(b, 'start').code, readLog(b)).toBe(OCF.SUCCESS);
              moves.push({ what: 'A → B (stop, start)', ms: Date.now() - t0 });
            } else {
              servedByB = writesServed(b);
              // A crash: B dies without draining anything; its monitor reports it not running.
              const pid = Number(status(b)?.status?.pid);
              expect(pid).toBeGreaterThan(0);
              process.kill(pid, 'SIGKILL');
              await waitGone(pid);
              expect(ocf(b, 'monitor').code).toBe(OCF.NOT_RUNNING);
              // Stop puts B's own MAC back (killed, B could not): never two holders of the service MAC.
              const stopped = ocf(b, 'stop');
              expect(stopped.code, stopped.err).toBe(OCF.SUCCESS);
              if (serviceMac) expect(macOf(b.iface)).toBe(b.ownMac);
              expect(ocf(a, 'start').code, readLog(a)).toBe(OCF.SUCCESS);
              moves.push({ what: 'B crashed → A (start)', ms: Date.now() - t0 });
            }
          },
        });
        const r = s.r;
        const ms = Array.from({ length: CHUNKS }, (_, i) => Number(r.data[`ms.${i}`] ?? -1));
        console.log(
          `failover (${serviceMac ? 'service MAC' : 'own MACs'}): ${moves.map((m) => `${m.what} ${m.ms} ms`).join('; ')}; ${s.acked} chunks acknowledged; ms per chunk: ${ms.join(' ')}`,
        );
        expect(r.failed, r.log.slice(-4000)).toEqual([]);
        expect(r.result).toBe('PASS');
        expect(s.errors).toBe(0);
        expect(r.data.ioerrors).toBe('0');
        expect(s.acked).toBe(CHUNKS);
        // Each failover caught writes in flight: one of the writes after its mark waited it out.
        for (const m of MARKS) expect(Math.max(...ms.slice(m + 1, m + 12))).toBeGreaterThan(1000);
        expect(moves).toHaveLength(2);
        // The initiator really moved: B served writes of the stream, and A serves again at the end.
        expect(servedByB).toBeGreaterThan(0);
        expect(writesServed(a)).toBeGreaterThan(0);
        // B announced its export as soon as its link was up.
        expect(readLog(b)).toMatch(/serving 1 exports?/);
        if (serviceMac) {
          // A holds the service MAC; B has its own again.
          expect(macOf(a.iface)).toBe(SERVICE_MAC);
          expect(macOf(b.iface)).toBe(b.ownMac);
        }
        expect(ocf(a, 'stop').code).toBe(OCF.SUCCESS);
        expect(macOf(a.iface)).toBe(a.ownMac);
      },
    );
  }

  function macOf(iface: string): string {
    return /link\/ether (\S+)/.exec(seg.ip('link', 'show', iface))?.[1] ?? '';
  }

  function readLog(n: Node): string {
    try {
      return readFileSync(n.log, 'utf8').slice(-3000);
    } catch {
      return '(no log)';
    }
  }
});

async function waitGone(pid: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`pid ${pid} still running after SIGKILL`);
}

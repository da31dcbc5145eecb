/**
 * The control socket's read-only views on a real Gateway over in-memory links: a built-in export
 * on a fake segment, two initiators doing a known number of reads and writes; every number the
 * views report is checked against that I/O.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeFrame } from '../../../src/aoe/decode-frame.js';
import { loadGatewayConfig } from '../../../src/config/gateway-config.js';
import { statusHandlers } from '../../../src/control/status-view.js';
import { Gateway } from '../../../src/gateway/daemon.js';
import { type FakeLink, FakeSegment } from '../../../src/io/fake-link.js';
import { INI_MAC, INI2_MAC, pattern, read, write } from '../target/helpers.js';

const GW_MAC = '02:00:00:00:00:aa';

let dir: string;
let gw: Gateway | null;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'aoegw-status-'));
  gw = null;
});
afterEach(() => {
  gw?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function start(seg: FakeSegment): Gateway {
  const file = join(dir, 'gw.json');
  writeFileSync(
    file,
    JSON.stringify({
      name: 'gw-test',
      stateFile: join(dir, 'state.json'),
      links: [{ name: 'lan', iface: 'lan0' }],
      exports: [
        { target: '1.0', path: 'memory:1m' },
        { target: '1.1', path: 'memory:1m', readOnly: true },
      ],
    }),
  );
  gw = Gateway.start(loadGatewayConfig(file), {
    openLink: (l) => seg.attach({ mac: GW_MAC, name: l.iface }),
  });
  return gw;
}

/** Sends `frames` from `ini` and waits for one reply each. */
async function exchange(ini: FakeLink, frames: Buffer[]): Promise<Buffer[]> {
  const replies: Buffer[] = [];
  const done = new Promise<void>((resolve) => {
    ini.onBatch((fs, lens, n) => {
      for (let i = 0; i < n; i++) replies.push(Buffer.from(fs[i]!.subarray(0, lens[i]!)));
      if (replies.length >= frames.length) resolve();
    });
  });
  for (const f of frames) ini.send(f);
  ini.flush();
  await done;
  return replies;
}

const handlers = (g: Gateway) =>
  statusHandlers(g, { name: 'gw-test', version: '9.9.9', invitesPending: () => 2 });

describe('status views', () => {
  it('exports: reads, writes, bytes and per-initiator counts equal the I/O done', async () => {
    const seg = new FakeSegment();
    const g = start(seg);
    const a = seg.attach({ mac: INI_MAC, name: 'a' });
    const b = seg.attach({ mac: INI2_MAC, name: 'b' });
    const dst = { dst: GW_MAC };
    // A: 3 writes of 2 sectors and 5 reads of 1; B: 4 reads of 2. One write to the read-only export.
    const ra = await exchange(a, [
      ...[0, 2, 4].map((lba) => write(lba, pattern(2, lba), { ...dst, src: INI_MAC })),
      ...[0, 1, 2, 3, 4].map((lba) => read(lba, 1, { ...dst, src: INI_MAC })),
    ]);
    expect(ra.every((f) => decodeFrame(f, f.length).ok)).toBe(true);
    await exchange(
      b,
      [0, 2, 4, 6].map((lba) => read(lba, 2, { ...dst, src: INI2_MAC })),
    );
    await exchange(b, [write(0, pattern(1), { ...dst, src: INI2_MAC, minor: 1 })]);

    const h = handlers(g);
    const r = (await h.exports!({ cmd: 'exports' })) as unknown as {
      ok: boolean;
      sampledAtMs: number;
      exports: Record<string, unknown>[];
    };
    expect(r.ok).toBe(true);
    expect(r.sampledAtMs).toBeGreaterThan(0);
    const e0 = r.exports.find((e) => e.target === 'e1.0')!;
    expect(e0).toMatchObject({
      readOnly: false,
      reads: 9,
      writes: 3,
      bytesRead: (5 + 8) * 512,
      bytesWritten: 6 * 512,
      errors: 0,
      drops: 0,
      pending: 0,
    });
    const ini = e0.initiators as Record<string, unknown>[];
    expect(ini.map((i) => i.principal).sort()).toEqual([INI_MAC, INI2_MAC]);
    expect(ini.find((i) => i.mac === INI_MAC)).toMatchObject({
      peer: '',
      requests: 8,
      bytesRead: 5 * 512,
      bytesWritten: 6 * 512,
    });
    expect(ini.find((i) => i.mac === INI2_MAC)).toMatchObject({ requests: 4, bytesRead: 8 * 512 });
    // Every read and write answered is timed, once per export and once for its principal; served
    // from memory on this event loop, well under a second.
    const lat = e0.latency as {
      count: number;
      p50Us: number;
      p99Us: number;
      maxUs: number;
      buckets: number[][];
    };
    expect(lat.count).toBe(12);
    expect(lat.buckets.reduce((a, b) => a + b[1]!, 0)).toBe(12);
    expect(lat.p50Us).toBeLessThanOrEqual(lat.p99Us);
    expect(lat.p99Us).toBeLessThanOrEqual(lat.maxUs);
    expect(lat.maxUs).toBeLessThan(1e6);
    const perIni = ini.map((i) => (i.latency as { count: number }).count).sort();
    expect(perIni).toEqual([4, 8]);
    const e1 = r.exports.find((e) => e.target === 'e1.1')!;
    expect(e1).toMatchObject({ readOnly: true, writes: 0, errors: 1 });
    expect(e1.latency).toMatchObject({ p50Us: null, p99Us: null, maxUs: null });
  });

  it('status, links, peers, imports, forwards: a gateway without a tunnel', async () => {
    const seg = new FakeSegment();
    const g = start(seg);
    const h = handlers(g);
    const s = (await h.status!({ cmd: 'status' })) as Record<string, unknown>;
    expect(s).toMatchObject({
      ok: true,
      name: 'gw-test',
      pid: process.pid,
      version: '9.9.9',
      links: { up: 1, down: 0 },
      peers: { total: 0, up: 0 },
      exports: 2,
      imports: { total: 0, usable: 0 },
      forwards: 0,
      invitesPending: 2,
    });
    expect(s.uptimeMs).toBeGreaterThan(0);
    const links = (await h.links!({ cmd: 'links' })) as unknown as { links: Record<string, unknown>[] };
    expect(links.links).toEqual([
      expect.objectContaining({ name: 'lan', state: 'up', mac: GW_MAC, mtu: 1500 }),
    ]);
    expect(await h.peers!({ cmd: 'peers' })).toMatchObject({ ok: true, peers: [], tunnel: null });
    expect(await h.imports!({ cmd: 'imports' })).toMatchObject({ ok: true, imports: null });
    expect(await h.forwards!({ cmd: 'forwards' })).toMatchObject({ ok: true, forwards: null });
    expect(await h.stats!({ cmd: 'stats' })).toMatchObject({ ok: true, stats: { reloads: { applied: 0 } } });
  });
});

/**
 * The two-namespace fixture the link and target integration tests share: an initiator namespace and
 * a target namespace (veth pairs between them are made per test), a temporary directory, and
 * cleanup of everything registered — initiators and links closed, `aoegw serve` processes stopped,
 * namespaces and the directory deleted — after the describe block.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { startServe } from './aoegw.js';
import { sparseImage } from './images.js';
import { Netns, type VethPair, vethPair } from './netns.js';
import type { Spawned } from './processes.js';

export interface ServePair {
  dir: string;
  /** Initiator (or attacker) side. */
  nsI: Netns;
  /** Target side. */
  nsT: Netns;
  /** Stopped (SIGTERM) after the block, in order. */
  servers: Spawned[];
  /** Closed after the block, before the servers stop. */
  track<T extends { close(): void }>(x: T): T;
  /**
   * A new veth pair at `mtu` (end `a` in nsI, `b` in nsT) and `aoegw serve` on `b` exporting a
   * fresh sparse image of `bytes` as `target` ("S.L"), with its own state file.
   */
  serveOnNewPair(o: { mtu: number; target: string; bytes: number }): Promise<{
    v: VethPair;
    img: string;
    srv: Spawned;
  }>;
}

/** Registers beforeAll/afterAll in the calling describe block; fields are set once beforeAll ran. */
export function useServePair(prefix: string): ServePair {
  const closeables: { close(): void }[] = [];
  const pair = {
    servers: [] as Spawned[],
    track<T extends { close(): void }>(x: T): T {
      closeables.push(x);
      return x;
    },
    async serveOnNewPair(o: { mtu: number; target: string; bytes: number }) {
      const v = vethPair(pair.nsI, pair.nsT, o.mtu);
      const img = sparseImage(pair.dir, `${o.target}.img`, o.bytes);
      const srv = await startServe([
        '--iface',
        v.b,
        '--netns',
        pair.nsT.name,
        '--export',
        `${o.target}=${img}`,
        '--state',
        join(pair.dir, `${o.target}-state.json`),
      ]);
      pair.servers.push(srv);
      return { v, img, srv };
    },
  } as ServePair;
  beforeAll(() => {
    pair.dir = mkdtempSync(join(tmpdir(), `aoegw-${prefix}-`));
    pair.nsI = new Netns(`${prefix}i`);
    pair.nsT = new Netns(`${prefix}t`);
  });
  afterAll(async () => {
    for (const c of closeables) c.close();
    for (const s of pair.servers) await s.stop();
    pair.nsI?.delete();
    pair.nsT?.delete();
    if (pair.dir) rmSync(pair.dir, { recursive: true, force: true });
  });
  return pair;
}

/**
 * One `aoegw run` on a LAN of its own: a veth pair between two fresh namespaces, the daemon's one
 * link ("lan") on the target end, our initiator on the other. For the tests that look at a running
 * daemon through its control socket, its CLI or its metrics (status-top, control-exports).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Initiator } from '../../src/initiator/initiator.js';
import { PacketLink } from '../../src/io/packet-link.js';
import { startRun } from '../../support/gateway-pair.js';
import { Netns, type VethPair, vethPair } from './netns.js';
import type { Spawned } from './processes.js';

export interface LanGateway {
  dir: string;
  nsI: Netns;
  nsT: Netns;
  v: VethPair;
  /** DIR/gw.json */
  config: string;
  daemon: Spawned;
  ini: Initiator;
  /** Initiator closed, daemon stopped, namespaces and DIR deleted. */
  close(): Promise<void>;
}

/**
 * `config(dir)` gives the config's keys besides `links` (a `stateFile` there replaces the default
 * DIR/state.json); `name` is the namespace prefix and the directory's.
 */
export async function startLanGateway(
  name: string,
  config: (dir: string) => Record<string, unknown>,
  mtu = 1500,
): Promise<LanGateway> {
  const dir = mkdtempSync(join(tmpdir(), `aoegw-${name}-`));
  const nsI = new Netns(`${name}i`);
  const nsT = new Netns(`${name}t`);
  let daemon: Spawned | undefined;
  let ini: Initiator | undefined;
  const close = async () => {
    ini?.close();
    await daemon?.stop();
    nsI.delete();
    nsT.delete();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const v = vethPair(nsI, nsT, mtu);
    const file = join(dir, 'gw.json');
    writeFileSync(
      file,
      JSON.stringify({
        stateFile: join(dir, 'state.json'),
        ...config(dir),
        links: [{ name: 'lan', iface: v.b, netns: nsT.name }],
      }),
    );
    daemon = await startRun(file);
    ini = new Initiator(PacketLink.open({ iface: v.a, netns: nsI.name }));
    return { dir, nsI, nsT, v, config: file, daemon, ini, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/**
 * What operators run today to stretch an AoE segment across a routed network, built on a TwoSite:
 * a kernel VXLAN device on each gateway bridged with its LAN interface (so `ini` and `tgt` share
 * one L2 segment), optionally carried inside a wireguard-go tunnel. The baselines of
 * `bench:gateway` and the routed-hop tests.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nsExec, uniqueId } from './netns.js';
import { hasCommand, type Spawned, spawnTracked } from './processes.js';
import type { TwoSite } from './two-site.js';
import { waitFor } from './wait.js';

/** VXLAN over IPv4: outer Ethernet 14 + IP 20 + UDP 8 + VXLAN 8 bytes on top of the inner MTU. */
export const VXLAN_OVERHEAD = 50;
/** WireGuard over IPv4: IP 20 + UDP 8 + message header 16 + Poly1305 tag 16. */
export const WIREGUARD_OVERHEAD = 60;
export const VXLAN_PORT = 4789;
export const WIREGUARD_PORT = 51820;

export interface Underlay {
  devA: string;
  devB: string;
  localA: string;
  localB: string;
  mtu: number;
}

export interface VxlanBridge {
  /** Device names on gwA/gwB. */
  vxlan: string;
  bridge: string;
  close(): void;
}

/** The WAN of the topology as an underlay. */
export function wanUnderlay(site: TwoSite): Underlay {
  return {
    devA: site.iface.gwAWan,
    devB: site.iface.gwBWan,
    localA: site.ip.gwAWan,
    localB: site.ip.gwBWan,
    mtu: site.wanMtu,
  };
}

/**
 * Bridges gwA's and gwB's LAN interfaces through VXLAN over `underlay` (default: the routed WAN).
 * The inner MTU is the LAN MTU, so the underlay must carry lanMtu + 50 (throws otherwise: a
 * smaller one would silently drop every full-size AoE frame).
 */
export function vxlanBridge(
  site: TwoSite,
  o: {
    underlay?: Underlay;
    vni?: number;
    /** Where each side sends (default: the other side's address); a relay's addresses put it in the path. */
    remoteA?: string;
    remoteB?: string;
  } = {},
): VxlanBridge {
  const u = o.underlay ?? wanUnderlay(site);
  if (u.mtu < site.lanMtu + VXLAN_OVERHEAD) {
    throw new Error(
      `underlay MTU ${u.mtu} cannot carry VXLAN with inner MTU ${site.lanMtu} (needs ${site.lanMtu + VXLAN_OVERHEAD})`,
    );
  }
  const vni = String(o.vni ?? 42);
  const sides = [
    { ns: site.ns.gwA, lan: site.iface.gwALan, dev: u.devA, local: u.localA, remote: o.remoteA ?? u.localB },
    { ns: site.ns.gwB, lan: site.iface.gwBLan, dev: u.devB, local: u.localB, remote: o.remoteB ?? u.localA },
  ];
  const vxlan = 'vx0';
  const bridge = 'br0';
  const done: typeof sides = [];
  const close = () => {
    for (const s of done.splice(0)) {
      for (const d of [bridge, vxlan]) {
        try {
          s.ns.ip('link', 'del', d);
        } catch {
          // already gone (namespace deleted first)
        }
      }
    }
  };
  try {
    for (const s of sides) {
      done.push(s);
      s.ns.ip(
        'link',
        'add',
        vxlan,
        'type',
        'vxlan',
        'id',
        vni,
        'local',
        s.local,
        'remote',
        s.remote,
        'dstport',
        String(VXLAN_PORT),
        'dev',
        s.dev,
      );
      s.ns.ip('link', 'set', vxlan, 'mtu', String(site.lanMtu));
      s.ns.ip('link', 'add', bridge, 'type', 'bridge', 'stp_state', '0');
      s.ns.ip('link', 'set', s.lan, 'master', bridge);
      s.ns.ip('link', 'set', vxlan, 'master', bridge);
      s.ns.ip('link', 'set', vxlan, 'up');
      s.ns.ip('link', 'set', bridge, 'up');
    }
  } catch (e) {
    close();
    throw e;
  }
  return { vxlan, bridge, close };
}

export function wireguardSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root';
  if (!hasCommand('wireguard-go')) return 'wireguard-go is not installed (apt-get install wireguard-go)';
  if (!hasCommand('wg')) return 'wg is not installed (apt-get install wireguard-tools)';
  if (!existsSync('/dev/net/tun')) return '/dev/net/tun is missing';
  return undefined;
}

export interface WireguardTunnel {
  ifA: string;
  ifB: string;
  addrA: string;
  addrB: string;
  /** MTU of the wg interfaces. */
  mtu: number;
  procA: Spawned;
  procB: Spawned;
  /** The tunnel's own addresses, as an underlay for vxlanBridge. */
  underlay: Underlay;
  close(): Promise<void>;
}

const UAPI_DIR = '/var/run/wireguard';
// Sockets of our wireguard-go processes: a SIGKILLed process (exit hook of processes.ts) leaves
// its socket behind, so the exit hook removes the ones still listed (only names we made).
const liveSockets = new Set<string>();
let exitHook = false;
function trackSocket(path: string): void {
  liveSockets.add(path);
  if (exitHook) return;
  exitHook = true;
  process.on('exit', () => {
    for (const s of liveSockets) if (existsSync(s)) unlinkSync(s);
  });
}

/**
 * wireguard-go on gwA and gwB, peered over the WAN with fresh keys (`wg genkey`), addresses
 * 10.92.0.1/.2 on the tunnel. The UAPI socket directory is shared by all namespaces, so the
 * interface names are unique per call; close() stops both processes by PID and removes the sockets
 * it created if a process could not.
 */
export async function wireguardTunnel(
  site: TwoSite,
  o: {
    mtu?: number;
    /** The address each side sends to (default: the other side's WAN address); a relay's puts it in the path. */
    endpointA?: string;
    endpointB?: string;
  } = {},
): Promise<WireguardTunnel> {
  const skip = wireguardSkipReason();
  if (skip) throw new Error(skip);
  const id = uniqueId();
  const mtu = o.mtu ?? site.wanMtu - WIREGUARD_OVERHEAD;
  const dir = mkdtempSync(join(tmpdir(), 'aoegw-wg-'));
  const procs: Spawned[] = [];
  const sockets: string[] = [];
  const close = async () => {
    for (const p of procs.splice(0)) await p.stop();
    for (const s of sockets.splice(0)) {
      if (existsSync(s)) unlinkSync(s);
      liveSockets.delete(s);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const key = (side: string) => {
      const priv = execFileSync('wg', ['genkey'], { encoding: 'utf8' }).trim();
      const pub = execFileSync('wg', ['pubkey'], { input: priv, encoding: 'utf8' }).trim();
      const file = join(dir, `${side}.key`);
      writeFileSync(file, `${priv}\n`, { mode: 0o600 });
      chmodSync(file, 0o600);
      return { file, pub };
    };
    const a = {
      ns: site.ns.gwA,
      ifname: `wga${id}`,
      addr: '10.92.0.1',
      key: key('a'),
      // What the other side sends to (the peer entry of b below uses a.endpoint).
      endpoint: o.endpointB ?? site.ip.gwAWan,
    };
    const b = {
      ns: site.ns.gwB,
      ifname: `wgb${id}`,
      addr: '10.92.0.2',
      key: key('b'),
      endpoint: o.endpointA ?? site.ip.gwBWan,
    };
    for (const s of [a, b]) {
      sockets.push(join(UAPI_DIR, `${s.ifname}.sock`));
      trackSocket(sockets[sockets.length - 1]!);
      // -f: stay in the foreground, so the PID we hold (ip netns exec execs) is wireguard-go's.
      const p = spawnTracked('ip', ['netns', 'exec', s.ns.name, 'wireguard-go', '-f', s.ifname], {
        env: { ...process.env, LOG_LEVEL: 'error' },
      });
      procs.push(p);
      const sock = sockets[sockets.length - 1]!;
      const ok = await waitFor(() => existsSync(sock) || p.child.exitCode !== null, 5000);
      if (!ok || p.child.exitCode !== null) throw new Error(`wireguard-go did not start: ${p.output()}`);
    }
    for (const [s, peer] of [
      [a, b],
      [b, a],
    ] as const) {
      nsExec(
        s.ns.name,
        'wg',
        'set',
        s.ifname,
        'listen-port',
        String(WIREGUARD_PORT),
        'private-key',
        s.key.file,
        'peer',
        peer.key.pub,
        'endpoint',
        `${peer.endpoint}:${WIREGUARD_PORT}`,
        'allowed-ips',
        `${peer.addr}/32`,
      );
      s.ns.ip('addr', 'add', `${s.addr}/24`, 'dev', s.ifname);
      s.ns.ip('link', 'set', s.ifname, 'mtu', String(mtu), 'up');
    }
    return {
      ifA: a.ifname,
      ifB: b.ifname,
      addrA: a.addr,
      addrB: b.addr,
      mtu,
      procA: procs[0]!,
      procB: procs[1]!,
      underlay: { devA: a.ifname, devB: b.ifname, localA: a.addr, localB: b.addr, mtu },
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}

/**
 * The routed two-site topology the gateway is tested and measured in, one namespace per box:
 *
 *   ini ──lan0══lan0── gwA ──wan0══wanA── router ──wanB══wan0── gwB ──lan0══lan0── tgt
 *                       10.91.1.2/24   10.91.1.1   10.91.2.1   10.91.2.2/24
 *
 * `ini` is the initiator host on site A's LAN, `tgt` the target host (vblade) on site B's LAN. The
 * LANs carry only L2 (AoE needs no addresses); the WAN is routed by `router` (ip_forward=1, one
 * subnet per site, default routes on both gateways). Interfaces are created directly inside their
 * namespaces, so their names are fixed and readable; the namespaces have unique names and close()
 * deletes exactly the ones this call made (their interfaces go with them).
 */
import { spawnSync } from 'node:child_process';
import { Netns } from './netns.js';
import { hasCommand } from './processes.js';

export { type Capture, type CaptureResult, capture, captureSkipReason, parsePcap } from './capture.js';

export interface NetemOptions {
  delayMs?: number;
  jitterMs?: number;
  lossPercent?: number;
}

export interface TwoSiteOptions {
  /** MTU of both LANs (1500 or 9000). */
  lanMtu?: number;
  /** MTU of the routed WAN (default: lanMtu). Smaller than lanMtu is allowed (fragmentation tests). */
  wanMtu?: number;
  /** Delay/loss added by the router in both directions (tc netem on both router interfaces). */
  netem?: NetemOptions;
}

export interface TwoSite {
  lanMtu: number;
  wanMtu: number;
  ns: { ini: Netns; gwA: Netns; router: Netns; gwB: Netns; tgt: Netns };
  /** Interface names, each inside the namespace its key names. */
  iface: {
    ini: string;
    gwALan: string;
    gwAWan: string;
    routerA: string;
    routerB: string;
    gwBWan: string;
    gwBLan: string;
    tgt: string;
  };
  /** WAN addresses (prefix length `wanPrefix`). */
  ip: { gwAWan: string; routerA: string; routerB: string; gwBWan: string };
  wanPrefix: number;
  /** Deletes every namespace this topology created (idempotent). */
  close(): void;
}

function veth(nsA: Netns, a: string, nsB: Netns, b: string, mtu: number): void {
  nsA.ip('link', 'add', a, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', b, 'netns', nsB.name);
  nsB.ip('link', 'set', b, 'mtu', String(mtu));
  nsA.ip('link', 'set', a, 'up');
  nsB.ip('link', 'set', b, 'up');
}

function netemArgs(o: NetemOptions): string[] {
  const args: string[] = [];
  if (o.delayMs) args.push('delay', `${o.delayMs}ms`, ...(o.jitterMs ? [`${o.jitterMs}ms`] : []));
  if (o.lossPercent) args.push('loss', `${o.lossPercent}%`);
  return args;
}

export function createTwoSite(o: TwoSiteOptions = {}): TwoSite {
  const lanMtu = o.lanMtu ?? 1500;
  const wanMtu = o.wanMtu ?? lanMtu;
  const made: Netns[] = [];
  const mk = (prefix: string) => {
    const n = new Netns(prefix);
    made.push(n);
    return n;
  };
  const close = () => {
    for (const n of made.splice(0)) n.delete();
  };
  try {
    const ns = { ini: mk('ini'), gwA: mk('gwa'), router: mk('rtr'), gwB: mk('gwb'), tgt: mk('tgt') };
    const iface = {
      ini: 'lan0',
      gwALan: 'lan0',
      gwAWan: 'wan0',
      routerA: 'wanA',
      routerB: 'wanB',
      gwBWan: 'wan0',
      gwBLan: 'lan0',
      tgt: 'lan0',
    };
    const ip = { gwAWan: '10.91.1.2', routerA: '10.91.1.1', routerB: '10.91.2.1', gwBWan: '10.91.2.2' };
    veth(ns.ini, iface.ini, ns.gwA, iface.gwALan, lanMtu);
    veth(ns.gwA, iface.gwAWan, ns.router, iface.routerA, wanMtu);
    veth(ns.router, iface.routerB, ns.gwB, iface.gwBWan, wanMtu);
    veth(ns.gwB, iface.gwBLan, ns.tgt, iface.tgt, lanMtu);
    ns.gwA.ip('addr', 'add', `${ip.gwAWan}/24`, 'dev', iface.gwAWan);
    ns.router.ip('addr', 'add', `${ip.routerA}/24`, 'dev', iface.routerA);
    ns.router.ip('addr', 'add', `${ip.routerB}/24`, 'dev', iface.routerB);
    ns.gwB.ip('addr', 'add', `${ip.gwBWan}/24`, 'dev', iface.gwBWan);
    ns.gwA.ip('route', 'add', 'default', 'via', ip.routerA);
    ns.gwB.ip('route', 'add', 'default', 'via', ip.routerB);
    ns.router.exec('sysctl', '-q', '-w', 'net.ipv4.ip_forward=1');
    if (o.netem) {
      const args = netemArgs(o.netem);
      if (args.length > 0) {
        for (const dev of [iface.routerA, iface.routerB]) {
          ns.router.exec('tc', 'qdisc', 'add', 'dev', dev, 'root', 'netem', ...args);
        }
      }
    }
    return { lanMtu, wanMtu, ns, iface, ip, wanPrefix: 24, close };
  } catch (e) {
    close();
    throw e;
  }
}

let netemProbe: string | undefined | null = null;
/** Why `netem` cannot be used here (kernel without sch_netem), or undefined when it can. */
export function netemSkipReason(): string | undefined {
  if (netemProbe !== null) return netemProbe;
  const ns = new Netns('netem');
  try {
    ns.ip('link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'p1');
    const r = spawnSync(
      'ip',
      ['netns', 'exec', ns.name, 'tc', 'qdisc', 'add', 'dev', 'p0', 'root', 'netem', 'delay', '1ms'],
      { encoding: 'utf8' },
    );
    netemProbe = r.status === 0 ? undefined : `tc netem unavailable: ${r.stderr.trim() || 'tc failed'}`;
  } finally {
    ns.delete();
  }
  return netemProbe;
}

/** Why iptables rules cannot be added here, or undefined when they can. */
export function iptablesSkipReason(): string | undefined {
  return hasCommand('iptables') ? undefined : 'iptables is not installed';
}

export interface RoutedUdpBlock {
  /** Packets the rules have dropped so far. */
  droppedPackets(): number;
  /** Deletes the rules (idempotent; they also go with the router namespace). */
  remove(): void;
}

/**
 * Makes the router drop routed UDP to or from `port` (FORWARD chain), so the gateways' tunnel can
 * pass only through a relay on the router itself, whose traffic is local (INPUT/OUTPUT), not routed.
 */
export function blockRoutedUdp(site: TwoSite, port: number): RoutedUdpBlock {
  const router = site.ns.router;
  const tag = `aoegw-block-udp-${port}`;
  const rules = [
    ['-p', 'udp', '--dport', String(port), '-m', 'comment', '--comment', tag, '-j', 'DROP'],
    ['-p', 'udp', '--sport', String(port), '-m', 'comment', '--comment', tag, '-j', 'DROP'],
  ];
  // -w: wait for the xtables lock rather than fail when another test holds it.
  for (const r of rules) router.exec('iptables', '-w', '-A', 'FORWARD', ...r);
  let removed = false;
  return {
    droppedPackets: () => {
      let n = 0;
      // `-S -v` prints each rule with "-c PACKETS BYTES".
      for (const line of router.exec('iptables', '-w', '-S', 'FORWARD', '-v').split('\n')) {
        const m = line.includes(tag) ? /-c (\d+) \d+/.exec(line) : null;
        if (m) n += Number(m[1]);
      }
      return n;
    },
    remove: () => {
      if (removed) return;
      removed = true;
      for (const r of rules)
        spawnSync('ip', ['netns', 'exec', router.name, 'iptables', '-w', '-D', 'FORWARD', ...r]);
    },
  };
}

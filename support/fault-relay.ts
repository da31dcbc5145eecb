/**
 * Starts the fault relay (fault-relay-main.ts) for tests and benchmarks, in a namespace, and drives
 * it over its stdin/stdout protocol (fault-relay-protocol.ts). The process is tracked and killed by
 * PID (processes.ts), never by name.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { UdpEndpoint } from '../src/io/udp-address.js';
import type { FaultSettings } from './fault-plan.js';
import {
  type FaultRelayStats,
  type FaultUpdate,
  faultFlags,
  formatEndpoint,
  parseReadyLine,
} from './fault-relay-protocol.js';
import { GATEWAY_PORT } from './gateway-pair.js';
import { type Spawned, spawnTracked } from './processes.js';
import type { TwoSite } from './two-site.js';
import { waitFor } from './wait.js';

export type { FaultSettings } from './fault-plan.js';
export type { DirectionStats, FaultRelayStats, FaultUpdate } from './fault-relay-protocol.js';

export const RELAY_MAIN = join(import.meta.dirname, 'fault-relay-main.ts');

export interface FaultRelayOptions {
  /** Namespace to run in (`ip netns exec`); absent: this process's. */
  netns?: string;
  /** Where the relay listens for A's datagrams (port 0: any; the bound one is returned). */
  aSide: UdpEndpoint;
  /** Where datagrams arriving on the B side go. */
  aPeer: UdpEndpoint;
  bSide: UdpEndpoint;
  bPeer: UdpEndpoint;
  /** For both directions from the start; per direction later with set(). */
  faults?: Partial<FaultSettings>;
  seed?: number;
  /** recvmmsg/sendmmsg vector length (default 64). */
  batch?: number;
  readyTimeoutMs?: number;
}

export interface FaultRelay {
  /** Where the relay is bound. */
  readonly aSide: UdpEndpoint;
  readonly bSide: UdpEndpoint;
  readonly process: Spawned;
  /** Changes the given settings (the others stay); resolves once the relay applies them. */
  set(update: FaultUpdate): Promise<void>;
  /** Both directions lose everything for `ms` from when the relay reads this. */
  blackout(ms: number): Promise<void>;
  stats(): Promise<FaultRelayStats>;
  /** SIGTERM (SIGKILL after 5 s); resolves with the exit code (0 when it ended cleanly). */
  stop(): Promise<number | null>;
}

/** `--import` argument for tsx, as a file URL so it does not depend on the working directory. */
function tsxLoader(): string {
  return pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
}

export async function startFaultRelay(o: FaultRelayOptions): Promise<FaultRelay> {
  // --expose-gc: the relay collects its start-up garbage before it reports ready (fault-relay-main.ts).
  const node = [process.execPath, '--expose-gc', '--import', tsxLoader(), RELAY_MAIN];
  const args = [
    ...['--a-side', formatEndpoint(o.aSide), '--a-peer', formatEndpoint(o.aPeer)],
    ...['--b-side', formatEndpoint(o.bSide), '--b-peer', formatEndpoint(o.bPeer)],
    ...faultFlags(o.faults ?? {}),
    ...(o.seed !== undefined ? ['--seed', String(o.seed)] : []),
    ...(o.batch !== undefined ? ['--batch', String(o.batch)] : []),
  ];
  // `ip netns exec` execs node, so the PID held is the relay's own.
  const p = o.netns
    ? spawnTracked('ip', ['netns', 'exec', o.netns, ...node, ...args], { stdin: true })
    : spawnTracked(node[0]!, [...node.slice(1), ...args], { stdin: true });

  let bound: { aSide: UdpEndpoint; bSide: UdpEndpoint } | undefined;
  const waiting: { resolve: (msg: Record<string, unknown>) => void; reject: (e: Error) => void }[] = [];
  let partial = '';
  p.child.stdout?.on('data', (d: Buffer) => {
    partial += d.toString();
    for (let nl = partial.indexOf('\n'); nl >= 0; nl = partial.indexOf('\n')) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      bound ??= parseReadyLine(line);
      if (!line.startsWith('{')) continue;
      // Exactly one reply per command, in order.
      const w = waiting.shift();
      try {
        w?.resolve(JSON.parse(line) as Record<string, unknown>);
      } catch (e) {
        w?.reject(e as Error);
      }
    }
  });
  p.child.on('exit', () => {
    for (const w of waiting.splice(0)) w.reject(new Error(`fault relay exited: ${p.output()}`));
  });
  // Writing after the relay exited would raise EPIPE here; the pending replies are rejected above.
  p.child.stdin?.on('error', () => {});

  const ok = await waitFor(
    () => bound !== undefined || p.child.exitCode !== null,
    o.readyTimeoutMs ?? 15_000,
  );
  if (!ok || bound === undefined) {
    await p.stop('SIGKILL');
    throw new Error(`fault relay did not start: ${p.output()}`);
  }

  const command = (cmd: unknown) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      if (p.child.exitCode !== null || p.child.signalCode !== null) {
        reject(new Error(`fault relay has exited: ${p.output()}`));
        return;
      }
      waiting.push({
        resolve: (msg) =>
          typeof msg.error === 'string' ? reject(new Error(`fault relay: ${msg.error}`)) : resolve(msg),
        reject,
      });
      p.child.stdin?.write(`${JSON.stringify(cmd)}\n`);
    });

  return {
    aSide: bound.aSide,
    bSide: bound.bSide,
    process: p,
    set: async (update) => {
      await command({ set: update });
    },
    blackout: async (ms) => {
      await command({ blackout: ms });
    },
    stats: async () => (await command({ stats: true })).stats as FaultRelayStats,
    stop: () => p.stop(),
  };
}

export interface TwoSiteRelayOptions {
  /** The relay's port on both router addresses. */
  port: number;
  /** The gateways' tunnel port (default GATEWAY_PORT). */
  tunnelPort?: number;
  faults?: Partial<FaultSettings>;
  seed?: number;
}

/**
 * The relay on a TwoSite's router between the gateways' tunnel endpoints: side A on routerA:port
 * towards gwA, side B on routerB:port towards gwB. Pair it with startGatewayPair's `relay` option.
 */
export function startTwoSiteRelay(site: TwoSite, o: TwoSiteRelayOptions): Promise<FaultRelay> {
  const tunnelPort = o.tunnelPort ?? GATEWAY_PORT;
  return startFaultRelay({
    netns: site.ns.router.name,
    aSide: { address: site.ip.routerA, port: o.port },
    aPeer: { address: site.ip.gwAWan, port: tunnelPort },
    bSide: { address: site.ip.routerB, port: o.port },
    bPeer: { address: site.ip.gwBWan, port: tunnelPort },
    ...(o.faults ? { faults: o.faults } : {}),
    ...(o.seed !== undefined ? { seed: o.seed } : {}),
  });
}

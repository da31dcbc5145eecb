/**
 * Two `aoegw run` daemons on a TwoSite: A on gwA (imports, presented on its LAN), B on gwB
 * (built-in exports and forwards to native targets on its LAN), peered over the routed WAN with
 * the example keys. Writes both config files (the contract of issue 8, JSON), starts each daemon
 * in its namespace and waits for its ready line. The config paths are returned so a test can edit
 * one and restart that daemon (policy changes need a restart).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AOEGW, ROOT } from './aoegw.js';
import { type Spawned, spawnTracked } from './processes.js';
import { blockRoutedUdp, type RoutedUdpBlock, type TwoSite } from './two-site.js';
import { waitFor } from './wait.js';

export const GATEWAY_PORT = 7788;

export interface ExportSpec {
  target: string;
  /** Image file, or `memory:SIZE`. */
  path: string;
  name?: string;
  [key: string]: unknown;
}
export interface ForwardSpec {
  link: string;
  targets: string[];
}
export interface AllowSpec {
  targets: string[];
  access: 'ro' | 'rw';
}
export interface ImportSpec {
  remote: string;
  local: string;
  links?: string[];
}

export interface GatewaySideOptions {
  /** Built-in exports of this gateway. */
  exports?: ExportSpec[];
  /** Native targets on this gateway's LAN it relays to. */
  forwards?: ForwardSpec[];
  /** What the other gateway may use of this side's exports and forwards (deny by default). */
  allow?: AllowSpec[];
  /** Remote targets of the other gateway presented on this side's links. */
  imports?: ImportSpec[];
  /** More top-level config keys (merged last, so they can override the generated ones). */
  extra?: Record<string, unknown>;
  /** More keys of this side's peer entry. */
  peerExtra?: Record<string, unknown>;
}

export interface GatewayPairOptions {
  a?: GatewaySideOptions;
  b?: GatewaySideOptions;
  /** Where keys, configs and state files go (default: a fresh temp dir, removed by stop()). */
  dir?: string;
  port?: number;
  readyTimeoutMs?: number;
  /**
   * Tunnel through a fault relay on the router (support/fault-relay.ts, started by the caller) at
   * `port` on both router addresses: A's peer endpoint becomes routerA:port, B's routerB:port, and
   * the router drops routed tunnel UDP, so nothing bypasses the relay.
   */
  relay?: { port: number };
}

export interface GatewayConfigs {
  dir: string;
  configA: string;
  configB: string;
  keyA: string;
  keyB: string;
  stateA: string;
  stateB: string;
}

export interface GatewayPair extends GatewayConfigs {
  a: Spawned;
  b: Spawned;
  /** Stops one daemon (SIGTERM) and starts it again from its (possibly edited) config file. */
  restart(side: 'a' | 'b'): Promise<Spawned>;
  /** Stops both daemons; removes the directory if this helper made it. */
  stop(): Promise<void>;
  /** With `relay`: the router's rules against routed tunnel UDP (removed by stop()). */
  routedBlock?: RoutedUdpBlock;
}

/** Why `aoegw run` cannot be used: the built CLI has no `run` command yet. */
export function gatewayRunSkipReason(): string | undefined {
  const r = spawnSync(process.execPath, [AOEGW, 'run', '--help'], { encoding: 'utf8', timeout: 10_000 });
  // Exit status alone is not enough: for an unknown command commander prints the top-level help
  // and exits 0, so look for run's own usage line.
  return r.status === 0 && /Usage: aoegw run\b/.test(r.stdout) ? undefined : 'aoegw run not built';
}

function readKeyLine(path: string): string {
  const line = readFileSync(path, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l.length > 0 && !l.startsWith('#'));
  if (!line) throw new Error(`no key in ${path}`);
  return line;
}

/** Writes keys (mode 0600: the loader refuses others) and both config files. */
export function writeGatewayConfigs(site: TwoSite, o: GatewayPairOptions = {}): GatewayConfigs {
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'aoegw-gwpair-'));
  const port = o.port ?? GATEWAY_PORT;
  const keys = join(ROOT, 'keys-example');
  const copyKey = (side: 'a' | 'b') => {
    const p = join(dir, `gateway-${side}.key`);
    writeFileSync(p, readFileSync(join(keys, `gateway-${side}.key`)), { mode: 0o600 });
    chmodSync(p, 0o600);
    return p;
  };
  const keyA = copyKey('a');
  const keyB = copyKey('b');
  const pubA = readKeyLine(join(keys, 'gateway-a.pub'));
  const pubB = readKeyLine(join(keys, 'gateway-b.pub'));
  const stateA = join(dir, 'state-a.json');
  const stateB = join(dir, 'state-b.json');
  const side = (
    s: GatewaySideOptions,
    key: string,
    state: string,
    listenIp: string,
    lan: string,
    peer: { name: string; publicKey: string; endpoint: string },
  ) => ({
    privateKeyFile: key,
    listen: `${listenIp}:${port}`,
    stateFile: state,
    // Both sides keep their files in one directory: each its own control socket and enrollment file.
    controlSocket: state.replace(/\.json$/, '.sock'),
    enrollmentFile: state.replace(/\.json$/, '-enrollment.json'),
    links: [{ name: 'lan', iface: lan }],
    exports: s.exports ?? [],
    forwards: s.forwards ?? [],
    peers: [
      {
        ...peer,
        allow: s.allow ?? [],
        imports: s.imports ?? [],
        ...(s.peerExtra ?? {}),
      },
    ],
    ...(s.extra ?? {}),
  });
  const a = o.a ?? {};
  const b = o.b ?? {};
  const cfgA = side(a, keyA, stateA, site.ip.gwAWan, site.iface.gwALan, {
    name: 'b',
    publicKey: pubB,
    endpoint: o.relay ? `${site.ip.routerA}:${o.relay.port}` : `${site.ip.gwBWan}:${port}`,
  });
  const cfgB = side(b, keyB, stateB, site.ip.gwBWan, site.iface.gwBLan, {
    name: 'a',
    publicKey: pubA,
    endpoint: o.relay ? `${site.ip.routerB}:${o.relay.port}` : `${site.ip.gwAWan}:${port}`,
  });
  const configA = join(dir, 'gateway-a.json');
  const configB = join(dir, 'gateway-b.json');
  writeFileSync(configA, `${JSON.stringify(cfgA, null, 2)}\n`);
  writeFileSync(configB, `${JSON.stringify(cfgB, null, 2)}\n`);
  return { dir, configA, configB, keyA, keyB, stateA, stateB };
}

/**
 * The daemon's SIGUSR1 stats (docs/gateway.md, "Signals"): sends the signal and parses the JSON line
 * it prints on stderr.
 */
// biome-ignore lint/suspicious/noExplicitAny: parsed JSON of the daemon's stats, checked field by field
export async function gatewayStats(p: Spawned, timeoutMs = 2000): Promise<Record<string, any>> {
  const before = p.output().length;
  p.child.kill('SIGUSR1');
  const fresh = () => p.output().slice(before);
  await waitFor(() => /(^|\n)\{"links".*\}\n/.test(fresh()), timeoutMs);
  const lines = fresh()
    .split('\n')
    .filter((l) => l.startsWith('{"links"') && l.endsWith('}'));
  if (lines.length === 0) throw new Error(`no stats line after SIGUSR1: ${fresh().slice(-2000)}`);
  return JSON.parse(lines[lines.length - 1]!);
}

/** `aoegw run --config FILE` in this namespace (its links name theirs); resolves once it is ready. */
export async function startRun(config: string, timeoutMs = 15_000): Promise<Spawned> {
  const p = spawnTracked(process.execPath, [AOEGW, 'run', '--config', config]);
  const ok = await waitFor(() => /ready: /.test(p.output()) || p.child.exitCode !== null, timeoutMs);
  if (!ok || p.child.exitCode !== null) {
    await p.stop('SIGKILL');
    throw new Error(`aoegw run did not start: ${p.output()}`);
  }
  return p;
}

/** `aoegw run --config FILE` inside namespace `ns`; resolves once it printed a ready line. */
export async function startGateway(ns: string, config: string, timeoutMs = 15_000): Promise<Spawned> {
  // `ip netns exec` execs node, so the PID we hold is the daemon's own (CPU accounting, kill).
  const p = spawnTracked('ip', ['netns', 'exec', ns, process.execPath, AOEGW, 'run', '--config', config]);
  const ok = await waitFor(() => /ready/.test(p.output()) || p.child.exitCode !== null, timeoutMs);
  if (!ok || p.child.exitCode !== null) {
    await p.stop('SIGKILL');
    throw new Error(`aoegw run in ${ns} did not start: ${p.output()}`);
  }
  return p;
}

export async function startGatewayPair(site: TwoSite, o: GatewayPairOptions = {}): Promise<GatewayPair> {
  const ownDir = o.dir === undefined;
  const cfg = writeGatewayConfigs(site, o);
  const t = o.readyTimeoutMs ?? 15_000;
  const procs: { a?: Spawned; b?: Spawned } = {};
  let routedBlock: RoutedUdpBlock | undefined;
  try {
    if (o.relay) routedBlock = blockRoutedUdp(site, o.port ?? GATEWAY_PORT);
  } catch (e) {
    if (ownDir) rmSync(cfg.dir, { recursive: true, force: true });
    throw e;
  }
  const stop = async () => {
    for (const k of ['a', 'b'] as const) {
      await procs[k]?.stop();
      delete procs[k];
    }
    routedBlock?.remove();
    if (ownDir) rmSync(cfg.dir, { recursive: true, force: true });
  };
  try {
    procs.b = await startGateway(site.ns.gwB.name, cfg.configB, t);
    procs.a = await startGateway(site.ns.gwA.name, cfg.configA, t);
  } catch (e) {
    await stop();
    throw e;
  }
  const pair: GatewayPair = {
    ...cfg,
    a: procs.a,
    b: procs.b,
    restart: async (side) => {
      await procs[side]?.stop();
      const ns = side === 'a' ? site.ns.gwA.name : site.ns.gwB.name;
      const p = await startGateway(ns, side === 'a' ? cfg.configA : cfg.configB, t);
      procs[side] = p;
      pair[side] = p;
      return p;
    },
    stop,
    ...(routedBlock ? { routedBlock } : {}),
  };
  return pair;
}

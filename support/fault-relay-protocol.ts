/**
 * How the fault relay (fault-relay-main.ts) is told what to do: its command line, the JSON commands
 * it reads on stdin and the lines it answers with (one per command, in order), as specified in
 * docs/fault-relay.md. Shared by the relay and its launcher (fault-relay.ts), so both sides parse
 * and format the same way.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { parseArgs } from 'node:util';
import type { UdpEndpoint } from '../src/io/udp-address.js';
import { checkFaults, type FaultCounters, type FaultSettings } from './fault-plan.js';

export type Direction = 'a2b' | 'b2a';

export interface FaultUpdate {
  both?: Partial<FaultSettings>;
  a2b?: Partial<FaultSettings>;
  b2a?: Partial<FaultSettings>;
}

export type ControlCommand = { set: FaultUpdate } | { blackout: number } | { stats: true };

export interface DirectionStats extends FaultCounters {
  /** Copies the sending socket did not take (its buffer stayed full, or the send failed). */
  sendDropped: number;
}

export interface FaultRelayStats {
  a2b: DirectionStats;
  b2a: DirectionStats;
  /** Datagram copies held in the pool now (both directions). */
  poolInUse: number;
  /** Socket errors reported (each also logged on stderr, at most once a second). */
  socketErrors: number;
}

export interface RelayArgs {
  aSide: UdpEndpoint;
  bSide: UdpEndpoint;
  aPeer: UdpEndpoint;
  bPeer: UdpEndpoint;
  /** For both directions. */
  faults: Partial<FaultSettings>;
  seed: number;
  /** recvmmsg/sendmmsg vector length. */
  batch: number;
}

export const USAGE = `usage: fault-relay-main.ts --a-side IP:PORT --a-peer IP:PORT --b-side IP:PORT --b-peer IP:PORT
  [--drop PCT] [--dup PCT] [--reorder PCT] [--reorder-after N] [--reorder-delay MS]
  [--delay MS] [--jitter MS] [--max-size BYTES] [--seed N] [--batch N]
Datagrams arriving on the A side go out of the B side to the B peer, and back the other way.`;

/** The command-line flags of each fault setting (for both directions). */
const FAULT_FLAGS: Record<string, keyof FaultSettings> = {
  drop: 'dropPercent',
  dup: 'duplicatePercent',
  reorder: 'reorderPercent',
  'reorder-after': 'reorderAfter',
  'reorder-delay': 'reorderDelayMs',
  delay: 'delayMs',
  jitter: 'jitterMs',
  'max-size': 'maxSizeBytes',
};

/** The flags that give `faults` (the launcher starts the relay with these). */
export function faultFlags(faults: Partial<FaultSettings>): string[] {
  const out: string[] = [];
  for (const [flag, key] of Object.entries(FAULT_FLAGS)) {
    const v = faults[key];
    if (v !== undefined) out.push(`--${flag}`, String(v));
  }
  return out;
}

function numberArg(flag: string, text: string): number {
  const v = Number(text);
  if (text.trim() === '' || !Number.isFinite(v)) throw new RangeError(`--${flag} ${text}: not a number`);
  return v;
}

export function parseRelayArgs(argv: string[]): RelayArgs {
  const strings = ['a-side', 'b-side', 'a-peer', 'b-peer', 'seed', 'batch', ...Object.keys(FAULT_FLAGS)];
  const { values } = parseArgs({
    args: argv,
    options: Object.fromEntries(strings.map((s) => [s, { type: 'string' as const }])),
    strict: true,
    allowPositionals: false,
  });
  const endpoint = (flag: string) => {
    const text = values[flag];
    if (typeof text !== 'string') throw new RangeError(`--${flag} is required`);
    return parseEndpoint(text, `--${flag}`);
  };
  const faults: Record<string, number> = {};
  for (const [flag, key] of Object.entries(FAULT_FLAGS)) {
    const text = values[flag];
    if (typeof text === 'string') faults[key] = numberArg(flag, text);
  }
  const seed = typeof values.seed === 'string' ? numberArg('seed', values.seed) : 1;
  if (!Number.isInteger(seed)) throw new RangeError(`--seed ${seed}: expected an integer`);
  const batch = typeof values.batch === 'string' ? numberArg('batch', values.batch) : 64;
  if (!Number.isInteger(batch) || batch < 1 || batch > 1024) {
    throw new RangeError(`--batch ${batch}: expected an integer in 1..1024`);
  }
  return {
    aSide: endpoint('a-side'),
    bSide: endpoint('b-side'),
    aPeer: endpoint('a-peer'),
    bPeer: endpoint('b-peer'),
    faults: checkFaults(faults),
    seed,
    batch,
  };
}

/** "IPv4:PORT" or "[IPv6]:PORT". */
export function parseEndpoint(text: string, what = 'endpoint'): UdpEndpoint {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text);
  const address = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  const ok = address !== undefined && (m?.[1] ? isIPv6(address.split('%')[0]!) : isIPv4(address));
  if (!ok || port > 65535) throw new RangeError(`${what} '${text}': expected IPv4:PORT or [IPv6]:PORT`);
  return { address, port };
}

export function formatEndpoint(ep: UdpEndpoint): string {
  return ep.address.includes(':') ? `[${ep.address}]:${ep.port}` : `${ep.address}:${ep.port}`;
}

/** Each direction has its own generator, so one direction's traffic does not shift the other's faults. */
export function directionSeed(seed: number, dir: Direction): number {
  return dir === 'a2b' ? seed >>> 0 : (seed ^ 0x5bd1e995) >>> 0;
}

export const READY_PREFIX = 'relay ready';

export function readyLine(aSide: UdpEndpoint, bSide: UdpEndpoint): string {
  return `${READY_PREFIX} a=${formatEndpoint(aSide)} b=${formatEndpoint(bSide)}`;
}

/** The bound endpoints from a ready line (ports resolved when 0 was asked), or undefined. */
export function parseReadyLine(line: string): { aSide: UdpEndpoint; bSide: UdpEndpoint } | undefined {
  const m = /^relay ready a=(\S+) b=(\S+)$/.exec(line.trim());
  if (!m) return undefined;
  return { aSide: parseEndpoint(m[1]!), bSide: parseEndpoint(m[2]!) };
}

/** One control line; throws with the reason for the {"error"} reply. */
export function parseControl(line: string): ControlCommand {
  let msg: unknown;
  try {
    msg = JSON.parse(line);
  } catch {
    throw new SyntaxError(`not JSON: ${line.slice(0, 80)}`);
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg) || Object.keys(msg).length !== 1) {
    throw new TypeError('expected an object with one of the keys set, blackout, stats');
  }
  const m = msg as Record<string, unknown>;
  if ('set' in m) {
    const set = m.set;
    if (typeof set !== 'object' || set === null || Array.isArray(set)) {
      throw new TypeError('set: expected {"both"|"a2b"|"b2a": {...}}');
    }
    const update: FaultUpdate = {};
    for (const [k, v] of Object.entries(set)) {
      if (k !== 'both' && k !== 'a2b' && k !== 'b2a') throw new RangeError(`set: unknown direction '${k}'`);
      update[k] = checkFaults(v);
    }
    return { set: update };
  }
  if ('blackout' in m) {
    const ms = m.blackout;
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0 || ms > 3_600_000) {
      throw new RangeError(`blackout: expected milliseconds in 0..3600000, not ${JSON.stringify(ms)}`);
    }
    return { blackout: ms };
  }
  if ('stats' in m && m.stats === true) return { stats: true };
  throw new TypeError(`unknown command ${line.slice(0, 80)}`);
}

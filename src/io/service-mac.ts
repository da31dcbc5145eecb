/**
 * A link's service MAC (links[].mac): an address that belongs to a failover resource, not to the
 * host. It is put on the interface when the link opens and the interface's own address is put back
 * when it closes. A daemon that dies holding it (SIGKILL, a crash, the watchdog) cannot, so before
 * the service MAC goes on, a record is written: node-local (/run/aoegw, gone with a reboot, as is
 * the MAC change), one per interface (namespace + name), saying which interface, its own address,
 * the service MAC, and the holder (pid, config file). From it a restart in place knows the own
 * address, and `aoegw release-mac --config F` (the Pacemaker agent's stop) puts it back once the
 * holder is gone — without reading the config, which may be missing or broken by then.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { AoegwError } from '../errors.js';
import { writeNewFileSynced } from './durable-file.js';
import { fromNative, type NativeInterfaceInfo, nativeAddon, netnsPath } from './native.js';

export interface ServiceMac {
  /** The address to put on the interface. */
  mac: Buffer;
  /** The config file of the daemon that holds it (absolute), for release-mac to find its records. */
  config?: string;
  /** Where records live (default AOEGW_RUN_DIR or /run/aoegw). */
  runDir?: string;
}

interface MacRecord {
  iface: string;
  netns: string | null;
  /** null: not known (the interface had the service MAC already and no record said). */
  own: string | null;
  service: string;
  pid: number;
  config: string | null;
}

export function defaultRunDir(): string {
  return process.env.AOEGW_RUN_DIR ?? '/run/aoegw';
}

/** Sets an interface's MAC address (needs CAP_NET_ADMIN in the interface's namespace). */
export function setMac(iface: string, mac: Buffer, netns?: string): void {
  try {
    nativeAddon().setInterface(iface, { mac }, netnsPath(netns));
  } catch (e) {
    throw fromNative(e);
  }
}

function readInfo(iface: string, netns?: string): NativeInterfaceInfo {
  try {
    return nativeAddon().interfaceInfo(iface, netnsPath(netns));
  } catch (e) {
    throw fromNative(e);
  }
}

/** "aa:bb:cc:dd:ee:ff" (the io layer keeps its own two lines rather than reach up to aoe/). */
function macText(mac: Buffer): string {
  return [...mac].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

function macBytes(text: unknown): Buffer | undefined {
  return typeof text === 'string' && /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(text)
    ? Buffer.from(text.replaceAll(':', ''), 'hex')
    : undefined;
}

function recordPath(runDir: string, iface: string, netns: string | undefined): string {
  return join(runDir, `${encodeURIComponent(netns ?? '')}@${encodeURIComponent(iface)}.mac.json`);
}

function readRecord(path: string): MacRecord | undefined {
  try {
    const r = JSON.parse(readFileSync(path, 'utf8')) as MacRecord;
    if (typeof r.iface !== 'string' || !macBytes(r.service) || (r.own !== null && !macBytes(r.own)))
      return undefined;
    return r;
  } catch {
    return undefined;
  }
}

/** Written durably (an exclusive temporary file, fsync, rename) before anything changes. */
function writeRecord(path: string, r: MacRecord): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    mkdirSync(join(path, '..'), { recursive: true, mode: 0o700 });
    rmSync(tmp, { force: true });
    writeNewFileSynced(tmp, `${JSON.stringify(r)}\n`);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new AoegwError(
      'ERR_SERVICE_MAC',
      `cannot record the own MAC of the interface in ${path} (so it could not be put back): ${(e as Error).message}`,
    );
  }
}

/**
 * Puts the service MAC on `iface`; returns the own address to put back at close, undefined when
 * it is not known (the interface had the service MAC already, and no record of an earlier holder
 * says what was there before: the caller says so).
 */
export function takeServiceMac(iface: string, netns: string | undefined, s: ServiceMac): Buffer | undefined {
  const path = recordPath(s.runDir ?? defaultRunDir(), iface, netns);
  const earlier = readRecord(path);
  const current = readInfo(iface, netns).mac;
  let own: Buffer | undefined;
  // An earlier holder's service MAC (this one's, or one the config had before) is not the own
  // address: the record of that holder says what is.
  if (earlier && earlier.iface === iface && current.equals(macBytes(earlier.service)!))
    own = earlier.own === null ? undefined : macBytes(earlier.own);
  else if (!current.equals(s.mac)) own = Buffer.from(current);
  writeRecord(path, {
    iface,
    netns: netns ?? null,
    own: own ? macText(own) : null,
    service: macText(s.mac),
    pid: process.pid,
    config: s.config ?? null,
  });
  if (!current.equals(s.mac)) setMac(iface, s.mac, netns);
  return own;
}

export type ReleaseOutcome = 'released' | 'not-held' | 'own-unknown';

/**
 * This process gives the service MAC up: the own address goes back if the interface still has the
 * service MAC (someone else's address stays), and the record goes. 'own-unknown': the record stays
 * for whoever sets the address by hand. Throws when the interface cannot be read or changed.
 */
export function releaseServiceMac(
  iface: string,
  netns: string | undefined,
  s: ServiceMac,
  own: Buffer | undefined,
): ReleaseOutcome {
  const path = recordPath(s.runDir ?? defaultRunDir(), iface, netns);
  if (!readInfo(iface, netns).mac.equals(s.mac)) {
    rmSync(path, { force: true });
    return 'not-held';
  }
  if (own === undefined) return 'own-unknown';
  setMac(iface, own, netns);
  rmSync(path, { force: true });
  return 'released';
}

export interface ReleasedRecord {
  iface: string;
  netns: string | null;
  outcome: ReleaseOutcome | 'held' | 'failed';
  detail: string;
}

/** Whether `pid` is a live process started with `config` on its command line (the holder itself). */
function holds(pid: number, config: string): boolean {
  if (pid === process.pid) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(config);
  } catch {
    return false;
  }
}

/**
 * After the daemon of `config` is gone: every interface whose record names that config gets its
 * own address back (or is reported). Records of a live holder are left alone ('held').
 */
export function releaseRecorded(config: string, runDir = defaultRunDir()): ReleasedRecord[] {
  let names: string[];
  try {
    names = readdirSync(runDir).filter((n) => n.endsWith('.mac.json'));
  } catch {
    return [];
  }
  const out: ReleasedRecord[] = [];
  for (const name of names) {
    const path = join(runDir, name);
    const r = readRecord(path);
    if (!r || r.config !== config) continue;
    const netns = r.netns ?? undefined;
    const base = { iface: r.iface, netns: r.netns };
    if (holds(r.pid, config)) {
      out.push({ ...base, outcome: 'held', detail: `pid ${r.pid} runs with ${config} and holds it` });
      continue;
    }
    try {
      const own = r.own === null ? undefined : macBytes(r.own);
      const outcome = releaseServiceMac(r.iface, netns, { mac: macBytes(r.service)!, runDir }, own);
      const detail =
        outcome === 'released'
          ? `own MAC ${r.own} back`
          : outcome === 'not-held'
            ? `no longer has the service MAC ${r.service}`
            : `still has the service MAC ${r.service} and its own address is unknown (set one: ip link set ${r.iface} address …)`;
      out.push({ ...base, outcome, detail });
    } catch (e) {
      out.push({ ...base, outcome: 'failed', detail: (e as Error).message });
    }
  }
  return out;
}

/**
 * A link's service MAC (links[].mac): an address that belongs to a failover resource, not to the
 * host. It is put on the interface when the link opens and the interface's own address is put back
 * when it closes. The own address is written to a record file before the service MAC goes on, so a
 * daemon that died holding it (SIGKILL, a crash, the watchdog) can still be undone: by the next
 * start on this node (the interface then already has the service MAC) and by `aoegw release-mac`,
 * which the Pacemaker agent runs after every stop. Without the record nobody could know what the
 * interface's address was.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { AoegwError } from '../errors.js';
import { fromNative, type NativeInterfaceInfo, nativeAddon, netnsPath } from './native.js';

export interface ServiceMac {
  /** The address to put on the interface. */
  mac: Buffer;
  /** File that keeps the interface's own address while the service MAC is on it. */
  record: string;
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

/** The own address kept in `record`, or undefined (no record, or not a MAC). */
export function readOwnMac(record: string): Buffer | undefined {
  let text: string;
  try {
    text = readFileSync(record, 'utf8').trim();
  } catch {
    return undefined;
  }
  return /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(text)
    ? Buffer.from(text.replaceAll(':', ''), 'hex')
    : undefined;
}

/** Writes the own address durably (temporary file, fsync, rename) before anything changes. */
function writeOwnMac(record: string, own: Buffer): void {
  const tmp = `${record}.tmp-${process.pid}`;
  try {
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, `${macText(own)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, record);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new AoegwError(
      'ERR_SERVICE_MAC',
      `cannot record the own MAC of the interface in ${record} (so it could not be put back): ${(e as Error).message}`,
    );
  }
}

/**
 * Puts the service MAC on `iface`; returns the own address to put back at close. When the
 * interface already has it (a daemon died holding it), the own address comes from the record;
 * undefined when there is none (nothing can be put back: the caller says so).
 */
export function takeServiceMac(iface: string, netns: string | undefined, s: ServiceMac): Buffer | undefined {
  const current = readInfo(iface, netns).mac;
  if (current.equals(s.mac)) return readOwnMac(s.record);
  const own = Buffer.from(current);
  writeOwnMac(s.record, own);
  setMac(iface, s.mac, netns);
  return own;
}

export type ReleaseOutcome = 'released' | 'not-held' | 'own-unknown';

/**
 * Puts the own address back if the interface still has the service MAC (someone else's address
 * stays), and forgets the record. 'own-unknown': it has the service MAC and no record says what
 * to put back. Throws when the interface cannot be read or changed.
 */
export function releaseServiceMac(
  iface: string,
  netns: string | undefined,
  s: ServiceMac,
  own: Buffer | undefined = readOwnMac(s.record),
): ReleaseOutcome {
  if (!readInfo(iface, netns).mac.equals(s.mac)) {
    rmSync(s.record, { force: true });
    return 'not-held';
  }
  if (own === undefined) return 'own-unknown';
  setMac(iface, own, netns);
  rmSync(s.record, { force: true });
  return 'released';
}

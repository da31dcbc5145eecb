/**
 * Promise-level operations over a TargetClient: IDENTIFY, read, write, flush, and discovery of
 * every target on a link (Query Config + IDENTIFY each responder).
 */
import { AtaOp, SECTOR_SIZE } from '../aoe/constants.js';
import { type IdentifyParsed, parseIdentify } from '../aoe/identify.js';
import { formatMac } from '../aoe/mac.js';
import type { AoegwError } from '../errors.js';
import type { ConfigAdvert, Initiator } from './initiator.js';
import { formatTargetId } from './target-address.js';
import type { Io, TargetClient } from './target-client.js';

function run(start: (cb: (err: AoegwError | null, io: Io) => void) => void): Promise<Io> {
  return new Promise((resolve, reject) => start((err, io) => (err ? reject(err) : resolve(io))));
}

export async function identify(ini: Initiator, c: TargetClient): Promise<IdentifyParsed> {
  const buf = Buffer.alloc(SECTOR_SIZE);
  await run((cb) => c.command(AtaOp.IDENTIFY_DEVICE, buf, ini.now(), cb));
  return parseIdentify(buf);
}

export async function readSectors(
  ini: Initiator,
  c: TargetClient,
  lba: number,
  into: Buffer,
  off = 0,
  sectors = (into.length - off) / SECTOR_SIZE,
): Promise<void> {
  await run((cb) => c.read(lba, sectors, into, off, ini.now(), cb));
}

export async function writeSectors(
  ini: Initiator,
  c: TargetClient,
  lba: number,
  from: Buffer,
  off = 0,
  sectors = (from.length - off) / SECTOR_SIZE,
): Promise<void> {
  await run((cb) => c.write(lba, sectors, from, off, ini.now(), cb));
}

/**
 * Flushes the target's write cache with the command its IDENTIFY data advertises (vblade has
 * FLUSH CACHE but aborts FLUSH CACHE EXT). Returns false when the target advertises neither.
 */
export async function flushCache(ini: Initiator, c: TargetClient, id: IdentifyParsed): Promise<boolean> {
  const op = id.flushCacheExt ? AtaOp.FLUSH_CACHE_EXT : id.flushCache ? AtaOp.FLUSH_CACHE : 0;
  if (op === 0) return false;
  await run((cb) => c.command(op, null, ini.now(), cb));
  return true;
}

export interface DiscoveredTarget {
  target: string;
  major: number;
  minor: number;
  mac: string;
  bufferCount: number;
  sectorsPerFrame: number;
  firmware: string;
  aoeVersion: number;
  config: string;
  sectors: number | null;
  capacityBytes: number | null;
  model: string | null;
  serial: string | null;
  lba48: boolean | null;
  error?: string;
}

/** Broadcast discovery, then IDENTIFY of every (target, MAC) that answered. */
export async function discover(ini: Initiator, waitMs = 1000): Promise<DiscoveredTarget[]> {
  const adverts = await ini.queryConfig(waitMs);
  adverts.sort((a, b) => a.major - b.major || a.minor - b.minor || a.mac.compare(b.mac));
  const out: DiscoveredTarget[] = [];
  for (const a of adverts) out.push(await describe(ini, a));
  return out;
}

async function describe(ini: Initiator, a: ConfigAdvert): Promise<DiscoveredTarget> {
  const row: DiscoveredTarget = {
    target: formatTargetId(a),
    major: a.major,
    minor: a.minor,
    mac: formatMac(a.mac),
    bufferCount: a.bufferCount,
    sectorsPerFrame: a.sectorCount,
    firmware: `0x${a.firmwareVersion.toString(16).padStart(4, '0')}`,
    aoeVersion: a.aoeVersion,
    config: a.config.toString('latin1'),
    sectors: null,
    capacityBytes: null,
    model: null,
    serial: null,
    lba48: null,
  };
  // A separate client per path: IDENTIFY must go to this MAC, not to the first one that answered.
  const c = ini.client(a, { giveUpMs: 3000, maxWindow: 1 });
  try {
    const id = await identify(ini, c);
    row.sectors = id.sectors;
    row.capacityBytes = id.sectors * SECTOR_SIZE;
    row.model = id.model;
    row.serial = id.serial;
    row.lba48 = id.lba48;
  } catch (e) {
    row.error = (e as Error).message;
  } finally {
    ini.dropClient(a.major, a.minor);
  }
  return row;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v >= 100 || u === 0 ? 0 : 1)} ${units[u]}`;
}

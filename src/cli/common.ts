/** Pieces every initiator-side command shares: opening the link, finding a target, output. */

import type { IdentifyParsed } from '../aoe/identify.js';
import { AoegwError } from '../errors.js';
import { type ConfigAdvert, Initiator } from '../initiator/initiator.js';
import { identify } from '../initiator/operations.js';
import { parseTargetId } from '../initiator/target-address.js';
import type { TargetClient } from '../initiator/target-client.js';
import { PacketLink } from '../io/packet-link.js';

export interface LinkCliOptions {
  iface: string;
  netns?: string;
}

export function openInitiator(o: LinkCliOptions): Initiator {
  return new Initiator(PacketLink.open({ iface: o.iface, ...(o.netns ? { netns: o.netns } : {}) }));
}

export interface OpenedTarget {
  advert: ConfigAdvert;
  client: TargetClient;
  sectors: number;
  lba48: boolean;
  identity: IdentifyParsed;
}

/** Finds eS.L with a directed Query Config, opens a client and IDENTIFYs it. */
export async function openTarget(
  ini: Initiator,
  target: string,
  opts: { waitMs?: number; mac?: string; window?: number } = {},
): Promise<OpenedTarget> {
  const id = parseTargetId(target);
  const adverts = await ini.queryConfig(opts.waitMs ?? 500, id);
  const wanted = opts.mac?.toLowerCase().replace(/[:-]/g, '');
  const advert = wanted ? adverts.find((a) => a.mac.toString('hex') === wanted) : adverts[0];
  if (!advert) {
    throw new AoegwError(
      'ERR_NO_TARGET',
      `no answer from ${target}${opts.mac ? ` at ${opts.mac}` : ''} on ${ini.link.name} within ${opts.waitMs ?? 500} ms`,
    );
  }
  const client = ini.client(advert, opts.window ? { maxWindow: opts.window } : {});
  const info = await identify(ini, client);
  return { advert, client, sectors: info.sectors, lba48: info.lba48, identity: info };
}

export function intOption(name: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new AoegwError('ERR_USAGE', `${name} must be an integer in ${min}..${max}, got '${value}'`);
    }
    return n;
  };
}

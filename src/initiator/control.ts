/**
 * The AoE control commands from the initiator side: Query Config (set/test the config string),
 * Mac Mask List and Reserve/Release. Built with the friendly codec: these are rare, not hot.
 */

import { decodeFrame } from '../aoe/decode-frame.js';
import { encodeFrame } from '../aoe/encode-frame.js';
import { formatMac } from '../aoe/mac.js';
import type { AoeMessage, MacMaskMessage, QueryConfigMessage, ReserveMessage } from '../aoe/message.js';
import { AoegwError } from '../errors.js';
import type { Initiator } from './initiator.js';
import type { TargetId } from './target-address.js';

export interface ControlTarget extends TargetId {
  /** The target's MAC (from discovery); broadcast if omitted. */
  mac?: Buffer;
}

function base(ini: Initiator, t: ControlTarget, tag: number) {
  return {
    dst: t.mac ? formatMac(t.mac) : 'ff:ff:ff:ff:ff:ff',
    src: formatMac(ini.link.mac),
    response: false,
    errorFlag: false,
    error: 0,
    major: t.major,
    minor: t.minor,
    tag,
  };
}

async function roundTrip<T extends AoeMessage>(
  ini: Initiator,
  msg: (tag: number) => AoeMessage,
  waitMs: number,
): Promise<T> {
  const frame = await ini.exchange((tag) => encodeFrame(msg(tag)), waitMs);
  if (!frame) throw new AoegwError('ERR_TIMEOUT', `no reply within ${waitMs} ms`);
  const r = decodeFrame(frame);
  if (!r.ok) throw r.error;
  return r.value as T;
}

/** Query Config with a sub-command (0 read … 4 force set); the reply, E flag included. */
export function queryConfig(
  ini: Initiator,
  t: ControlTarget,
  ccmd: number,
  config: Buffer = Buffer.alloc(0),
  waitMs = 1000,
): Promise<QueryConfigMessage> {
  return roundTrip(
    ini,
    (tag) => ({
      ...base(ini, t, tag),
      command: 'query-config',
      bufferCount: 0,
      firmwareVersion: 0,
      sectorCount: 0,
      aoeVersion: 1,
      ccmd,
      config,
    }),
    waitMs,
  );
}

/** Mac Mask List: read (mcmd 0) or edit (mcmd 1) with directives {dcmd 1 add | 2 delete, mac}. */
export function macMask(
  ini: Initiator,
  t: ControlTarget,
  mcmd: number,
  directives: { dcmd: number; mac: string }[] = [],
  waitMs = 1000,
): Promise<MacMaskMessage> {
  return roundTrip(
    ini,
    (tag) => ({ ...base(ini, t, tag), command: 'mac-mask', mcmd, merror: 0, directives }),
    waitMs,
  );
}

/** Reserve/Release: read (0), set (1), force set (2) with a MAC list (empty = release). */
export function reserve(
  ini: Initiator,
  t: ControlTarget,
  rcmd: number,
  macs: string[] = [],
  waitMs = 1000,
): Promise<ReserveMessage> {
  return roundTrip(ini, (tag) => ({ ...base(ini, t, tag), command: 'reserve', rcmd, macs }), waitMs);
}

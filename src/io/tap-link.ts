/**
 * A TAP device (IFF_TAP | IFF_NO_PI) owned by this process: frames the kernel sends to the device
 * arrive here, frames written here appear as received by the kernel. The gateway attaches a local
 * initiator to such a device so that plaintext AoE never touches a wire.
 */
import { randomBytes } from 'node:crypto';
import { AoegwError } from '../errors.js';
import { BatchedFrameLink } from './batched-frame-link.js';
import type { BatchOptions } from './batched-link.js';
import { fromNative, type NativeInterfaceInfo, nativeAddon, netnsPath } from './native.js';

export interface TapLinkOptions extends BatchOptions {
  /** Device name; empty lets the kernel choose (tapN). */
  name?: string;
  netns?: string;
  /** MTU to set (default 1500). */
  mtu?: number;
  /** Bring the device up after creating it (default true). */
  up?: boolean;
}

export class TapLink extends BatchedFrameLink {
  readonly name: string;
  /** The MAC this end sends from: random, locally administered, unicast. */
  readonly mac: Buffer;
  /** The kernel-side device's MAC (the source of frames the kernel sends into the TAP). */
  readonly deviceMac: Buffer;
  readonly mtu: number;
  readonly maxFrame: number;

  private constructor(opts: TapLinkOptions, mtu: number) {
    super(Math.max(128, (mtu + 14 + 63) & ~63), opts, false);
    this.mtu = mtu;
    this.maxFrame = mtu + 14;
    this.name = opts.name ?? '';
    this.mac = randomBytes(6);
    this.mac[0] = (this.mac[0]! & 0xfc) | 0x02;
    this.deviceMac = Buffer.alloc(6);
  }

  static open(opts: TapLinkOptions = {}): TapLink {
    const mtu = opts.mtu ?? 1500;
    if (opts.name && opts.name.length > 15) {
      throw new AoegwError('ERR_NO_SUCH_INTERFACE', `TAP name '${opts.name}' is longer than 15 characters`);
    }
    const link = new TapLink(opts, mtu);
    const ns = netnsPath(opts.netns);
    try {
      const o = { ...link.arenaOptions(opts), name: opts.name ?? '' };
      link.handle = link.native.openTap(ns ? { ...o, netns: ns } : o);
      const info = link.native.linkInfo(link.handle) as NativeInterfaceInfo;
      (link as { name: string }).name = info.name;
      link.native.setInterface(info.name, { mtu, up: opts.up ?? true }, ns);
      const after = link.native.linkInfo(link.handle) as NativeInterfaceInfo;
      after.mac.copy(link.deviceMac);
    } catch (e) {
      link.close();
      throw fromNative(e);
    }
    return link;
  }

  /** The kernel-side MAC of the device (frames the kernel sends carry it as source). */
  static interfaceInfo(name: string, netns?: string): NativeInterfaceInfo {
    return nativeAddon().interfaceInfo(name, netnsPath(netns));
  }
}

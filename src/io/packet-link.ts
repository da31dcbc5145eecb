/**
 * AF_PACKET raw socket bound to the AoE EtherType on one interface (see native/aoegw_native.c).
 */
import { AoegwError } from '../errors.js';
import { BatchedFrameLink } from './batched-frame-link.js';
import type { BatchOptions } from './batched-link.js';
import { fromNative, type NativeInterfaceInfo, nativeAddon, netnsPath } from './native.js';

export const AOE_ETHERTYPE = 0x88a2;

export interface PacketLinkOptions extends BatchOptions {
  /** Interface name, e.g. "eth0". */
  iface: string;
  /** Network namespace: an `ip netns` name or an absolute path. The socket lives there. */
  netns?: string;
  /** EtherType to bind (default 0x88A2). */
  ethertype?: number;
}

/** Reads index, MAC, MTU and state of an interface (optionally inside a namespace). */
export function interfaceInfo(iface: string, netns?: string): NativeInterfaceInfo {
  try {
    return nativeAddon().interfaceInfo(iface, netnsPath(netns));
  } catch (e) {
    throw fromNative(e);
  }
}

export class PacketLink extends BatchedFrameLink {
  readonly name: string;
  readonly mac: Buffer;
  readonly mtu: number;
  readonly maxFrame: number;

  private constructor(opts: PacketLinkOptions, info: NativeInterfaceInfo) {
    // Slots fit the largest frame the interface can carry, rounded up to a cache line.
    super(Math.max(128, (info.mtu + 14 + 63) & ~63), opts, false);
    this.name = opts.iface;
    this.mac = Buffer.from(info.mac);
    this.mtu = info.mtu;
    this.maxFrame = info.mtu + 14;
  }

  static open(opts: PacketLinkOptions): PacketLink {
    if (opts.iface.length === 0 || opts.iface.length > 15) {
      throw new AoegwError(
        'ERR_NO_SUCH_INTERFACE',
        `invalid interface name '${opts.iface}' (1..15 characters)`,
      );
    }
    const info = interfaceInfo(opts.iface, opts.netns);
    if (!info.up) {
      throw new AoegwError(
        'ERR_INTERFACE_DOWN',
        `interface ${opts.iface} is down (ip link set ${opts.iface} up)`,
      );
    }
    const link = new PacketLink(opts, info);
    try {
      const o = {
        ...link.arenaOptions(opts),
        ifname: opts.iface,
        ethertype: opts.ethertype ?? AOE_ETHERTYPE,
      };
      const ns = netnsPath(opts.netns);
      link.handle = link.native.openPacket(ns ? { ...o, netns: ns } : o);
    } catch (e) {
      throw fromNative(e);
    }
    return link;
  }

  /** Receives one batch synchronously (no event loop); for benchmarks. */
  recvNow(): number {
    return this.native.recvNow(this.h);
  }

  get rxFrames(): readonly Buffer[] {
    return this.rxViews;
  }

  get rxLengths(): Int32Array {
    return this.rxLen;
  }
}

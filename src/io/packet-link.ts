/**
 * AF_PACKET raw socket bound to the AoE EtherType on one interface (see native/aoegw_native.c).
 *
 * Link state: when the interface goes down or is deleted, the addon reports the socket error
 * (ENETDOWN) and keeps its receive handle armed; the link goes 'down' (frames flushed meanwhile
 * are dropped and counted), polls the interface by name in its namespace, re-binds the same
 * socket if the interface came back with a new ifindex, and reports 'up' with the MTU and MAC it
 * has now. A slow periodic check (and any EMSGSIZE) catches MTU and MAC changes while up.
 */
import { AoegwError } from '../errors.js';
import { BatchedFrameLink } from './batched-frame-link.js';
import { type BatchOptions, errnoName } from './batched-link.js';
import type { LinkStateEvent } from './frame-link.js';
import { fromNative, type NativeInterfaceInfo, nativeAddon, netnsPath } from './native.js';
import { releaseServiceMac, type ServiceMac, takeServiceMac } from './service-mac.js';

export const AOE_ETHERTYPE = 0x88a2;

const ENXIO = 6;
const ENODEV = 19;
const ENETDOWN = 100;
/** How often a down link looks for its interface. */
const DOWN_PROBE_MS = 200;
/** How often an up link re-reads its MTU and MAC (cheap: a few ioctls). */
const CHANGE_PROBE_MS = 1000;

export interface PacketLinkOptions extends BatchOptions {
  /** Interface name, e.g. "eth0". */
  iface: string;
  /** Network namespace: an `ip netns` name or an absolute path. The socket lives there. */
  netns?: string;
  /** EtherType to bind (default 0x88A2). */
  ethertype?: number;
  /**
   * Capture mode, for tests and diagnostics only: deliver every frame, including frames of other
   * VLANs and for other hosts that a serving link drops. Never for a link that answers frames.
   */
  monitor?: boolean;
  /**
   * Receive through a TPACKET_V2 ring mapped into this process (default true): frames are read in
   * place, and a busy-polling link checks for new ones without a syscall. A kernel that refuses
   * the ring leaves the recvmmsg path (also used with false). The ring is `rcvbuf` bytes.
   */
  rxRing?: boolean;
  /** Transmit with PACKET_QDISC_BYPASS: frames skip the interface's queueing discipline (default false). */
  qdiscBypass?: boolean;
  /**
   * A service MAC (see service-mac.ts): set on the interface at open and the interface's own
   * address put back at close (if it still has the service MAC then). For active/passive failover:
   * initiators keep sending to the address that moved, so requests in flight reach the new node.
   */
  serviceMac?: ServiceMac;
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
  mac: Buffer;
  mtu: number;
  maxFrame: number;
  private linkState: 'up' | 'down' = 'up';
  private ifindex: number;
  private downProbe: NodeJS.Timeout | undefined;
  private changeProbe: NodeJS.Timeout | undefined;
  private readonly netns: string | undefined;
  /** Set while this link holds a service MAC; `own` is what goes back (unknown: nothing can). */
  private restoreMac: { own: Buffer | undefined; service: ServiceMac } | undefined;

  private constructor(opts: PacketLinkOptions, info: NativeInterfaceInfo) {
    // Slots fit the largest frame the interface can carry, rounded up to a cache line.
    super(Math.max(128, (info.mtu + 14 + 63) & ~63), opts, false);
    this.name = opts.iface;
    this.netns = opts.netns;
    this.mac = Buffer.from(info.mac);
    this.mtu = info.mtu;
    this.maxFrame = info.mtu + 14;
    this.ifindex = info.index;
  }

  override get state(): 'up' | 'down' {
    return this.linkState;
  }

  protected override receiveError(errno: number): void {
    if (errno === ENETDOWN || errno === ENODEV || errno === ENXIO) this.goDown(errnoName(errno));
    else super.receiveError(errno);
  }

  protected override sendFault(err: AoegwError): boolean {
    this.goDown(err.message);
    return true;
  }

  protected override linkChanged(): void {
    this.probe();
  }

  private goDown(reason: string): void {
    if (this.linkState === 'down' || !this.handle) return;
    this.linkState = 'down';
    this.linkDowns++;
    this.txDroppedDown += this.txPending;
    this.txPending = 0;
    this.report(
      new AoegwError('ERR_LINK_DOWN', `${this.name} is down (${reason}); waiting for it to return`),
    );
    this.emit('down', reason);
    // Ref'd on purpose: a daemon whose only link is gone must stay and wait for it.
    this.downProbe ??= setInterval(() => this.probe(), DOWN_PROBE_MS);
  }

  /** Looks at the interface now: returns, re-binds, MTU/MAC changes, or a silent admin down. */
  private probe(): void {
    if (!this.handle) return;
    let info: NativeInterfaceInfo;
    try {
      info = this.native.linkInfo(this.handle) as NativeInterfaceInfo;
    } catch {
      // No interface by that name (deleted, not re-created yet).
      if (this.linkState === 'up') this.goDown('interface is gone');
      return;
    }
    if (!info.up || !info.running) {
      if (this.linkState === 'up') this.goDown(info.up ? 'no carrier' : 'interface is down');
      return;
    }
    if (info.index !== this.ifindex) {
      try {
        info = this.native.rebind(this.handle);
      } catch (e) {
        this.report(fromNative(e));
        return;
      }
      this.ifindex = info.index;
    }
    const mtu = Math.min(info.mtu, this.slotSize - 14);
    const changed = mtu !== this.mtu || !info.mac.equals(this.mac);
    if (this.linkState === 'up' && !changed) return;
    const reason = this.linkState === 'down' ? 'up' : 'changed';
    this.mtu = mtu;
    this.maxFrame = mtu + 14;
    this.mac = Buffer.from(info.mac);
    this.linkState = 'up';
    if (this.downProbe) clearInterval(this.downProbe);
    this.downProbe = undefined;
    this.emit('up', reason);
  }

  private emit(state: LinkStateEvent['state'], reason: string): void {
    this.emitLinkState({ state, mtu: this.mtu, mac: this.mac, reason });
  }

  override close(): void {
    if (this.downProbe) clearInterval(this.downProbe);
    if (this.changeProbe) clearInterval(this.changeProbe);
    this.downProbe = this.changeProbe = undefined;
    super.close();
    this.putBackOwnMac();
  }

  /** The service MAC leaves with this process: the interface gets its own address back. */
  private putBackOwnMac(): void {
    const r = this.restoreMac;
    this.restoreMac = undefined;
    if (!r) return;
    try {
      releaseServiceMac(this.name, this.netns, r.service, r.own);
    } catch {
      // The interface is gone, or we lost the right to change it: the record stays for
      // `aoegw release-mac` (and the next start) to finish.
    }
  }

  /**
   * False when this link holds a service MAC whose interface's own address is unknown (it already
   * had the service MAC at open and no record said what was there before): it cannot be put back.
   */
  get ownMacKnown(): boolean {
    return this.restoreMac === undefined || this.restoreMac.own !== undefined;
  }

  static open(opts: PacketLinkOptions): PacketLink {
    if (opts.iface.length === 0 || opts.iface.length > 15) {
      throw new AoegwError(
        'ERR_NO_SUCH_INTERFACE',
        `invalid interface name '${opts.iface}' (1..15 characters)`,
      );
    }
    let info = interfaceInfo(opts.iface, opts.netns);
    if (!info.up) {
      throw new AoegwError(
        'ERR_INTERFACE_DOWN',
        `interface ${opts.iface} is down (ip link set ${opts.iface} up)`,
      );
    }
    let own: Buffer | undefined;
    if (opts.serviceMac) {
      own = takeServiceMac(opts.iface, opts.netns, opts.serviceMac);
      try {
        info = interfaceInfo(opts.iface, opts.netns);
      } catch (e) {
        if (own) releaseServiceMac(opts.iface, opts.netns, opts.serviceMac, own);
        throw e;
      }
    }
    const link = new PacketLink(opts, info);
    // From here a failed open (close below) puts the interface's own address back too.
    if (opts.serviceMac) link.restoreMac = { own, service: opts.serviceMac };
    try {
      const o = {
        ...link.arenaOptions(opts),
        ifname: opts.iface,
        ethertype: opts.ethertype ?? AOE_ETHERTYPE,
        monitor: opts.monitor ? 1 : 0,
        rxRing: opts.rxRing === false ? 0 : 1,
        rxIdx: new Int32Array(link.batch),
        qdiscBypass: opts.qdiscBypass ? 1 : 0,
      };
      const ns = netnsPath(opts.netns);
      link.handle = link.native.openPacket(ns ? { ...o, netns: ns } : o);
      link.attachRing(o.rxIdx);
    } catch (e) {
      link.close();
      throw fromNative(e);
    }
    // Unref'd: it only notices changes, it is no reason to keep a process alive.
    link.changeProbe = setInterval(() => link.probe(), CHANGE_PROBE_MS).unref();
    return link;
  }

  /** Cached views of every ring frame, when the addon set up a receive ring. */
  private attachRing(idx: Int32Array): void {
    const r = this.native.ringInfo(this.h);
    if (!r) return;
    const views: Buffer[] = [];
    for (let i = 0; i < r.frames; i++) {
      const start = Math.floor(i / r.perBlock) * r.blockSize + (i % r.perBlock) * r.frameSize;
      views.push(Buffer.from(r.buffer, start + r.dataOffset, this.slotSize));
    }
    this.rxRing = { views, idx };
  }

  /** True when frames arrive through the receive ring (false: recvmmsg into the rx arena). */
  get rxRingActive(): boolean {
    return this.rxRing !== undefined;
  }

  /** Receives one batch synchronously (no event loop); for benchmarks. */
  recvNow(): number {
    const n = this.native.recvNow(this.h);
    this.mapRing(n);
    return n;
  }

  get rxFrames(): readonly Buffer[] {
    return this.rxViews;
  }

  get rxLengths(): Int32Array {
    return this.rxLen;
  }
}

/**
 * Batched UDP socket (recvmmsg/sendmmsg) for the tunnel. Node's dgram allocates per datagram and
 * cannot batch; this keeps datagrams and their addresses in preallocated arenas.
 */
import { AoegwError } from '../errors.js';
import { BatchedLink, type BatchOptions } from './batched-link.js';
import type { DatagramHandler, DatagramLink } from './datagram-link.js';
import { fromNative, type NativeUdpInfo, netnsPath } from './native.js';
import { ADDR_SLOT, type UdpEndpoint, writeUdpAddress } from './udp-address.js';

export interface UdpLinkOptions extends BatchOptions {
  family?: 4 | 6;
  address?: string;
  port: number;
  netns?: string;
  /** Largest datagram (default 9216; the tunnel MTU plus overhead must fit). */
  maxDatagram?: number;
  /**
   * UDP segmentation offload on send: a run of datagrams of one size to one destination within a
   * batch leaves as one UDP_SEGMENT message (up to 64 datagrams, 65507 bytes). If the kernel refuses
   * it (and takes the same datagrams one by one), the socket sends without GSO for gsoRetryMs and
   * then tries again; for good if the kernel has no UDP GSO. Default true.
   */
  gso?: boolean;
  /** See gso. Default 10000 ms. */
  gsoRetryMs?: number;
  /**
   * UDP generic receive offload: the kernel may hand over several datagrams from one source in one
   * message (a peer's GSO send arrives whole); they are split into the usual one-datagram slots.
   * Costs a 64 KiB receive buffer per batch slot (up to 64) and a copy per datagram. Default true.
   */
  gro?: boolean;
}

export type { DatagramHandler } from './datagram-link.js';

export class UdpLink extends BatchedLink implements DatagramLink {
  readonly family: 4 | 6;
  private handler: DatagramHandler | undefined;
  private local: NativeUdpInfo | undefined;

  private constructor(opts: UdpLinkOptions) {
    super(opts.maxDatagram ?? 9216, opts, true);
    this.family = opts.family ?? 4;
  }

  static open(opts: UdpLinkOptions): UdpLink {
    const link = new UdpLink(opts);
    const ns = netnsPath(opts.netns);
    try {
      const o = {
        ...link.arenaOptions(opts),
        family: link.family,
        port: opts.port,
        gso: opts.gso === false ? 0 : 1,
        gro: opts.gro === false ? 0 : 1,
        ...(opts.gsoRetryMs !== undefined ? { gsoRetryMs: opts.gsoRetryMs } : {}),
      } as const;
      link.handle = link.native.openUdp({
        ...o,
        ...(opts.address ? { address: opts.address } : {}),
        ...(ns ? { netns: ns } : {}),
      });
      link.local = link.native.linkInfo(link.handle) as NativeUdpInfo;
    } catch (e) {
      throw fromNative(e);
    }
    return link;
  }

  get localPort(): number {
    return this.local?.port ?? 0;
  }

  get localAddress(): string {
    return this.local?.address ?? '';
  }

  /** Is GSO (still) used on send? False when turned off, unsupported, or refused by the kernel. */
  get gso(): boolean {
    return this.handle ? (this.native.linkInfo(this.handle) as NativeUdpInfo).gso : false;
  }

  /** Is UDP_GRO on for this socket? */
  get gro(): boolean {
    return this.local?.gro ?? false;
  }

  onBatch(handler: DatagramHandler): void {
    this.handler = handler;
    this.startReceiving((count) => this.handler?.(this.rxViews, this.rxLen, this.rxAddr!, count));
  }

  resume(): void {
    if (this.handler) this.onBatch(this.handler);
  }

  /** Commits the datagram in the current txSlot() to the address slot copied from `addr`/`off`. */
  txCommitTo(length: number, addr: Uint8Array, off = 0): void {
    addr instanceof Buffer
      ? addr.copy(this.txAddr!, this.txPending * ADDR_SLOT, off, off + ADDR_SLOT)
      : this.txAddr!.set(addr.subarray(off, off + ADDR_SLOT), this.txPending * ADDR_SLOT);
    this.txCommit(length);
  }

  /** Copying convenience for non-hot paths. */
  sendTo(data: Uint8Array, to: UdpEndpoint): void {
    if (data.length > this.slotSize) {
      throw new AoegwError(
        'ERR_FRAME_TOO_LARGE',
        `datagram of ${data.length} bytes exceeds ${this.slotSize}`,
      );
    }
    const slot = this.txSlot();
    slot.set(data);
    writeUdpAddress(this.txAddr!, this.txPending * ADDR_SLOT, to);
    this.txCommit(data.length);
  }
}

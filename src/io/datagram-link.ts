/**
 * DatagramLink: what a datagram consumer (the tunnel driver) uses of a batched UDP socket. UdpLink
 * implements it over recvmmsg/sendmmsg; FakeDatagramLink (fake-datagram.ts) in memory.
 *
 * Receive: the handler runs once per batch with preallocated full-slot views, a lengths array (a
 * length < 0 marks a datagram longer than a slot: skip it) and the source addresses, one 24-byte
 * slot (udp-address.ts) per datagram at i * ADDR_SLOT. Views are valid only during the call.
 *
 * Transmit, zero-copy: write into txSlot(), then txCommitTo(length, addr, off) with the destination
 * slot. Committed datagrams leave together when the arena fills, on flush(), or at the end of the
 * current microtask checkpoint (so replies to one receive batch leave as one batch).
 */
import type { LinkStats } from './frame-link.js';

/** count datagrams in `datagrams[i]` with `lengths[i]` bytes from the source in `addrs` at i*ADDR_SLOT. */
export type DatagramHandler = (
  datagrams: readonly Buffer[],
  lengths: Int32Array,
  addrs: Buffer,
  count: number,
) => void;

export interface DatagramLink {
  /** Address family of the socket (one family per socket). */
  readonly family: 4 | 6;
  /** Datagrams per receive/transmit batch. */
  readonly batch: number;
  /** Bytes per slot: the largest datagram received intact and the largest one sent. */
  readonly slotSize: number;
  readonly localPort: number;
  readonly localAddress: string;
  /** Sets the (single) batch handler and starts receiving. */
  onBatch(handler: DatagramHandler): void;
  onError(handler: (err: Error) => void): void;
  /** The slot the next datagram is written into (a full-slot view; commit the real length). */
  txSlot(): Buffer;
  /** Commits the datagram in the current txSlot() to the address slot at addr[off, off + ADDR_SLOT). */
  txCommitTo(length: number, addr: Uint8Array, off?: number): void;
  /** Sends every committed datagram now; returns how many were accepted. */
  flush(): number;
  stats(): LinkStats;
  /** Sends what is committed and releases the socket. Idempotent. */
  close(): void;
}

/** Where a DatagramLink factory is asked to bind (UdpTunnel's options, or a rebind). */
export interface DatagramBind {
  readonly family: 4 | 6;
  /** Local address; undefined: the family's wildcard. */
  readonly address: string | undefined;
  /** Local port; 0 picks one. */
  readonly port: number;
  /** Receive slot size wanted (largest datagram that must arrive intact). */
  readonly maxDatagram: number;
}

export type DatagramLinkFactory = (bind: DatagramBind) => DatagramLink;

/**
 * The one interface every layer uses to move Ethernet frames: native AF_PACKET sockets, TAP
 * devices and the in-memory fake all implement it.
 *
 * Receive: the handler is called once per batch with preallocated full-slot views and a lengths
 * array. A length <= 0 marks a slot whose frame was truncated (counted in stats): skip it.
 * Views are only valid during the call; copy what must outlive it.
 *
 * Transmit, zero-copy: `const buf = link.txSlot(); const n = encode(buf, ...); link.txCommit(n);`
 * Committed frames go out together in one sendmmsg: when the arena fills, on `flush()`, or at the
 * end of the current microtask checkpoint (so replies to one receive batch leave as one batch).
 */
export type BatchHandler = (frames: readonly Buffer[], lengths: Int32Array, count: number) => void;

/**
 * A link's interface went down (or away), or is up again / changed (MTU, MAC, a re-created
 * interface with a new ifindex). On 'up' the consumer re-reads what depends on the link (sectors
 * per frame, its MAC) and re-announces; `mtu`/`mac` are the link's values from now on.
 */
export interface LinkStateEvent {
  state: 'down' | 'up';
  mtu: number;
  mac: Buffer;
  /** Why: 'down' (errno or state), 'up' (returned), 'changed' (MTU/MAC changed while up). */
  reason: string;
}

export type LinkStateHandler = (event: LinkStateEvent) => void;

export interface LinkStats {
  rxFrames: number;
  rxBatches: number;
  rxTruncated: number;
  rxErrors: number;
  txFrames: number;
  txBatches: number;
  txDropped: number;
  txErrors: number;
  kernelDrops: number;
  handlerErrors: number;
  /** Received with an 802.1Q/802.1ad tag (another VLAN): dropped, never delivered. */
  rxVlanDropped: number;
  /** Received for another host's MAC (PACKET_OTHERHOST, e.g. promiscuous mode): dropped. */
  rxOtherHostDropped: number;
  /** Frames larger than the link's MTU allowed at send time: dropped alone, the batch still sent. */
  txOversized: number;
  /** Times the link went down (socket error, interface down or deleted). */
  linkDowns: number;
  /** Native links: send calls (sendmmsg, sendmsg, write) and receive calls (recvmmsg, read) made. */
  txCalls?: number;
  rxCalls?: number;
  /** Native links: receive wakeups (socket readable, or a GRO remainder to deliver). */
  wakeups?: number;
  /** UDP links: GSO messages sent (several datagrams in one UDP_SEGMENT send) and their datagrams. */
  gsoSends?: number;
  gsoSegments?: number;
  /** UDP links: times the kernel refused GSO, which is then off for the socket. */
  gsoFallbacks?: number;
  /** UDP links: received messages that held several coalesced datagrams (GRO), and those datagrams. */
  groMessages?: number;
  groSegments?: number;
}

/** All counters zero: for links that start their own. */
export function emptyLinkStats(): LinkStats {
  return {
    rxFrames: 0,
    rxBatches: 0,
    rxTruncated: 0,
    rxErrors: 0,
    txFrames: 0,
    txBatches: 0,
    txDropped: 0,
    txErrors: 0,
    kernelDrops: 0,
    handlerErrors: 0,
    rxVlanDropped: 0,
    rxOtherHostDropped: 0,
    txOversized: 0,
    linkDowns: 0,
  };
}

export interface FrameLink {
  readonly name: string;
  readonly mac: Buffer;
  readonly mtu: number;
  /** Largest frame this link carries: MTU + 14-byte Ethernet header. */
  readonly maxFrame: number;
  /** 'down' while the interface is down or gone; frames sent then are dropped (counted). */
  readonly state: 'up' | 'down';
  onBatch(handler: BatchHandler): void;
  /** Subscribes to link state changes; returns the unsubscribe function. */
  onLinkState(handler: LinkStateHandler): () => void;
  onError(handler: (err: Error) => void): void;
  txSlot(): Buffer;
  txCommit(length: number): void;
  /** Copies one frame into the next slot and commits it. */
  send(frame: Uint8Array, length?: number): void;
  flush(): number;
  pause(): void;
  resume(): void;
  stats(): LinkStats;
  close(): void;
}

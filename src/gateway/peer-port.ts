/**
 * The gateway's view of one peer across the tunnel: whether it can be sent to now, whether it is
 * reachable, and a way to queue one record for it. The daemon implements it over UdpTunnel; unit
 * tests over a pipe.
 */
export interface PeerPort {
  readonly name: string;
  /** Is there an authenticated session to send with now? */
  connected(now: number): boolean;
  /** Can we send, and have we heard from the peer recently (its keepalives and advertisements)? */
  reachable(now: number): boolean;
  /** When we last received anything authenticated from the peer (ms, the tunnel's clock). */
  lastHeardAt(): number;
  /** Requests to the peer go unanswered: (re)establish a session soon if none is being made. */
  nudge(now: number): void;
  /** Queues one record (copied before returning); false when it could not be queued. */
  send(type: number, buf: Uint8Array, off: number, len: number): boolean;
}

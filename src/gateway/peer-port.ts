/**
 * The gateway's view of one peer across the tunnel: whether it can be sent to now, and a way to
 * queue one record for it. The daemon implements it over UdpTunnel; unit tests over a pipe.
 */
export interface PeerPort {
  readonly name: string;
  /** Is there an authenticated session to send with now? */
  connected(now: number): boolean;
  /** Queues one record (copied before returning); false when it could not be queued. */
  send(type: number, buf: Uint8Array, off: number, len: number): boolean;
}

/**
 * What a gateway daemon is told to do, as config/gateway-config.ts produces it: links, built-in
 * exports, forwards to native targets, and peers with what each may use here (grants) and what we
 * use there (imports).
 */
import type { BlockIoMode, ExportSpec, LinkSpec } from '../target/spec.js';
import type { ForwardSpec } from './forward-side.js';

/** A target named by shelf.slot or by its export name. */
export type TargetRef = { readonly shelf: number; readonly slot: number } | { readonly name: string };

export interface PeerGrantSpec {
  readonly targets: readonly TargetRef[];
  readonly access: 'ro' | 'rw';
}

export interface PeerImportSpec {
  readonly remote: TargetRef;
  readonly localShelf: number;
  readonly localSlot: number;
  /** Link names; empty = every link. */
  readonly links: readonly string[];
}

export interface PeerSpec {
  readonly name: string;
  /** X25519 public key, 32 bytes. */
  readonly publicKey: Uint8Array;
  readonly endpoint?: { readonly address: string; readonly port: number };
  readonly allow: readonly PeerGrantSpec[];
  readonly imports: readonly PeerImportSpec[];
  /** Keepalive for NAT paths (ms); 0 = off. */
  readonly persistentKeepaliveMs: number;
  /** Where the peer is defined: the config file, or the enrollment file (`aoegw enroll`). */
  readonly source: 'config' | 'enrolled';
}

export interface TunnelSpec {
  /** Largest UDP payload sent (the routed path's MTU minus IP and UDP headers). */
  readonly mtu: number;
  /** Busy-poll window of the tunnel socket (µs, 0 = off). */
  readonly busyPollUs: number;
  /** A request unanswered this long is failed with an ATA error (ms, below Linux's 180 s). */
  readonly failAfterMs: number;
  /** UDP GSO on send / GRO on receive on the tunnel socket (UdpLinkOptions); absent = on. */
  readonly gso?: boolean;
  readonly gro?: boolean;
}

export interface GatewaySpec {
  /** For logs and the peers' status. */
  readonly name: string;
  readonly privateKeyFile?: string;
  readonly listen?: { readonly address: string; readonly port: number };
  readonly stateFile: string;
  /** Invites and enrolled peers (config key, default enrollment.json beside stateFile); absent: none. */
  readonly enrollmentFile?: string;
  /** UNIX socket of the control plane (config key, default control.sock beside stateFile). */
  readonly controlSocket?: string;
  readonly links: readonly LinkSpec[];
  readonly exports: readonly ExportSpec[];
  readonly forwards: readonly ForwardSpec[];
  readonly peers: readonly PeerSpec[];
  readonly tunnel: TunnelSpec;
  /** How the built-in exports' block I/O reaches the kernel (default 'auto'). */
  readonly blockIo?: BlockIoMode;
  /** Where Prometheus scrapes /metrics (TCP); absent: no metrics server. */
  /** Where /metrics is served; `initiatorLatency`: the per-initiator histogram too (off: cardinality). */
  readonly metrics?: { readonly address: string; readonly port: number; readonly initiatorLatency?: boolean };
}

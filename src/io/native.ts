/**
 * Loads the N-API addon (native/aoegw_native.c) built by node-gyp during `npm ci`.
 * The same relative path works from src/io (tsx, vitest) and dist/io (compiled).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AoegwError } from '../errors.js';

export interface NativeInterfaceInfo {
  name: string;
  index: number;
  mtu: number;
  mac: Buffer;
  up: boolean;
  running: boolean;
}

export interface NativeUdpInfo {
  family: number;
  port: number;
  address: string;
  /** Runs of equal-size datagrams to one destination still leave as one UDP_SEGMENT message. */
  gso: boolean;
  /** UDP_GRO is on: coalesced datagrams are received and split into slots. */
  gro: boolean;
}

export interface NativeLinkStats {
  rxFrames: number;
  rxBatches: number;
  rxTruncated: number;
  rxErrors: number;
  wakeups: number;
  txFrames: number;
  txBatches: number;
  txDropped: number;
  txErrors: number;
  txWaits: number;
  kernelDrops: number;
  rxVlanDropped: number;
  rxOtherHostDropped: number;
  txOversized: number;
  linkErrors: number;
  /** Frames in the packet link's receive ring (0: no ring, recvmmsg into the rx arena). */
  rxRingFrames: number;
  /** 1 when the packet link transmits with PACKET_QDISC_BYPASS. */
  qdiscBypass: number;
  /** sendmmsg/sendmsg/write calls, recvmmsg/read calls. */
  txCalls: number;
  rxCalls: number;
  /** UDP links only: GSO messages sent and the datagrams they carried; times GSO was given up. */
  gsoSends?: number;
  gsoSegments?: number;
  gsoFallbacks?: number;
  /** UDP links only: received messages that held several datagrams (GRO), and those datagrams. */
  groMessages?: number;
  groSegments?: number;
}

/** A packet link's receive ring (see ringInfo in the C file). */
export interface NativeRingInfo {
  buffer: ArrayBuffer;
  frames: number;
  frameSize: number;
  perBlock: number;
  blockSize: number;
  dataOffset: number;
}

export interface ArenaOptions {
  batch: number;
  slotSize: number;
  rx: ArrayBuffer;
  rxLen: Int32Array;
  tx: ArrayBuffer;
  txLen: Int32Array;
  rxAddr?: ArrayBuffer;
  txAddr?: ArrayBuffer;
  /** CTL_WORDS control words the addon writes link events into. */
  ctl?: Int32Array;
  maxBatchesPerWakeup?: number;
  busyPollUs?: number;
  rcvbuf?: number;
  sndbuf?: number;
}

export type NativeHandle = { readonly __nativeLink: unique symbol };

export interface NativeAddon {
  ADDR_SLOT: number;
  CTL_WORDS: number;
  interfaceInfo(name: string, netns?: string): NativeInterfaceInfo;
  setInterface(name: string, opts: { up?: boolean; mtu?: number; mac?: Buffer }, netns?: string): void;
  /** An exclusive flock on `fd` without waiting: false when another process holds it. */
  tryLock(fd: number): boolean;
  /**
   * One write to `fd` of `buffer[offset, offset + length)` that does not wait (pwritev2 with
   * RWF_NOWAIT; the fd's flags are left alone): bytes written, or -errno (EAGAIN when the reader is
   * behind, EOPNOTSUPP when this fd cannot write without waiting, EPIPE when nobody reads).
   */
  writeNoWait(fd: number, buffer: Uint8Array, offset: number, length: number): number;
  openPacket(
    opts: ArenaOptions & {
      ifname: string;
      netns?: string;
      ethertype?: number;
      monitor?: number;
      rxRing?: number;
      rxIdx?: Int32Array;
      qdiscBypass?: number;
    },
  ): NativeHandle;
  openTap(opts: ArenaOptions & { name?: string; netns?: string }): NativeHandle;
  openUdp(
    opts: ArenaOptions & {
      family: 4 | 6;
      address?: string;
      port: number;
      netns?: string;
      /** 1: send runs with UDP_SEGMENT where the kernel takes it (default); 0: never. */
      gso?: 0 | 1;
      /** 1: UDP_GRO with a receive pool (default); 0: direct receive into the slots. */
      gro?: 0 | 1;
      /** After the kernel refused GSO: send without it this long, then try again (default 10000). */
      gsoRetryMs?: number;
    },
  ): NativeHandle;
  start(h: NativeHandle, onBatch: (count: number, errno: number) => void): void;
  stop(h: NativeHandle): void;
  recvNow(h: NativeHandle): number;
  send(h: NativeHandle, count: number, first?: number): number;
  stats(h: NativeHandle): NativeLinkStats;
  linkInfo(h: NativeHandle): NativeInterfaceInfo | NativeUdpInfo;
  /** Packet links: bind again to the interface now carrying the link's name. */
  rebind(h: NativeHandle): NativeInterfaceInfo;
  /** Packet links: the receive ring, or null when the link receives with recvmmsg. */
  ringInfo(h: NativeHandle): NativeRingInfo | null;
  close(h: NativeHandle): void;
  allocAligned(size: number, align?: number): ArrayBuffer;
  /** Whether ChaCha20-Poly1305 over the process's OpenSSL (native/aead.c) is usable, else why not. */
  aeadInfo(): { available: boolean; why?: string };
  /**
   * Present when aeadInfo().available: ChaCha20-Poly1305 seal/open with CryptoBackend.seal/open's
   * arguments and contract (checks included, errors coded ERR_CRYPTO). `counter` may instead be a
   * whole 12-byte nonce (the load-time self-test's RFC 8439 vector needs one).
   */
  aeadSeal?: NativeAead;
  aeadOpen?: NativeAead;
  /**
   * One datagram to a service manager's notify socket (sd_notify(3)): `path` is a socket file or
   * `@name` in the abstract namespace. Throws ERR_SYSCALL (with `errno`) when it cannot be sent.
   */
  notifySend(path: string, message: string): void;
  /** Tests: a bound, non-blocking datagram socket on `path` (the service manager's side); its fd. */
  notifyListen(path: string): number;
  /** Tests: the next queued datagram as text, or null when none is queued. */
  notifyRecv(fd: number): string | null;
  notifyClose(fd: number): void;
}

export type NativeAead = (
  out: Uint8Array,
  outOff: number,
  key: Uint8Array,
  counter: bigint | Uint8Array,
  ad: Uint8Array | null,
  input: Uint8Array,
  inOff: number,
  inLen: number,
) => number;

let cached: NativeAddon | undefined;

export function nativeAddon(): NativeAddon {
  if (cached) return cached;
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [
    join(here, '..', '..', 'build', 'Release', 'aoegw_native.node'),
    join(here, '..', '..', 'build', 'Debug', 'aoegw_native.node'),
  ];
  const path = candidates.find((p) => existsSync(p));
  if (!path) {
    throw new AoegwError(
      'ERR_NATIVE_MISSING',
      `native addon not built (looked for ${candidates[0]}); run \`npm ci\` or \`npx node-gyp rebuild\``,
    );
  }
  const require = createRequire(import.meta.url);
  cached = require(path) as NativeAddon;
  return cached;
}

/** Re-throws an error from the addon as an AoegwError with the same stable code. */
export function fromNative(e: unknown): AoegwError {
  if (e instanceof AoegwError) return e;
  const err = e as { code?: string; message?: string };
  const code = (err?.code ?? 'ERR_SYSCALL') as AoegwError['code'];
  return new AoegwError(code, err?.message ?? String(e), { cause: e });
}

/** `ip netns` names live in /var/run/netns; absolute paths (e.g. /proc/PID/ns/net) pass through. */
export function netnsPath(netns: string | undefined): string | undefined {
  if (!netns) return undefined;
  return netns.startsWith('/') ? netns : `/var/run/netns/${netns}`;
}

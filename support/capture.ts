/**
 * Records every frame on one interface inside a namespace (tcpdump -w, full frames) so a test can
 * assert what crossed a hop: frames per EtherType ("zero 0x88A2 frames") and whether a plaintext
 * pattern appears in any frame's bytes ("not found"). tcpdump runs as a tracked child, killed by
 * PID; the pcap file lives in a temp dir that is removed when the capture stops.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Netns } from './netns.js';
import { hasCommand, type Spawned, spawnTracked } from './processes.js';
import { waitFor } from './wait.js';

/** Why captures cannot run here, or undefined when they can. */
export function captureSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (packet capture)';
  if (!hasCommand('tcpdump')) return 'tcpdump is not installed (apt-get install tcpdump)';
  return undefined;
}

export interface CaptureResult {
  /** Frames in the file (a GRO/GSO super-frame counts once, as the kernel delivered it). */
  frames: number;
  /** tcpdump's "dropped by kernel" count; a claim of absence needs this to be 0. */
  droppedByKernel: number;
  /** Frames per EtherType, after any 802.1Q/802.1ad tags (AoE inside a VLAN tag is still AoE). */
  etherTypes: Map<number, number>;
  /** Frames of one EtherType (0 when none). */
  count(etherType: number): number;
  /** IPv4 UDP frames per destination port (to tell VXLAN, WireGuard and the tunnel apart). */
  udpDstPorts: Map<number, number>;
  /** Whether `pattern` occurs inside any one captured frame. */
  contains(pattern: Buffer | string): boolean;
  /** The pcap file's bytes, for tools that read captures (tshark). */
  pcap: Buffer;
}

export interface Capture {
  ns: string;
  iface: string;
  /** Stops tcpdump, parses the file and removes it. */
  stop(): Promise<CaptureResult>;
}

const VLAN_TAGS = new Set([0x8100, 0x88a8, 0x9100]);

/** Parses a classic pcap file (either byte order, µs or ns timestamps) of Ethernet frames. */
export function parsePcap(file: Buffer, droppedByKernel = 0): CaptureResult {
  if (file.length < 24) throw new Error(`pcap file too short (${file.length} bytes)`);
  const magic = file.readUInt32LE(0);
  let le: boolean;
  if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) le = true;
  else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) le = false;
  else throw new Error(`not a pcap file (magic 0x${magic.toString(16)})`);
  const u32 = (o: number) => (le ? file.readUInt32LE(o) : file.readUInt32BE(o));
  const linkType = u32(20) & 0xffff;
  if (linkType !== 1) throw new Error(`pcap link type ${linkType} is not Ethernet (1)`);
  const frames: Buffer[] = [];
  const etherTypes = new Map<number, number>();
  const udpDstPorts = new Map<number, number>();
  let off = 24;
  while (off + 16 <= file.length) {
    const incl = u32(off + 8);
    const start = off + 16;
    if (start + incl > file.length) break; // a record cut short by the stop: ignore its tail
    const f = file.subarray(start, start + incl);
    frames.push(f);
    off = start + incl;
    if (f.length < 14) continue;
    let tOff = 12;
    let type = f.readUInt16BE(tOff);
    while (VLAN_TAGS.has(type) && tOff + 6 <= f.length) {
      tOff += 4;
      type = f.readUInt16BE(tOff);
    }
    etherTypes.set(type, (etherTypes.get(type) ?? 0) + 1);
    const ipOff = tOff + 2;
    if (type === 0x0800 && f.length >= ipOff + 20 && f[ipOff + 9] === 17) {
      const udpOff = ipOff + (f[ipOff]! & 0x0f) * 4;
      if (f.length >= udpOff + 4) {
        const port = f.readUInt16BE(udpOff + 2);
        udpDstPorts.set(port, (udpDstPorts.get(port) ?? 0) + 1);
      }
    }
  }
  return {
    frames: frames.length,
    droppedByKernel,
    etherTypes,
    count: (t) => etherTypes.get(t) ?? 0,
    udpDstPorts,
    contains: (pattern) => {
      const p = typeof pattern === 'string' ? Buffer.from(pattern) : pattern;
      if (p.length === 0) throw new Error('empty search pattern');
      return frames.some((f) => f.indexOf(p) >= 0);
    },
    pcap: file,
  };
}

/**
 * Starts recording `iface` in namespace `ns`; resolves once tcpdump is listening, so traffic sent
 * after the promise resolves is in the capture.
 */
export async function capture(ns: Netns | string, iface: string, timeoutMs = 5000): Promise<Capture> {
  const nsName = typeof ns === 'string' ? ns : ns.name;
  const dir = mkdtempSync(join(tmpdir(), 'aoegw-cap-'));
  const file = join(dir, 'cap.pcap');
  // -Z root: Debian's tcpdump otherwise drops to user tcpdump before opening the file in our
  // root-only temp dir. -U writes each packet as it arrives; -B sizes the kernel buffer (KiB) so
  // a burst is not dropped; -s 0 keeps whole frames.
  const args = ['netns', 'exec', nsName, 'tcpdump', '-Z', 'root', '-n', '-U', '-B', '16384', '-s', '0'];
  args.push('-i', iface, '-w', file);
  let p: Spawned;
  try {
    p = spawnTracked('ip', args);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const ok = await waitFor(() => /listening on/.test(p.output()) || p.child.exitCode !== null, timeoutMs);
  if (!ok || p.child.exitCode !== null) {
    await p.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`tcpdump on ${nsName}/${iface} did not start: ${p.output()}`);
  }
  let result: Promise<CaptureResult> | undefined;
  return {
    ns: nsName,
    iface,
    stop: () => {
      result ??= (async () => {
        try {
          // SIGINT: tcpdump flushes the file and prints its packet counts before exiting.
          await p.stop('SIGINT');
          const dropped = /(\d+) packets? dropped by kernel/.exec(p.output());
          return parsePcap(readFileSync(file), dropped ? Number(dropped[1]) : 0);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      })();
      return result;
    },
  };
}

/**
 * Runs tshark (Wireshark's command-line dissector) over a pcap, optionally with our tunnel dissector
 * (deploy/wireshark/aoegw.lua), and returns the requested fields of every frame. Used to check the
 * frames the project emits with an independent implementation: Wireshark's own AoE dissector, and
 * the tunnel dissector against real captures.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './aoegw.js';
import { hasCommand } from './processes.js';

export const AOEGW_LUA = join(ROOT, 'deploy', 'wireshark', 'aoegw.lua');

/** `_ws.expert.severity` values (epan/proto.h PI_WARN, PI_ERROR). */
export const EXPERT_WARN = 0x600000;
export const EXPERT_ERROR = 0x800000;

/** Why tshark cannot be used here, or undefined when it can. */
export function tsharkSkipReason(): string | undefined {
  return hasCommand('tshark')
    ? undefined
    : 'tshark is not installed (scripts/setup.sh installs it: apt-get install tshark)';
}

export interface TsharkOptions {
  /** Load deploy/wireshark/aoegw.lua. */
  lua?: boolean;
  /** `-o NAME:VALUE` preferences (e.g. `aoegw.port: 7788`). */
  prefs?: Record<string, string | number>;
  /** More arguments (e.g. `-Y FILTER`, `--disable-heuristic NAME`). */
  args?: string[];
  timeoutMs?: number;
}

/** One row per frame; a field that occurs several times is joined with `;`, a missing one is ''. */
export type TsharkRow = Record<string, string>;

/** Decodes `pcap` (a classic pcap file's bytes) and returns `fields` of every frame, in order. */
export function tsharkFields(pcap: Buffer, fields: string[], o: TsharkOptions = {}): TsharkRow[] {
  const dir = mkdtempSync(join(tmpdir(), 'aoegw-tshark-'));
  try {
    const file = join(dir, 'in.pcap');
    writeFileSync(file, pcap);
    const args = ['-n', '-r', file];
    if (o.lua) args.push('-X', `lua_script:${AOEGW_LUA}`);
    for (const [k, v] of Object.entries(o.prefs ?? {})) args.push('-o', `${k}:${v}`);
    args.push(...(o.args ?? []));
    args.push('-T', 'fields', '-E', 'separator=/t', '-E', 'occurrence=a', '-E', 'aggregator=;');
    for (const f of fields) args.push('-e', f);
    const r = spawnSync('tshark', args, {
      encoding: 'utf8',
      maxBuffer: 256 << 20,
      timeout: o.timeoutMs ?? 120_000,
    });
    if (r.error) throw r.error;
    // tshark warns on stderr when run as root; only the exit status says whether it failed.
    if (r.status !== 0) throw new Error(`tshark exited with ${r.status}: ${r.stderr.slice(-2000)}`);
    return r.stdout
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l) => {
        const cols = l.split('\t');
        return Object.fromEntries(fields.map((f, i) => [f, cols[i] ?? '']));
      });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The most severe expert info of a row (0 when none). */
export function worstSeverity(row: TsharkRow): number {
  const s = row['_ws.expert.severity'];
  if (!s) return 0;
  return Math.max(...s.split(';').map(Number));
}

/** A classic pcap file (Ethernet, µs timestamps) holding `frames`, one per second. */
export function writePcap(frames: Buffer[]): Buffer {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(262144, 16);
  header.writeUInt32LE(1, 20);
  const parts: Buffer[] = [header];
  frames.forEach((f, i) => {
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(i, 0);
    rec.writeUInt32LE(f.length, 8);
    rec.writeUInt32LE(f.length, 12);
    parts.push(rec, f);
  });
  return Buffer.concat(parts);
}

/** An Ethernet/IPv4/UDP frame carrying `payload` from 10.0.0.1:srcPort to 10.0.0.2:dstPort. */
export function udpFrame(payload: Buffer, dstPort: number, srcPort = 40000): Buffer {
  const f = Buffer.alloc(14 + 20 + 8 + payload.length);
  f.writeUInt16BE(0x0800, 12);
  const ip = 14;
  f[ip] = 0x45;
  f.writeUInt16BE(20 + 8 + payload.length, ip + 2);
  f[ip + 8] = 64;
  f[ip + 9] = 17;
  f.set([10, 0, 0, 1], ip + 12);
  f.set([10, 0, 0, 2], ip + 16);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += f.readUInt16BE(ip + i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  f.writeUInt16BE(~sum & 0xffff, ip + 10);
  const udp = ip + 20;
  f.writeUInt16BE(srcPort, udp);
  f.writeUInt16BE(dstPort, udp + 2);
  f.writeUInt16BE(8 + payload.length, udp + 4);
  payload.copy(f, udp + 8);
  return f;
}

/**
 * fio-like load generator over one TargetClient: `qd` I/Os of `bs` bytes kept in flight for
 * `timeS` seconds, sequential or random, reads or writes. Latency per I/O in a fixed-memory
 * histogram; CPU time of this process is reported per GB and per frame, because on a 2-core
 * machine the initiator's cost per frame decides how fast the target can be driven.
 */
import { SECTOR_SIZE } from '../aoe/constants.js';
import { AoegwError } from '../errors.js';
import { LatencyHistogram } from './latency-histogram.js';
import type { Io, TargetClient } from './target-client.js';

export type RwMode = 'read' | 'write' | 'randread' | 'randwrite';

export interface BenchOptions {
  rw: RwMode;
  /** Bytes per I/O, a multiple of 512. */
  bs: number;
  qd: number;
  timeS: number;
  /** Region of the target to use, in sectors. */
  regionStart: number;
  regionSectors: number;
  seed?: number;
  now: () => number;
  onProgress?: (p: BenchProgress) => void;
}

export interface BenchProgress {
  elapsedS: number;
  ios: number;
  bytes: number;
  mbps: number;
  iops: number;
}

export interface BenchResult {
  rw: RwMode;
  bs: number;
  qd: number;
  seconds: number;
  ios: number;
  bytes: number;
  mbps: number;
  iops: number;
  latencyUs: { mean: number; p50: number; p99: number; p999: number; max: number };
  framesSent: number;
  retransmits: number;
  /** Replies to a tag already retransmitted: the retransmit was spurious (the frame was only slow). */
  staleReplies: number;
  errors: number;
  firstError: string | null;
  cpu: { userS: number; systemS: number; secondsPerGB: number; usPerFrame: number };
}

export function parseSize(text: string): number {
  const m = /^(\d+)([kKmMgG]?)(i?[bB])?$/.exec(text.trim());
  if (!m) throw new AoegwError('ERR_USAGE', `'${text}' is not a size (e.g. 4096, 4k, 1m)`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Number(m[1]) * mult;
}

export function runBench(c: TargetClient, o: BenchOptions): Promise<BenchResult> {
  if (o.bs <= 0 || o.bs % SECTOR_SIZE !== 0)
    throw new AoegwError('ERR_USAGE', `--bs ${o.bs} is not a multiple of 512`);
  const sectors = o.bs / SECTOR_SIZE;
  if (o.regionSectors < sectors) throw new AoegwError('ERR_USAGE', 'target region is smaller than one I/O');
  const write = o.rw === 'write' || o.rw === 'randwrite';
  const random = o.rw === 'randread' || o.rw === 'randwrite';
  const slotsInRegion = Math.floor(o.regionSectors / sectors);
  const hist = new LatencyHistogram();
  let rng = (o.seed ?? 0x12345678) | 0 || 1;
  let cursor = 0;
  let ios = 0;
  let errors = 0;
  let firstError: string | null = null;
  let inFlight = 0;
  const framesBefore = c.stats.framesSent;
  const retransBefore = c.stats.retransmits;
  const staleBefore = c.stats.staleReplies;
  const start = o.now();
  const end = start + o.timeS * 1000;
  const cpu0 = process.cpuUsage();
  const buffers = Array.from({ length: o.qd }, (_, i) => {
    const b = Buffer.alloc(o.bs);
    if (write) for (let j = 0; j < b.length; j += 8) b.writeUInt32LE((i * 0x9e3779b1 + j) >>> 0, j);
    return b;
  });

  return new Promise((resolve) => {
    let progressTimer: NodeJS.Timeout | undefined;
    let finished = false;
    const nextLba = (): number => {
      if (random) {
        rng ^= rng << 13;
        rng ^= rng >>> 17;
        rng ^= rng << 5;
        return o.regionStart + ((rng >>> 0) % slotsInRegion) * sectors;
      }
      const lba = o.regionStart + cursor * sectors;
      cursor = (cursor + 1) % slotsInRegion;
      return lba;
    };
    const issue = (slot: number, now: number) => {
      inFlight++;
      const lba = nextLba();
      const cb = (err: AoegwError | null, io: Io) => onDone(slot, err, io);
      if (write) c.write(lba, sectors, buffers[slot]!, 0, now, cb);
      else c.read(lba, sectors, buffers[slot]!, 0, now, cb);
    };
    const onDone = (slot: number, err: AoegwError | null, io: Io) => {
      inFlight--;
      const now = o.now();
      if (err) {
        errors++;
        firstError ??= err.message;
      } else {
        ios++;
        hist.record((now - io.submittedAt) * 1000);
      }
      if (now < end && errors < 100) issue(slot, now);
      else if (inFlight === 0) finish();
    };
    const finish = () => {
      if (finished) return;
      finished = true;
      if (progressTimer) clearInterval(progressTimer);
      const cpu = process.cpuUsage(cpu0);
      const seconds = (o.now() - start) / 1000;
      const bytes = ios * o.bs;
      const frames = c.stats.framesSent - framesBefore;
      const cpuS = (cpu.user + cpu.system) / 1e6;
      resolve({
        rw: o.rw,
        bs: o.bs,
        qd: o.qd,
        seconds,
        ios,
        bytes,
        mbps: bytes / 1e6 / seconds,
        iops: ios / seconds,
        latencyUs: {
          mean: hist.mean,
          p50: hist.percentile(50),
          p99: hist.percentile(99),
          p999: hist.percentile(99.9),
          max: hist.max,
        },
        framesSent: frames,
        retransmits: c.stats.retransmits - retransBefore,
        staleReplies: c.stats.staleReplies - staleBefore,
        errors,
        firstError,
        cpu: {
          userS: cpu.user / 1e6,
          systemS: cpu.system / 1e6,
          secondsPerGB: bytes > 0 ? cpuS / (bytes / 1e9) : 0,
          usPerFrame: frames > 0 ? (cpuS * 1e6) / frames : 0,
        },
      });
    };
    if (o.onProgress) {
      progressTimer = setInterval(() => {
        const el = (o.now() - start) / 1000;
        o.onProgress?.({
          elapsedS: el,
          ios,
          bytes: ios * o.bs,
          mbps: (ios * o.bs) / 1e6 / el,
          iops: ios / el,
        });
      }, 1000);
    }
    const now = o.now();
    for (let i = 0; i < o.qd; i++) issue(i, now);
  });
}

export function formatBenchResult(r: BenchResult, target: string): string {
  const lat = r.latencyUs;
  const f = (us: number) => (us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(0)} us`);
  return [
    `${target}: rw=${r.rw} bs=${r.bs} qd=${r.qd} time=${r.seconds.toFixed(1)}s`,
    `  throughput: ${r.mbps.toFixed(1)} MB/s, ${Math.round(r.iops)} IOPS (${r.ios} I/Os, ${r.framesSent} frames)`,
    `  latency:    mean ${f(lat.mean)}, p50 ${f(lat.p50)}, p99 ${f(lat.p99)}, p99.9 ${f(lat.p999)}, max ${f(lat.max)}`,
    `  recovery:   ${r.retransmits} retransmits (${r.staleReplies} late replies), ${r.errors} errors${r.firstError ? ` (first: ${r.firstError})` : ''}`,
    `  cpu:        ${(r.cpu.userS + r.cpu.systemS).toFixed(2)} s (user ${r.cpu.userS.toFixed(2)}, sys ${r.cpu.systemS.toFixed(2)}), ${r.cpu.secondsPerGB.toFixed(2)} s/GB, ${r.cpu.usPerFrame.toFixed(2)} us/frame`,
  ].join('\n');
}

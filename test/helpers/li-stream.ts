/**
 * A Linux-initiator write stream (test/fixtures/li/gateway-stream.sh) against one target while the
 * host injects a fault at each mark, then the host-side proof: every chunk the VM saw acknowledged
 * is in the image byte for byte, and the write made after the faults too.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { type LiResult, runLinuxInitiator } from './linux-initiator.js';

const CHUNK = 262144;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export interface LiStreamOptions {
  netns: string;
  iface: string;
  /** The image file behind the target, read on the host after the run. */
  image: string;
  /** e.g. `e7.1`. */
  target: string;
  chunks: number;
  /** Chunk numbers after which the VM prints a mark and `onMark(k)` runs for the k-th of them. */
  marks: number[];
  offset: number;
  onMark: (k: number) => Promise<void>;
  mtu?: number;
  /** Seconds the VM pauses after a mark before its next write (0: the fault hits writes in flight). */
  markWaitS?: number;
  timeoutS?: number;
}

export interface LiStreamResult {
  r: LiResult;
  acked: number;
  errors: number;
  /** Milliseconds each write right after a mark took (it waited out that fault). */
  afterMark: number[];
}

export async function liWriteStream(o: LiStreamOptions): Promise<LiStreamResult> {
  let pending: Promise<void> = Promise.resolve();
  let k = 0;
  const r = await runLinuxInitiator({
    netns: o.netns,
    iface: o.iface,
    ...(o.mtu ? { mtu: o.mtu } : {}),
    script: readFileSync(join(import.meta.dirname, '..', 'fixtures', 'li', 'gateway-stream.sh'), 'utf8'),
    env: {
      LI_TARGET: o.target,
      LI_CHUNKS: o.chunks,
      LI_CHUNK_BYTES: CHUNK,
      LI_OFFSET: o.offset,
      LI_MARKS: o.marks.join(' '),
      LI_MARK_WAIT_S: o.markWaitS ?? 1,
    },
    timeoutS: o.timeoutS ?? 280,
    onLine: (line) => {
      if (/LI-DATA: mark=/.test(line)) {
        const n = k++;
        pending = pending.then(() => o.onMark(n));
      }
    },
  });
  await pending;
  const img = readFileSync(o.image);
  let acked = 0;
  for (let i = 0; i < o.chunks; i++) {
    const want = r.data[`ack.${i}`];
    if (want === undefined) continue;
    acked++;
    const region = img.subarray(o.offset + i * CHUNK, o.offset + (i + 1) * CHUNK);
    expect(sha(region), `acknowledged chunk ${i} in the image`).toBe(want);
  }
  const end = img.subarray(o.offset + o.chunks * CHUNK, o.offset + (o.chunks + 1) * CHUNK);
  expect(sha(end), 'the write after the faults').toBe(r.data.final);
  const afterMark = o.marks.map((m) => Number(r.data[`ms.${m + 1}`] ?? -1));
  return { r, acked, errors: Number(r.data.errors ?? -1), afterMark };
}

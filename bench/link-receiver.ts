/**
 * Receiving half of bench:link, run as its own process (inside the receiving namespace via
 * --netns) so sender and receiver each get a core. Counts AoE frames for a fixed window that starts
 * at the first frame, then prints one JSON line.
 */
import { PacketLink } from '../src/io/packet-link.js';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2)
  args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1]!);
const link = PacketLink.open({
  iface: args.get('iface')!,
  netns: args.get('netns')!,
  batch: Number(args.get('batch')),
  maxBatchesPerWakeup: 64,
  rxRing: args.get('rx-ring') !== '0',
});
if (link.rxRingActive !== (args.get('rx-ring') !== '0')) throw new Error('receive path not as asked');
const seconds = Number(args.get('seconds'));
let frames = 0;
let bytes = 0;
let start = 0;
const cpu0 = process.cpuUsage();
link.onBatch((_f, lens, count) => {
  if (start === 0) {
    start = performance.now();
    setTimeout(finish, seconds * 1000);
  }
  frames += count;
  for (let i = 0; i < count; i++) bytes += lens[i]!;
});
function finish() {
  const el = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const s = link.stats();
  process.stdout.write(
    `${JSON.stringify({ frames, bytes, seconds: el, kernelDrops: s.kernelDrops, batches: s.rxBatches, cpuS: (cpu.user + cpu.system) / 1e6 })}\n`,
  );
  link.close();
  process.exit(0);
}
process.stdout.write('ready\n');
setTimeout(() => {
  if (start === 0) {
    process.stdout.write(
      `${JSON.stringify({ frames: 0, bytes: 0, seconds: 0, kernelDrops: 0, batches: 0, cpuS: 0 })}\n`,
    );
    process.exit(0);
  }
}, 20_000);

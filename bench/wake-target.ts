/**
 * Target half of bench/wakeups.ts, run as its own process (one core each for target and initiator):
 * the built-in TargetServer on one packet link whose options come from --link (JSON), so link
 * variants can be compared in one run without a config key. Prints `ready`, then one JSON line of
 * counters (the link's native counters, this process's CPU seconds) per SIGUSR1; stops on SIGTERM.
 */
import { PacketLink, type PacketLinkOptions } from '../src/io/packet-link.js';
import { lineLog } from '../src/log.js';
import { TargetServer } from '../src/target/server.js';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2)
  args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1]!);
const linkOpts = JSON.parse(args.get('link') ?? '{}') as Partial<PacketLinkOptions>;
let link: PacketLink | undefined;
const server = TargetServer.start(
  {
    stateFile: args.get('state')!,
    links: [{ name: 'l0', iface: args.get('iface')!, netns: args.get('netns')!, batch: 64, busyPollUs: 30 }],
    exports: [
      {
        shelf: Number(args.get('major') ?? 1),
        slot: 0,
        path: args.get('path')!,
        readOnly: false,
        durability: (args.get('durability') ?? 'sync') as 'sync',
        offset: 0,
        bufferCount: 64,
        links: [],
        allowMacs: [],
      },
    ],
    blockIo: 'auto',
  },
  {
    openLink: (l) => {
      link = PacketLink.open({
        iface: l.iface,
        netns: l.netns!,
        batch: l.batch,
        busyPollUs: l.busyPollUs,
        ...linkOpts,
      });
      return link;
    },
    log: lineLog((line) => process.stderr.write(`target: ${line}\n`)),
  },
);
process.on('SIGUSR1', () => {
  const l = link as unknown as { native: { stats(h: unknown): Record<string, number> }; handle: unknown };
  const cpu = process.cpuUsage();
  process.stdout.write(
    `${JSON.stringify({ ...l.native.stats(l.handle), cpuS: (cpu.user + cpu.system) / 1e6 })}\n`,
  );
});
process.once('SIGTERM', () => {
  server.stop();
  process.exit(0);
});
process.stdout.write('ready\n');

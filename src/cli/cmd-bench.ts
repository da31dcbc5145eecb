import type { Command } from 'commander';
import { AoegwError } from '../errors.js';
import { formatBenchResult, parseSize, type RwMode, runBench } from '../initiator/bench.js';
import { intOption, openInitiator, openTarget } from './common.js';

const MODES: RwMode[] = ['read', 'write', 'randread', 'randwrite'];

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description('measure a target: windowed reads or writes with retransmission, fio-like summary')
    .requiredOption('--iface <name>', 'network interface')
    .requiredOption('--target <eS.L>', 'target, e.g. e1.2')
    .option('--netns <name>', 'network namespace of the interface')
    .option('--rw <mode>', `one of ${MODES.join(', ')}`, 'read')
    .option('--bs <size>', 'bytes per I/O (512-multiple; 4k, 1m, ...)', '1m')
    .option('--qd <n>', 'I/Os in flight', intOption('--qd', 1, 4096), 16)
    .option('--time <s>', 'seconds to run', intOption('--time', 1, 3600), 10)
    .option(
      '--window <frames>',
      'max frames outstanding (capped by the target buffer count)',
      intOption('--window', 1, 1024),
      64,
    )
    .option('--size <bytes>', 'use only the first SIZE bytes of the target')
    .option('--json', 'print JSON')
    .action(
      async (o: {
        iface: string;
        netns?: string;
        target: string;
        rw: string;
        bs: string;
        qd: number;
        time: number;
        window: number;
        size?: string;
        json?: boolean;
      }) => {
        if (!MODES.includes(o.rw as RwMode)) {
          throw new AoegwError('ERR_USAGE', `--rw must be one of ${MODES.join(', ')}, got '${o.rw}'`);
        }
        const ini = openInitiator(o);
        try {
          const t = await openTarget(ini, o.target, { window: o.window });
          const region = o.size ? Math.min(t.sectors, Math.floor(parseSize(o.size) / 512)) : t.sectors;
          const tty = process.stderr.isTTY && !o.json;
          const r = await runBench(t.client, {
            rw: o.rw as RwMode,
            bs: parseSize(o.bs),
            qd: o.qd,
            timeS: o.time,
            regionStart: 0,
            regionSectors: region,
            now: () => ini.now(),
            ...(tty
              ? {
                  onProgress: (p) =>
                    process.stderr.write(
                      `\r${o.target} ${o.rw}: ${p.elapsedS.toFixed(0)}s ${p.mbps.toFixed(1)} MB/s ${Math.round(p.iops)} IOPS   `,
                    ),
                }
              : {}),
          });
          if (tty) process.stderr.write('\n');
          const out = {
            target: o.target,
            iface: o.iface,
            window: t.client.window,
            sectorsPerFrame: t.client.sectorsPerFrame,
            ...r,
          };
          process.stdout.write(
            o.json ? `${JSON.stringify(out, null, 2)}\n` : `${formatBenchResult(r, o.target)}\n`,
          );
          if (r.errors > 0) process.exitCode = 1;
        } finally {
          ini.close();
        }
      },
    );
}

import type { Command } from 'commander';
import { parseSize } from '../initiator/bench.js';
import { verifyPattern } from '../initiator/verify.js';
import { intOption, openInitiator, openTarget } from './common.js';

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description(
      'write a deterministic pattern, read it back, report mismatching LBAs (destroys data in the region)',
    )
    .requiredOption('--iface <name>', 'network interface')
    .requiredOption('--target <eS.L>', 'target, e.g. e1.2')
    .option('--netns <name>', 'network namespace of the interface')
    .option('--offset <bytes>', 'start of the region (512-multiple)', '0')
    .option('--size <bytes>', 'length of the region (default: 64m or the whole target if smaller)', '64m')
    .option('--seed <n>', 'pattern seed', intOption('--seed', 0, 0xffffffff), 1)
    .option('--read-only', 'only check a pattern written earlier with the same seed')
    .option('--json', 'print JSON')
    .action(
      async (o: {
        iface: string;
        netns?: string;
        target: string;
        offset: string;
        size: string;
        seed: number;
        readOnly?: boolean;
        json?: boolean;
      }) => {
        const ini = openInitiator(o);
        try {
          const t = await openTarget(ini, o.target);
          const start = Math.floor(parseSize(o.offset) / 512);
          const sectors = Math.min(Math.floor(parseSize(o.size) / 512), t.sectors - start);
          const r = await verifyPattern(ini, t.client, {
            startLba: start,
            sectors,
            seed: o.seed,
            readOnly: o.readOnly ?? false,
            identity: t.identity,
          });
          if (o.json)
            process.stdout.write(`${JSON.stringify({ target: o.target, startLba: start, ...r }, null, 2)}\n`);
          else {
            process.stdout.write(
              `${o.target}: ${r.written ? 'wrote and ' : ''}read ${sectors} sectors from LBA ${start} in ${r.seconds.toFixed(2)} s: ` +
                (r.mismatches === 0
                  ? 'all sectors match\n'
                  : `${r.mismatches} mismatching sectors, first at LBA ${r.firstMismatches.join(', ')}\n`),
            );
          }
          if (r.mismatches > 0) process.exitCode = 1;
        } finally {
          ini.close();
        }
      },
    );
}

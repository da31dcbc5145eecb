import type { Command } from 'commander';
import { discover, formatBytes } from '../initiator/operations.js';
import { intOption, openInitiator } from './common.js';
import { printTable } from './table.js';

export function registerDiscover(program: Command): void {
  program
    .command('discover')
    .description('broadcast AoE Query Config on an interface and IDENTIFY every target that answers')
    .requiredOption('--iface <name>', 'network interface to discover on')
    .option('--netns <name>', 'network namespace of the interface (ip netns name or path)')
    .option('--wait <ms>', 'how long to collect answers', intOption('--wait', 10, 60_000), 1000)
    .option('--json', 'print JSON instead of a table')
    .action(async (o: { iface: string; netns?: string; wait: number; json?: boolean }) => {
      const ini = openInitiator(o);
      try {
        const rows = await discover(ini, o.wait);
        if (o.json) {
          process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
          return;
        }
        if (rows.length === 0) {
          process.stdout.write(`no AoE targets answered on ${o.iface} within ${o.wait} ms\n`);
          return;
        }
        const table = [
          ['TARGET', 'MAC', 'BUFS', 'SPF', 'FIRMWARE', 'CAPACITY', 'SECTORS', 'MODEL', 'CONFIG'],
        ];
        for (const r of rows) {
          table.push([
            r.target,
            r.mac,
            String(r.bufferCount),
            String(r.sectorsPerFrame),
            r.firmware,
            r.capacityBytes === null ? `? (${r.error ?? 'no IDENTIFY'})` : formatBytes(r.capacityBytes),
            r.sectors === null ? '-' : String(r.sectors),
            r.model ?? '-',
            JSON.stringify(r.config),
          ]);
        }
        process.stdout.write(`${printTable(table)}\n`);
      } finally {
        ini.close();
      }
    });
}

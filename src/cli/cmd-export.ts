import type { Command } from 'commander';
import { loadGatewayConfig } from '../config/gateway-config.js';
import type { GatewaySpec } from '../gateway/gateway-spec.js';
import type { ExportSpec } from '../target/spec.js';
import { type ConfigOpts, reportEdit, withConfig } from './edit-common.js';
import { addExport, removeExport } from './export-edit.js';
import { printTable } from './table.js';

const repeat = (v: string, acc: string[]) => [...acc, v];

/** Peers granted an export: "name:access (source)". */
function grantees(spec: GatewaySpec, e: ExportSpec): string[] {
  const out: string[] = [];
  for (const p of spec.peers) {
    let access: 'ro' | 'rw' | null = null;
    for (const g of p.allow) {
      const hit = g.targets.some((r) =>
        'name' in r ? r.name === e.name : r.shelf === e.shelf && r.slot === e.slot,
      );
      if (hit && access !== 'rw') access = g.access;
    }
    if (access) out.push(`${p.name}:${access}`);
  }
  return out;
}

function exportJson(spec: GatewaySpec, e: ExportSpec) {
  return { target: `${e.shelf}.${e.slot}`, ...e, grantedTo: grantees(spec, e) };
}

export function registerExport(program: Command): void {
  const exp = program.command('export').description('list and edit the built-in exports of a gateway config');

  withConfig(exp.command('list').description('list the exports and the peers granted each'))
    .option('--json', 'print JSON')
    .action((o: ConfigOpts & { json?: boolean }) => {
      const spec = loadGatewayConfig(o.config);
      if (o.json) {
        process.stdout.write(
          `${JSON.stringify(
            spec.exports.map((e) => exportJson(spec, e)),
            null,
            2,
          )}\n`,
        );
        return;
      }
      if (spec.exports.length === 0) {
        process.stdout.write(`no exports in ${o.config}\n`);
        return;
      }
      const rows = [['TARGET', 'NAME', 'ACCESS', 'DURABILITY', 'LINKS', 'GRANTED TO', 'PATH']];
      for (const e of spec.exports) {
        rows.push([
          `${e.shelf}.${e.slot}`,
          e.name ?? '-',
          e.readOnly ? 'ro' : 'rw',
          e.durability,
          e.links.length ? e.links.join(',') : 'all',
          grantees(spec, e).join(' ') || '-',
          e.path,
        ]);
      }
      process.stdout.write(`${printTable(rows)}\n`);
    });

  withConfig(
    exp
      .command('add')
      .description('add an export: SPEC as for `aoegw serve --export`')
      .argument('<spec>', 'SHELF.SLOT=PATH[,ro|rw][,sync|writeback|direct][,bufcnt=N][,offset=N][,length=N]'),
  )
    .option('--name <name>', 'stable export name (peers may grant and import it by name)')
    .option('--link <name>', 'serve it on this link only (repeatable; default every link)', repeat, [])
    .option('--allow-mac <mac>', 'only this initiator MAC may use it (repeatable)', repeat, [])
    .option('--serial <serial>', 'IDENTIFY serial number')
    .option('--model <model>', 'IDENTIFY model')
    .action(
      async (
        specText: string,
        o: ConfigOpts & {
          name?: string;
          link: string[];
          allowMac: string[];
          serial?: string;
          model?: string;
        },
      ) => {
        const done = addExport(o.config, specText, o);
        for (const n of done.notes) process.stderr.write(`aoegw: note: ${n}\n`);
        await reportEdit(o.config, done.result, done.what);
      },
    );

  withConfig(
    exp
      .command('remove')
      .description('remove an export (by "S.L" or name); refused while peers are granted it, unless --force')
      .argument('<target>'),
  )
    .option('--force', 'also take the export out of every grant and pending invite naming it')
    .action(async (target: string, o: ConfigOpts & { force?: boolean }) => {
      const done = removeExport(o.config, target, o.force === true);
      for (const line of done.lines) process.stdout.write(`${line}\n`);
      await reportEdit(o.config, done.result, done.what);
      process.stdout.write(`${done.note}\n`);
    });
}

/**
 * `aoegw export list|add|remove`: the built-in exports of a gateway config. Removing an export
 * that peers are granted (in the config, the enrollment file, or a pending invite) is refused
 * unless --force, which takes those grants away first (the safe order: access goes before the
 * export does).
 */
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { editEnrollmentFile, editGatewayConfig, readGatewayConfigDoc } from '../config/config-edit.js';
import { loadGatewayConfig } from '../config/gateway-config.js';
import { exportObjectOfFlag } from '../config/target-config.js';
import { parseShelfSlot } from '../config/validate.js';
import { type EnrollmentDoc, inviteIdPrefix } from '../enroll/enrollment-doc.js';
import { loadEnrollment } from '../enroll/enrollment-file.js';
import { AoegwError, isAoegwError } from '../errors.js';
import type { GatewaySpec } from '../gateway/gateway-spec.js';
import type { ExportSpec } from '../target/spec.js';
import { type ConfigOpts, canonicalizer, reportEdit, withConfig } from './edit-common.js';
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

/** Grants naming a target, in the config's peers, the enrolled peers and the pending invites. */
interface Dependents {
  config: string[];
  enrolled: string[];
  invites: string[];
}

type RawGrants = { name?: unknown; id?: unknown; allow?: { targets?: unknown[] }[] }[];

function namedIn(
  list: unknown,
  canon: (t: unknown) => string,
  key: string,
  label: (x: RawGrants[0]) => string,
): string[] {
  if (!Array.isArray(list)) return [];
  return (list as RawGrants)
    .filter((x) => (x?.allow ?? []).some((g) => (g?.targets ?? []).some((t) => canon(t) === key)))
    .map(label);
}

function withoutTarget(list: unknown, canon: (t: unknown) => string, key: string): void {
  if (!Array.isArray(list)) return;
  for (const x of list as RawGrants) {
    if (!Array.isArray(x?.allow)) continue;
    for (const g of x.allow)
      if (Array.isArray(g?.targets)) g.targets = g.targets.filter((t) => canon(t) !== key);
    x.allow = x.allow.filter((g) => !Array.isArray(g?.targets) || g.targets.length > 0);
  }
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
        const e = exportObjectOfFlag(specText, 'SPEC');
        if (o.name !== undefined) e.name = o.name;
        if (o.link.length) e.links = o.link;
        if (o.allowMac.length) e.allowMacs = o.allowMac;
        if (o.serial !== undefined) e.serial = o.serial;
        if (o.model !== undefined) e.model = o.model;
        const r = editGatewayConfig(o.config, (doc) => {
          const d = doc as { exports?: unknown[] };
          d.exports = [...(Array.isArray(d.exports) ? d.exports : []), e];
          return d;
        });
        if (typeof e.path === 'string' && !existsSync(e.path))
          process.stderr.write(
            `aoegw: note: ${e.path} does not exist here (yet); the daemon opens it at reload\n`,
          );
        await reportEdit(o.config, r, `added export ${e.target}${o.name ? ` (${o.name})` : ''}`);
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
      const { doc, enrollmentFile } = readGatewayConfigDoc(o.config);
      const canon = canonicalizer(doc.exports);
      const key = canon(target);
      const exports = Array.isArray(doc.exports)
        ? (doc.exports as { target?: unknown; name?: unknown }[])
        : [];
      const found = exports.find(
        (e) => canon(e?.target) === key || (typeof e?.name === 'string' && e.name === target),
      );
      if (!found) {
        const have = exports.map((e) => `${e?.target}${typeof e?.name === 'string' ? ` (${e.name})` : ''}`);
        throw new AoegwError(
          'ERR_USAGE',
          `no export ${target} in ${o.config} (exports: ${have.join(', ') || 'none'})`,
        );
      }
      const ss = parseShelfSlot(found.target);
      const label = `${ss ? `${ss.shelf}.${ss.slot}` : String(found.target)}${typeof found.name === 'string' ? ` (${found.name})` : ''}`;
      // The enrollment file as it is (its peers not validated here: the edits below are).
      let enroll: EnrollmentDoc;
      try {
        enroll = loadEnrollment(enrollmentFile);
      } catch (e) {
        if (isAoegwError(e, 'ERR_ENROLLMENT_FILE'))
          throw new AoegwError('ERR_CONFIG', e.message, { cause: e });
        throw e;
      }
      const deps: Dependents = {
        config: namedIn(doc.peers, canon, key, (x) => String(x.name)),
        enrolled: namedIn(enroll.peers, canon, key, (x) => String(x.name)),
        invites: namedIn(
          enroll.invites,
          canon,
          key,
          (x) => `${String(x.name)} (invite ${String(x.id).slice(0, 8)}…)`,
        ),
      };
      const lines = [
        ...deps.config.map((n) => `peer ${n} (config)`),
        ...deps.enrolled.map((n) => `peer ${n} (enrolled, ${enrollmentFile})`),
        ...deps.invites.map((n) => `pending invite for ${n} (${enrollmentFile})`),
      ];
      if (lines.length > 0 && !o.force) {
        throw new AoegwError(
          'ERR_USAGE',
          `export ${label} is granted to:\n${lines.map((l) => `  ${l}`).join('\n')}\nnothing written; --force removes it from those grants too`,
        );
      }
      // Access goes first: if the second edit fails, the export is still there and nobody is granted it.
      if (deps.enrolled.length + deps.invites.length > 0) {
        const cancelled: string[] = [];
        const r = editEnrollmentFile(o.config, (doc) => {
          const peers = structuredClone([...doc.peers]);
          withoutTarget(peers, canon, key);
          cancelled.length = 0;
          const invites = doc.invites.flatMap((inv) => {
            const allow = inv.allow
              .map((g) => ({ ...g, targets: g.targets.filter((t) => canon(t) !== key) }))
              .filter((g) => g.targets.length > 0);
            // An invite left granting nothing is cancelled: enrolling with it would give no access.
            if (allow.length === 0) cancelled.push(`${inv.name} (invite ${inviteIdPrefix(inv.id)})`);
            return allow.length === 0 ? [] : [{ ...inv, allow }];
          });
          return { invites, peers };
        });
        process.stdout.write(
          `export ${label}: taken out of the grants of ${[...deps.enrolled, ...deps.invites].join(', ')}` +
            `${cancelled.length ? `; cancelled, granting nothing else: ${cancelled.join(', ')}` : ''}: written to ${r.file}\n`,
        );
      }
      const r = editGatewayConfig(o.config, (d) => {
        const c = d as { exports?: { target?: unknown; name?: unknown }[]; peers?: unknown };
        c.exports = (c.exports ?? []).filter((e) => canon(e?.target) !== key);
        withoutTarget(c.peers, canon, key);
        return c;
      });
      const also = deps.config.length ? `, and took it out of the grants of ${deps.config.join(', ')}` : '';
      await reportEdit(o.config, r, `removed export ${label}${also}`);
      process.stdout.write(
        `note: initiators and peers using e${label} lose it at the next reload; the state file keeps what it holds for it (config string, mask list, reservations)\n`,
      );
    });
}

/**
 * Adding and removing a built-in export in a gateway config: the edits behind `aoegw export
 * add|remove` and the control socket's `export-add` / `export-remove` (the config file stays the
 * one truth: an export added at run time is still there after a restart). Removing an export that
 * peers are granted (in the config, the enrollment file, or a pending invite) is refused unless
 * `force`, which takes those grants away first (the safe order: access goes before the export).
 * Nothing here reloads: the caller does (the CLI asks the daemon, the daemon reloads itself).
 */
import { existsSync } from 'node:fs';
import {
  type EditResult,
  editEnrollmentFile,
  editGatewayConfig,
  readGatewayConfigDoc,
} from '../config/config-edit.js';
import { exportObjectOfFlag } from '../config/target-config.js';
import { parseShelfSlot } from '../config/validate.js';
import { type EnrollmentDoc, inviteIdPrefix } from '../enroll/enrollment-doc.js';
import { loadEnrollment } from '../enroll/enrollment-file.js';
import { AoegwError, isAoegwError } from '../errors.js';
import { canonicalizer } from './edit-common.js';

export interface AddExportOptions {
  name?: string;
  link?: readonly string[];
  allowMac?: readonly string[];
  serial?: string;
  model?: string;
}

/** Appends the export SPEC (as `serve --export` takes it) to the config, validated whole first. */
export function addExport(
  configFile: string,
  specText: string,
  o: AddExportOptions = {},
): { result: EditResult; what: string; notes: string[] } {
  const e = exportObjectOfFlag(specText, 'SPEC');
  if (o.name !== undefined) e.name = o.name;
  if (o.link?.length) e.links = [...o.link];
  if (o.allowMac?.length) e.allowMacs = [...o.allowMac];
  if (o.serial !== undefined) e.serial = o.serial;
  if (o.model !== undefined) e.model = o.model;
  const result = editGatewayConfig(configFile, (doc) => {
    const d = doc as { exports?: unknown[] };
    d.exports = [...(Array.isArray(d.exports) ? d.exports : []), e];
    return d;
  });
  const notes =
    typeof e.path === 'string' && !existsSync(e.path)
      ? [`${e.path} does not exist here (yet); the daemon opens it at reload`]
      : [];
  return { result, what: `added export ${e.target}${o.name ? ` (${o.name})` : ''}`, notes };
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

/** Removes the export `target` ("S.L" or its name) from the config; see the module comment. */
export function removeExport(
  configFile: string,
  target: string,
  force: boolean,
): { result: EditResult; what: string; lines: string[]; note: string } {
  const { doc, enrollmentFile } = readGatewayConfigDoc(configFile);
  const canon = canonicalizer(doc.exports);
  const key = canon(target);
  const exports = Array.isArray(doc.exports) ? (doc.exports as { target?: unknown; name?: unknown }[]) : [];
  const found = exports.find(
    (e) => canon(e?.target) === key || (typeof e?.name === 'string' && e.name === target),
  );
  if (!found) {
    const have = exports.map((e) => `${e?.target}${typeof e?.name === 'string' ? ` (${e.name})` : ''}`);
    throw new AoegwError(
      'ERR_USAGE',
      `no export ${target} in ${configFile} (exports: ${have.join(', ') || 'none'})`,
    );
  }
  const ss = parseShelfSlot(found.target);
  const label = `${ss ? `${ss.shelf}.${ss.slot}` : String(found.target)}${typeof found.name === 'string' ? ` (${found.name})` : ''}`;
  // The enrollment file as it is (its peers not validated here: the edits below are).
  let enroll: EnrollmentDoc;
  try {
    enroll = loadEnrollment(enrollmentFile);
  } catch (e) {
    if (isAoegwError(e, 'ERR_ENROLLMENT_FILE')) throw new AoegwError('ERR_CONFIG', e.message, { cause: e });
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
  const granted = [
    ...deps.config.map((n) => `peer ${n} (config)`),
    ...deps.enrolled.map((n) => `peer ${n} (enrolled, ${enrollmentFile})`),
    ...deps.invites.map((n) => `pending invite for ${n} (${enrollmentFile})`),
  ];
  if (granted.length > 0 && !force) {
    throw new AoegwError(
      'ERR_USAGE',
      `export ${label} is granted to:\n${granted.map((l) => `  ${l}`).join('\n')}\nnothing written; --force removes it from those grants too`,
    );
  }
  const lines: string[] = [];
  // Access goes first: if the second edit fails, the export is still there and nobody is granted it.
  if (deps.enrolled.length + deps.invites.length > 0) {
    const cancelled: string[] = [];
    const r = editEnrollmentFile(configFile, (doc) => {
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
    lines.push(
      `export ${label}: taken out of the grants of ${[...deps.enrolled, ...deps.invites].join(', ')}` +
        `${cancelled.length ? `; cancelled, granting nothing else: ${cancelled.join(', ')}` : ''}: written to ${r.file}`,
    );
  }
  const r = editGatewayConfig(configFile, (d) => {
    const c = d as { exports?: { target?: unknown; name?: unknown }[]; peers?: unknown };
    c.exports = (c.exports ?? []).filter((e) => canon(e?.target) !== key);
    withoutTarget(c.peers, canon, key);
    return c;
  });
  const also = deps.config.length ? `, and took it out of the grants of ${deps.config.join(', ')}` : '';
  return {
    result: r,
    what: `removed export ${label}${also}`,
    lines,
    note: `note: initiators and peers using e${label} lose it at the next reload; the state file keeps what it holds for it (config string, mask list, reservations)`,
  };
}

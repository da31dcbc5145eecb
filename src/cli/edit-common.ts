/** What the `peer` and `export` commands share: the config option, target references, results. */
import { basename } from 'node:path';
import type { Command } from 'commander';
import type { EditResult } from '../config/config-edit.js';
import { parseShelfSlot } from '../config/validate.js';
import { AoegwError } from '../errors.js';
import type { TargetRef } from '../gateway/gateway-spec.js';
import { notifyAfterEdit } from './apply.js';

export interface ConfigOpts {
  config: string;
}

export function withConfig(cmd: Command): Command {
  return cmd.requiredOption('--config <file>', 'the gateway config (docs/gateway.md)');
}

export function refLabel(r: TargetRef): string {
  return 'name' in r ? r.name : `${r.shelf}.${r.slot}`;
}

export function endpointLabel(e: { address: string; port: number } | undefined): string | null {
  if (!e) return null;
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

/**
 * Canonical form of a target as written in a config ("1.0", "e1.0", or an export name): names of
 * exports resolve to their "S.L", so "disk-a" and "1.0" compare equal when they are one export.
 */
export function canonicalizer(rawExports: unknown): (t: unknown) => string {
  const byName = new Map<string, string>();
  for (const e of Array.isArray(rawExports) ? rawExports : []) {
    const o = e as { target?: unknown; name?: unknown };
    const ss = parseShelfSlot(o.target);
    if (ss && typeof o.name === 'string') byName.set(o.name, `${ss.shelf}.${ss.slot}`);
  }
  return (t) => {
    const ss = parseShelfSlot(t);
    if (ss) return `${ss.shelf}.${ss.slot}`;
    return byName.get(String(t)) ?? `name:${String(t)}`;
  };
}

/** A comma-separated list of targets ("1.0,disk-a"), each "S.L" or an export name; ERR_USAGE otherwise. */
export function parseTargetList(s: string, what: string): string[] {
  const list = s.split(',').filter((t) => t !== '');
  if (list.length === 0)
    throw new AoegwError('ERR_USAGE', `${what}: expected targets as S.L or export names`);
  for (const t of list) {
    if (!parseShelfSlot(t) && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(t))
      throw new AoegwError(
        'ERR_USAGE',
        `${what}: "${t}" is not a target ("S.L", e.g. "1.2", or an export name)`,
      );
  }
  return list;
}

/** Prints what an edit did and tells the daemon. */
export async function reportEdit(configFile: string, r: EditResult, what: string): Promise<void> {
  if (!r.changed) {
    process.stdout.write(`${what}: nothing to change in ${r.file}\n`);
    return;
  }
  process.stdout.write(`${what}: written to ${r.file} (previous version: ${basename(r.prev!)})\n`);
  await notifyAfterEdit(configFile);
}

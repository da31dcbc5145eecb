/**
 * The control socket's `export-add` and `export-remove`: an export added or removed while the
 * daemon runs, through the same edit as `aoegw export add|remove` (the config file is changed,
 * validated whole, then reloaded), so what runs is always what the file says and survives a
 * restart.
 *
 *   {"cmd":"export-add","spec":"1.2=/srv/aoe/vol2.img,sync","name":"vol2","links":["san"]}
 *   {"cmd":"export-remove","target":"vol2","force":false}
 */
import type { ControlRequest, ControlResponse } from '../control/protocol.js';
import type { ControlHandler } from '../control/server.js';
import { type AddExportOptions, addExport, removeExport } from './export-edit.js';

type Reload = () => { ok: boolean; errors: readonly string[]; summary?: string; done: Promise<void> };

function strings(req: ControlRequest, key: string): readonly string[] | string {
  const v = req[key];
  if (v === undefined) return [];
  return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : `"${key}" must be a list of strings`;
}

function optionalString(req: ControlRequest, key: string): string | undefined | { error: string } {
  const v = req[key];
  if (v === undefined || typeof v === 'string') return v;
  return { error: `"${key}" must be a string` };
}

/** The edit's outcome, then the reload's: refused by the reload, the file is changed but not run. */
async function applied(
  what: string,
  file: string,
  reload: Reload,
  extra: string[],
): Promise<ControlResponse> {
  const r = reload();
  await r.done;
  if (!r.ok) {
    return {
      ok: false,
      errors: [
        `${what}: written to ${file}, but the reload refused the config (still running the previous one):`,
        ...r.errors,
      ],
    };
  }
  return { ok: true, summary: `${what}; ${r.summary ?? 'reloaded'}`, file, notes: extra };
}

export function exportEditHandlers(configFile: string, reload: Reload): Record<string, ControlHandler> {
  return {
    'export-add': async (req) => {
      if (typeof req.spec !== 'string')
        return {
          ok: false,
          errors: ['export-add needs "spec": "SHELF.SLOT=PATH[,ro|rw][,sync|writeback|direct][,…]"'],
        };
      const opts: AddExportOptions = {};
      const problems: string[] = [];
      for (const key of ['name', 'serial', 'model'] as const) {
        const v = optionalString(req, key);
        if (typeof v === 'object') problems.push(v.error);
        else if (v !== undefined) opts[key] = v;
      }
      const links = strings(req, 'links');
      const macs = strings(req, 'allowMacs');
      if (typeof links === 'string') problems.push(links);
      else opts.link = links;
      if (typeof macs === 'string') problems.push(macs);
      else opts.allowMac = macs;
      if (problems.length > 0) return { ok: false, errors: problems };
      let done: ReturnType<typeof addExport>;
      try {
        done = addExport(configFile, req.spec, opts);
      } catch (e) {
        return { ok: false, errors: [(e as Error).message] };
      }
      if (!done.result.changed)
        return { ok: true, summary: `${done.what}: nothing to change`, notes: done.notes };
      return applied(done.what, done.result.file, reload, done.notes);
    },
    'export-remove': async (req) => {
      if (typeof req.target !== 'string')
        return { ok: false, errors: ['export-remove needs "target": "SHELF.SLOT" or the export\'s name'] };
      if (req.force !== undefined && typeof req.force !== 'boolean')
        return { ok: false, errors: ['"force" must be true or false'] };
      let done: ReturnType<typeof removeExport>;
      try {
        done = removeExport(configFile, req.target, req.force === true);
      } catch (e) {
        return { ok: false, errors: [(e as Error).message] };
      }
      return applied(done.what, done.result.file, reload, [...done.lines, done.note]);
    },
  };
}

/**
 * One reload path for SIGHUP and the control socket: read the config again (the loader is the
 * caller's: config/ sits above gateway/), apply it with Gateway.reload, log the outcome. A config
 * that does not load, or that the running gateway refuses, changes nothing: every problem is
 * logged and the previous config keeps running.
 */

import type { Log } from '../log.js';
import type { Gateway, ReloadResult } from './daemon.js';
import type { GatewaySpec } from './gateway-spec.js';

/**
 * What a reload did: maps onto a control-socket response as it is (`{ok, summary, changes}` or
 * `{ok: false, errors}`); wait for `done` first to answer once everything is in effect.
 */
export interface ReloadOutcome {
  readonly ok: boolean;
  /** One line of what changed (`+1 peer, -0 peers, 2 grants changed, …`); '' when refused. */
  readonly summary: string;
  /** Counts per kind of change; null when refused. */
  readonly changes: ReloadResult['changes'] | null;
  /** Every problem, one per entry; empty when ok. */
  readonly errors: string[];
  /** Settles when everything is in effect (a changed export is served again after it drained). */
  readonly done: Promise<void>;
}

export function reloadFromFile(
  gw: Gateway,
  file: string,
  load: (file: string) => GatewaySpec,
  log: Log,
): ReloadOutcome {
  let spec: GatewaySpec;
  try {
    spec = load(file);
  } catch (e) {
    // The loaders put one problem per line, after a line with their count when there are several.
    const errors = (e as Error).message
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.length > 0);
    if (errors.length > 1 && /\d+ problems:$/.test(errors[0]!)) errors.shift();
    return refusedOutcome(file, errors, log);
  }
  let result: ReloadResult;
  try {
    result = gw.reload(spec);
  } catch (e) {
    return refusedOutcome(file, [(e as Error).message], log);
  }
  if (!result.ok) return refusedOutcome(file, result.errors, log);
  log.info(`reload: ${result.summary}`);
  return { ok: true, summary: result.summary, changes: result.changes, errors: [], done: result.done };
}

function refusedOutcome(file: string, errors: string[], log: Log): ReloadOutcome {
  log.error(`reload: ${file} not applied, still running the previous config:`);
  for (const e of errors) log.error(`reload:   ${e}`);
  return { ok: false, summary: '', changes: null, errors, done: Promise.resolve() };
}

/**
 * One reload path for SIGHUP and the control socket: read the config again (the loader is the
 * caller's: config/ sits above gateway/), apply it with Gateway.reload, log the outcome. A config
 * that does not load, or that the running gateway refuses, changes nothing: every problem is
 * logged and the previous config keeps running.
 */
import type { Gateway } from './daemon.js';
import type { GatewaySpec } from './gateway-spec.js';

export interface ReloadOutcome {
  readonly ok: boolean;
  /** One line of what changed (`+1 peer, -0 peers, 2 grants changed, …`); '' when refused. */
  readonly changes: string;
  /** Every problem, one per entry; empty when ok. */
  readonly errors: string[];
  /** Settles when everything is in effect (a changed export is served again after it drained). */
  readonly done: Promise<void>;
}

export function reloadFromFile(
  gw: Gateway,
  file: string,
  load: (file: string) => GatewaySpec,
  log: (line: string) => void,
): ReloadOutcome {
  let spec: GatewaySpec;
  try {
    spec = load(file);
  } catch (e) {
    // The loaders put one problem per line (after a count when there are several).
    const errors = (e as Error).message
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.length > 0);
    return refusedOutcome(file, errors, log);
  }
  let result: ReturnType<Gateway['reload']>;
  try {
    result = gw.reload(spec);
  } catch (e) {
    return refusedOutcome(file, [(e as Error).message], log);
  }
  if (!result.ok) return refusedOutcome(file, result.errors, log);
  log(`reload: ${result.summary}`);
  return { ok: true, changes: result.summary, errors: [], done: result.done };
}

function refusedOutcome(file: string, errors: string[], log: (line: string) => void): ReloadOutcome {
  log(`reload: ${file} not applied, still running the previous config:`);
  for (const e of errors) log(`reload:   ${e}`);
  return { ok: false, changes: '', errors, done: Promise.resolve() };
}

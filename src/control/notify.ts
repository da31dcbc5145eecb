/**
 * After a command edited a config or enrollment file: ask the running daemon (if any) to reload,
 * and say what happened in one line for the operator.
 */
import { dirname, join } from 'node:path';
import { loadGatewayConfig } from '../config/gateway-config.js';
import { controlRequest, DaemonNotRunning } from './client.js';

export type NotifyResult =
  | { readonly state: 'reloaded'; readonly summary: string }
  | { readonly state: 'not-running'; readonly summary: string }
  | { readonly state: 'failed'; readonly summary: string; readonly errors: readonly string[] };

/** The control socket of a gateway config (its controlSocket key, else beside the state file). */
export function controlSocketOf(spec: { stateFile: string; controlSocket?: string }): string {
  return spec.controlSocket ?? join(dirname(spec.stateFile), 'control.sock');
}

/** Asks the daemon running `configFile` to reload. Never throws: the file edit already happened. */
export async function notifyDaemon(configFile: string): Promise<NotifyResult> {
  let path: string;
  try {
    path = controlSocketOf(loadGatewayConfig(configFile));
  } catch (e) {
    return { state: 'failed', summary: `daemon not notified: ${(e as Error).message}`, errors: [] };
  }
  try {
    const r = await controlRequest(path, { cmd: 'reload' });
    if (r.ok) {
      const changes = typeof r.summary === 'string' ? `: ${r.summary}` : '';
      return { state: 'reloaded', summary: `daemon reloaded${changes}` };
    }
    return {
      state: 'failed',
      summary: 'the daemon refused the new configuration and keeps running the old one',
      errors: r.errors,
    };
  } catch (e) {
    if (e instanceof DaemonNotRunning) {
      return { state: 'not-running', summary: 'no daemon running: the change applies when it starts' };
    }
    return { state: 'failed', summary: `daemon not notified: ${(e as Error).message}`, errors: [] };
  }
}

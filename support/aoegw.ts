/** Runs the built `aoegw` CLI (dist/): daemons as child processes, commands to completion. */
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { type Spawned, spawnTracked } from './processes.js';
import { waitFor } from './wait.js';

export const ROOT = join(import.meta.dirname, '..');
export const AOEGW = join(ROOT, 'dist', 'cli', 'main.js');

/** `aoegw serve ...`; resolves once it printed its ready line (throws with its output otherwise). */
export async function startServe(args: string[], timeoutMs = 10_000): Promise<Spawned> {
  const p = spawnTracked(process.execPath, [AOEGW, 'serve', ...args]);
  const ok = await waitFor(() => /ready: /.test(p.output()) || p.child.exitCode !== null, timeoutMs);
  if (!ok || p.child.exitCode !== null) {
    await p.stop('SIGKILL');
    throw new Error(`aoegw serve did not start: ${p.output()}`);
  }
  return p;
}

/** One `aoegw` command run to completion (at most 30 s): its exit status, stdout and stderr. */
export function aoegwSync(...args: string[]): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [AOEGW, ...args], { encoding: 'utf8', timeout: 30_000 });
}

/** `aoegw status --config CONFIG --json`, parsed: the control socket's responses by command. */
export function statusJson(config: string): Record<string, Record<string, unknown>> {
  const r = aoegwSync('status', '--config', config, '--json');
  if (r.status !== 0) throw new Error(`aoegw status failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, Record<string, unknown>>;
}

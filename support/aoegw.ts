/** Runs the built `aoegw` CLI (dist/) as a child process and waits for it to be ready. */
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

/**
 * What the edit commands (`peer …`, `export …`) do after a file was written: ask the running
 * daemon to reload. This is the one place that reaches the daemon after an edit.
 */
import { notifyDaemon } from '../control/notify.js';

/**
 * Reports the daemon's answer on stderr. A daemon that refused the new files (e.g. a change that
 * needs a restart) keeps the old ones: exit status 1, since the edit is written but not in force.
 */
export async function notifyAfterEdit(configFile: string): Promise<void> {
  const r = await notifyDaemon(configFile);
  const errors = r.state === 'failed' ? r.errors.map((e) => `\n  ${e}`).join('') : '';
  process.stderr.write(`aoegw: ${r.summary}${errors}\n`);
  if (r.state === 'failed') process.exitCode = 1;
}

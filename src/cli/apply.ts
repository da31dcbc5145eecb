/**
 * What the edit commands (`peer …`, `export …`) do after a file was written: tell the running
 * daemon. This is the one place that reaches the daemon after an edit.
 */

/** Asks the daemon of `configFile` to reload, or says how to. */
export async function notifyAfterEdit(configFile: string): Promise<void> {
  process.stderr.write(
    `aoegw: daemon not notified: reload with \`aoegw reload --config ${configFile}\` or SIGHUP\n`,
  );
}

/**
 * `aoegw release-mac`: after a daemon stopped, puts each interface's own address back where its
 * service MAC (links[].mac) is still on — the daemon does it itself when it stops cleanly; after
 * SIGKILL, a crash or the watchdog only this can. It works from the records the daemon wrote before
 * it took each MAC (src/io/service-mac.ts), found by the config file's path: the file itself is not
 * read (it may be gone or broken by then). The Pacemaker agent runs it after every stop. A record
 * whose holder still runs is left alone and fails the command; so does an interface whose own
 * address is unknown. Exit 0 when no interface of that config holds a service MAC any more.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { releaseRecorded } from '../io/service-mac.js';

export function registerReleaseMac(program: Command): void {
  program
    .command('release-mac')
    .description(
      "after the daemon stopped: put each interface's own MAC back where the daemon's service MAC (links[].mac) is still on (a daemon killed or crashed leaves it); exit 1 if one cannot be",
    )
    .requiredOption('--config <file>', 'the config file the daemon ran (only its path is used)')
    .action((o: { config: string }) => {
      let failed = 0;
      for (const r of releaseRecorded(resolve(o.config))) {
        const where = `${r.iface}${r.netns ? ` (netns ${r.netns})` : ''}`;
        if (r.outcome === 'released' || r.outcome === 'not-held') {
          process.stdout.write(`${where}: ${r.detail}\n`);
          continue;
        }
        failed++;
        process.stderr.write(`aoegw: ${where}: ${r.detail}\n`);
      }
      if (failed > 0) process.exitCode = 1;
    });
}

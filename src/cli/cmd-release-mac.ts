/**
 * `aoegw release-mac`: after a daemon stopped, puts each link's own address back where its service
 * MAC (links[].mac) is still on the interface — the daemon does it itself when it stops cleanly;
 * after SIGKILL, a crash or the watchdog only this can. The Pacemaker agent runs it after every
 * stop: a node must not keep a failover resource's MAC once the resource left it. Refuses while a
 * daemon for the config answers (it holds the MAC on purpose). Exit 0 when no interface holds a
 * service MAC any more, 1 when one does and its own address is unknown or cannot be set.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { controlRequest, DaemonNotRunning } from '../control/client.js';
import { AoegwError } from '../errors.js';
import { releaseServiceMac } from '../io/service-mac.js';
import { type LinkSpec, serviceMacOf } from '../target/spec.js';
import { DEFAULT_STATE_FILE, socketOfConfigText } from './cmd-health.js';

/** The links with a service MAC, from the config's JSON alone (a config with mistakes still says where they are). */
export function serviceMacLinks(text: string): { links: LinkSpec[]; stateFile: string } {
  const doc = JSON.parse(text) as Record<string, unknown>;
  const stateFile = typeof doc.stateFile === 'string' ? doc.stateFile : DEFAULT_STATE_FILE;
  const links: LinkSpec[] = [];
  for (const raw of Array.isArray(doc.links) ? doc.links : []) {
    const l = raw as Record<string, unknown>;
    if (typeof l.iface !== 'string' || typeof l.mac !== 'string') continue;
    links.push({
      name: typeof l.name === 'string' ? l.name : l.iface,
      iface: l.iface,
      mac: l.mac.toLowerCase(),
      batch: 1,
      busyPollUs: 0,
      ...(typeof l.netns === 'string' ? { netns: l.netns } : {}),
    });
  }
  return { links, stateFile };
}

export function registerReleaseMac(program: Command): void {
  program
    .command('release-mac')
    .description(
      "after the daemon stopped: put each link's own MAC back where its service MAC (links[].mac) is still on the interface (a daemon killed or crashed leaves it); exit 1 if one cannot be",
    )
    .requiredOption('--config <file>', 'the config file the daemon ran')
    .action(async (o: { config: string }) => {
      let text: string;
      let found: ReturnType<typeof serviceMacLinks>;
      try {
        text = readFileSync(o.config, 'utf8');
        found = serviceMacLinks(text);
      } catch (e) {
        throw new AoegwError('ERR_CONFIG', `${o.config}: cannot read its links: ${(e as Error).message}`);
      }
      if (found.links.length === 0) return;
      const socket = socketOfConfigText(text);
      if (socket !== undefined) {
        try {
          await controlRequest(socket, { cmd: 'status' }, 5000);
          throw new AoegwError(
            'ERR_SERVICE_MAC',
            `a daemon runs for ${o.config} and holds its service MACs: stop it first`,
          );
        } catch (e) {
          if (!(e instanceof DaemonNotRunning)) throw e;
        }
      }
      let failed = 0;
      for (const l of found.links) {
        const s = serviceMacOf(l, found.stateFile);
        if (!s) continue;
        let outcome: string;
        try {
          outcome = releaseServiceMac(l.iface, l.netns, s);
        } catch (e) {
          outcome = `failed: ${(e as Error).message}`;
        }
        if (outcome === 'released')
          process.stdout.write(`link ${l.name}: ${l.iface} has its own MAC again\n`);
        else if (outcome === 'not-held') continue;
        else {
          failed++;
          const why =
            outcome === 'own-unknown'
              ? `still has the service MAC ${l.mac} and no record of its own address (set one by hand: ip link set ${l.iface} address …)`
              : outcome;
          process.stderr.write(`aoegw: link ${l.name}: ${l.iface} ${why}\n`);
        }
      }
      if (failed > 0) process.exitCode = 1;
    });
}

/**
 * `aoegw health`: is the running daemon doing its job? For service managers and cluster agents
 * (deploy/ocf/aoegw's monitor): every link up and holding its service MAC (links[].mac), and with
 * --require-peers every configured peer in session and every import usable. The answer comes from
 * the daemon's control socket, judged against what the daemon runs, not against the config file:
 * an edit not reloaded yet, or one with a mistake (that a reload would refuse), does not make a
 * running daemon unhealthy. The file is only read for where the socket is, as leniently as that
 * allows. Exit status: 0 healthy, 1 running but unhealthy (one line per problem, also a daemon
 * that stops answering), 7 no daemon running (as OCF_NOT_RUNNING; 3 is already a bad config's).
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ask, NoDaemon } from './cmd-status.js';
import { socketOfConfigText } from './socket-of.js';

export const HEALTH_VIEWS = ['status', 'links', 'exports', 'peers', 'imports'] as const;
export type HealthViews = Record<(typeof HEALTH_VIEWS)[number], Record<string, unknown>>;

export interface HealthOptions {
  /** Peers out of session and unusable imports are problems too (else only links). */
  requirePeers: boolean;
}

export interface Health {
  problems: string[];
  /** "2/2 links up, 1 export served, 1/1 peers in session" */
  summary: string;
}

/** Pure: the problems the daemon's own views show. */
export function assessHealth(v: HealthViews, o: HealthOptions): Health {
  const problems: string[] = [];
  const links = (v.links.links ?? []) as { name: string; state: string; mac: string; serviceMac?: string }[];
  for (const l of links) {
    if (l.state !== 'up') problems.push(`link ${l.name} is ${l.state}`);
    // Someone (an operator, a network manager, a re-created interface) changed it: initiators
    // still send to the service MAC and reach nobody.
    else if (l.serviceMac !== undefined && l.mac !== l.serviceMac)
      problems.push(`link ${l.name} has MAC ${l.mac}, not its service MAC ${l.serviceMac}`);
  }
  const exports = ((v.exports.exports ?? []) as unknown[]).length;
  const peers = (v.peers.peers ?? []) as { name: string; session: boolean }[];
  const imports = ((v.imports.imports as { list?: unknown[] } | null)?.list ?? []) as {
    local: string;
    usable: boolean;
  }[];
  if (o.requirePeers) {
    for (const p of peers) if (!p.session) problems.push(`peer ${p.name} has no session`);
    for (const i of imports) if (!i.usable) problems.push(`import ${i.local} is not usable`);
  }
  const up = links.filter((l) => l.state === 'up').length;
  const parts = [`${up}/${links.length} links up`, `${exports} export${exports === 1 ? '' : 's'} served`];
  if (peers.length > 0)
    parts.push(`${peers.filter((p) => p.session).length}/${peers.length} peers in session`);
  if (imports.length > 0)
    parts.push(`${imports.filter((i) => i.usable).length}/${imports.length} imports usable`);
  return { problems, summary: parts.join(', ') };
}

export function registerHealth(program: Command): void {
  program
    .command('health')
    .description(
      'is the running daemon healthy: links up with their service MACs (and with --require-peers: peers in session, imports usable); exit 0 healthy, 1 not, 7 no daemon running',
    )
    .requiredOption(
      '--config <file>',
      'the config file the daemon runs (read only to find its control socket)',
    )
    .option('--require-peers', 'a peer without a session or an unusable import is unhealthy too')
    .action(async (o: { config: string; requirePeers?: boolean }) => {
      let text = '';
      try {
        text = readFileSync(o.config, 'utf8');
      } catch (e) {
        text = '';
        process.stderr.write(`aoegw: cannot read ${o.config}: ${(e as Error).message}\n`);
      }
      const socket = socketOfConfigText(text);
      if (socket === undefined) {
        process.stderr.write(`aoegw: no control socket known from ${o.config}: no daemon to ask\n`);
        process.exitCode = 7;
        return;
      }
      let views: HealthViews;
      try {
        views = await ask(socket, HEALTH_VIEWS, o.config);
      } catch (e) {
        if (e instanceof NoDaemon) {
          process.stderr.write(`aoegw: ${e.message}\n`);
          process.exitCode = 7;
          return;
        }
        throw e;
      }
      const h = assessHealth(views, { requirePeers: o.requirePeers === true });
      if (h.problems.length === 0) {
        process.stdout.write(`healthy: ${h.summary}\n`);
        return;
      }
      process.stdout.write(`unhealthy: ${h.summary}\n${h.problems.map((p) => `  ${p}\n`).join('')}`);
      process.exitCode = 1;
    });
}

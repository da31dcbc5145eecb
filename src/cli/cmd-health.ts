/**
 * `aoegw health`: is the running daemon doing its job? For service managers and cluster agents
 * (deploy/ocf/aoegw's monitor): every link up, every configured export served, and with
 * --require-peers every configured peer in session and every import usable. The answer comes from
 * the daemon's control socket, not from a pid. Exit status: 0 healthy,
 * 1 running but unhealthy (one line per problem, also a daemon that stops answering), 7 no daemon
 * running (as OCF_NOT_RUNNING; 3 is already a bad config file's status).
 */
import type { Command } from 'commander';
import { loadGatewayConfig } from '../config/gateway-config.js';
import { ask, NoDaemon, socketOf } from './cmd-status.js';

export const HEALTH_VIEWS = ['status', 'links', 'exports', 'peers', 'imports'] as const;
export type HealthViews = Record<(typeof HEALTH_VIEWS)[number], Record<string, unknown>>;

export interface HealthOptions {
  /** Exports the config file names, `SHELF.SLOT`. */
  configured: readonly string[];
  /** Peers out of session and unusable imports are problems too (else only links and exports). */
  requirePeers: boolean;
}

export interface Health {
  problems: string[];
  /** "2/2 links up, 1/1 exports served, 1/1 peers in session" */
  summary: string;
}

/** Pure: the problems the daemon's own views show. */
export function assessHealth(v: HealthViews, o: HealthOptions): Health {
  const problems: string[] = [];
  const links = (v.links.links ?? []) as { name: string; state: string }[];
  for (const l of links) if (l.state !== 'up') problems.push(`link ${l.name} is ${l.state}`);
  const served = new Set(((v.exports.exports ?? []) as { target: string }[]).map((e) => bare(e.target)));
  for (const t of o.configured) {
    if (!served.has(t)) problems.push(`export ${t} is configured but not served (a reload pending?)`);
  }
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
  const parts = [
    `${up}/${links.length} links up`,
    `${o.configured.filter((t) => served.has(t)).length}/${o.configured.length} exports served`,
  ];
  if (peers.length > 0)
    parts.push(`${peers.filter((p) => p.session).length}/${peers.length} peers in session`);
  if (imports.length > 0)
    parts.push(`${imports.filter((i) => i.usable).length}/${imports.length} imports usable`);
  return { problems, summary: parts.join(', ') };
}

/** "e7.1" and "7.1" name the same export. */
function bare(target: string): string {
  return target.startsWith('e') ? target.slice(1) : target;
}

export function registerHealth(program: Command): void {
  program
    .command('health')
    .description(
      'is the running daemon healthy: links up, configured exports served (and with --require-peers: peers in session, imports usable); exit 0 healthy, 1 not, 7 no daemon running',
    )
    .requiredOption('--config <file>', 'the config file the daemon runs')
    .option('--require-peers', 'a peer without a session or an unusable import is unhealthy too')
    .action(async (o: { config: string; requirePeers?: boolean }) => {
      const spec = loadGatewayConfig(o.config);
      let views: HealthViews;
      try {
        views = await ask(socketOf(o.config), HEALTH_VIEWS, o.config);
      } catch (e) {
        if (e instanceof NoDaemon) {
          process.stderr.write(`aoegw: ${e.message}\n`);
          process.exitCode = 7;
          return;
        }
        throw e;
      }
      const h = assessHealth(views, {
        configured: spec.exports.map((e) => `${e.shelf}.${e.slot}`),
        requirePeers: o.requirePeers === true,
      });
      if (h.problems.length === 0) {
        process.stdout.write(`healthy: ${h.summary}\n`);
        return;
      }
      process.stdout.write(`unhealthy: ${h.summary}\n${h.problems.map((p) => `  ${p}\n`).join('')}`);
      process.exitCode = 1;
    });
}

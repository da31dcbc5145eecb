/**
 * `aoegw status`: one look at a running daemon through its control socket (status, exports with
 * their initiators, peers, imports) as tables, or the raw responses with --json.
 */
import type { Command } from 'commander';
import { controlRequest, DaemonNotRunning } from '../control/client.js';
import type { ExportView } from '../control/status-view.js';
import { AoegwError } from '../errors.js';
import { formatBytes } from '../initiator/operations.js';
import { socketOf } from './socket-of.js';
import { printTable } from './table.js';

/** The commands `status` asks, in the order their tables are printed. */
const VIEWS = ['status', 'exports', 'peers', 'imports', 'forwards', 'links'] as const;
export type Views = Record<(typeof VIEWS)[number], Record<string, unknown>>;

/** No daemon answers for a config file (`health` tells it apart from a daemon that errs). */
export class NoDaemon extends AoegwError {
  constructor(configFile: string, why: string) {
    super(
      'ERR_CONTROL',
      `no daemon running for ${configFile}: ${why}; start it with aoegw run --config ${configFile}`,
    );
  }
}

/** One response per command; a daemon that does not run is one clear error (exit 1). */
export async function ask<K extends string>(
  path: string,
  cmds: readonly K[],
  configFile: string,
): Promise<Record<K, Record<string, unknown>>> {
  const out = {} as Record<K, Record<string, unknown>>;
  for (const cmd of cmds) {
    let r: Awaited<ReturnType<typeof controlRequest>>;
    try {
      r = await controlRequest(path, { cmd });
    } catch (e) {
      if (e instanceof DaemonNotRunning) throw new NoDaemon(configFile, e.message);
      throw e;
    }
    if (!r.ok) throw new AoegwError('ERR_CONTROL', `${cmd}: ${r.errors.join('; ')}`);
    out[cmd] = r;
  }
  return out;
}

/** 3723000 ms → "1h02m", 63000 → "1m03s", 4200 → "4s". */
export function formatDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

/** A service time in µs as the status table shows it: 640µs, 1.28ms, 52.4ms, 1.05s; '-' for none. */
export function formatServiceTime(us: number | null): string {
  if (us === null) return '-';
  if (us < 1000) return `${us}µs`;
  if (us < 1e6) return `${Number((us / 1000).toPrecision(3))}ms`;
  return `${Number((us / 1e6).toPrecision(3))}s`;
}

/** Who runs (name, pid, version, uptime) and what is up (links, peers, imports): `status` and `top` start with them. */
export function summaryLines(s: Record<string, unknown>): [string, string] {
  const links = s.links as { up: number; down: number };
  const peers = s.peers as { total: number; up: number };
  const imports = s.imports as { total: number; usable: number };
  return [
    `${s.name}  pid ${s.pid}  v${s.version}  up ${formatDuration(s.uptimeMs as number)}`,
    `links ${links.up} up ${links.down} down  peers ${peers.up}/${peers.total} up  exports ${s.exports}  ` +
      `imports ${imports.usable}/${imports.total} usable  forwards ${s.forwards}`,
  ];
}

export function renderStatus(v: Views): string {
  const out: string[] = [summaryLines(v.status).join('  ')];
  if ((v.status.invitesPending as number) > 0) out.push(`invites pending: ${v.status.invitesPending}`);
  const exports = v.exports.exports as ExportView[];
  if (exports.length > 0) {
    const rows = [
      [
        'EXPORT',
        'MODE',
        'READS',
        'WRITES',
        'READ',
        'WRITTEN',
        'ERRORS',
        'DROPS',
        'PENDING',
        'P50',
        'P99',
        'MAX',
      ],
    ];
    // Service time since start, as bucket upper edges (the control socket's `exports`, latency).
    const lat = (l: ExportView['latency']) => [
      formatServiceTime(l.p50Us),
      formatServiceTime(l.p99Us),
      formatServiceTime(l.maxUs),
    ];
    for (const e of exports) {
      rows.push([
        e.target,
        e.readOnly ? 'ro' : 'rw',
        String(e.reads),
        String(e.writes),
        formatBytes(e.bytesRead),
        formatBytes(e.bytesWritten),
        String(e.errors),
        String(e.drops),
        String(e.pending),
        ...lat(e.latency),
      ]);
      for (const i of e.initiators) {
        rows.push([
          `  ${i.principal}`,
          '',
          `${i.requests} req`,
          '',
          formatBytes(i.bytesRead),
          formatBytes(i.bytesWritten),
          '',
          '',
          `idle ${formatDuration(i.idleMs)}`,
          ...lat(i.latency),
        ]);
      }
    }
    out.push('', printTable(rows), 'P50/P99/MAX: service time of reads, writes and flushes since start');
  }
  const peers = v.peers.peers as Record<string, unknown>[];
  if (peers.length > 0) {
    const rows = [['PEER', 'SESSION', 'HANDSHAKE', 'ENDPOINT', 'RX', 'TX', 'RX RECORDS', 'TX RECORDS']];
    for (const p of peers) {
      const age = p.handshakeAgeMs as number | null;
      rows.push([
        p.name as string,
        p.session ? 'up' : 'down',
        age === null ? 'never' : `${formatDuration(age)} ago`,
        (p.endpoint as string | null) ?? '-',
        formatBytes(p.rxBytes as number),
        formatBytes(p.txBytes as number),
        String(p.rxRecords),
        String(p.txRecords),
      ]);
    }
    out.push('', printTable(rows));
    const rx = (v.peers.tunnel as { rx: Record<string, number> } | null)?.rx ?? {};
    const rejects = Object.entries(rx).filter(([k, n]) => n > 0 && !ACCEPTED.has(k));
    out.push(
      `tunnel rejects: ${rejects.length === 0 ? 'none' : rejects.map(([k, n]) => `${k} ${n}`).join(', ')}`,
    );
  }
  const imports = v.imports.imports as { list: Record<string, unknown>[] } | null;
  if (imports && imports.list.length > 0) {
    const rows = [['IMPORT', 'PEER', 'REMOTE', 'USABLE', 'PENDING']];
    for (const i of imports.list) {
      rows.push([
        i.local as string,
        i.peer as string,
        i.remote as string,
        i.usable ? 'yes' : 'no',
        String(i.pending),
      ]);
    }
    out.push('', printTable(rows));
  }
  return `${out.join('\n')}\n`;
}

/** Tunnel receive outcomes that are not rejects. */
const ACCEPTED = new Set(['data', 'keepalive', 'initiation', 'response', 'cookie', 'cookie_sent']);

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description(
      'what the running daemon serves and to whom: exports with their initiators, peers, imports (docs/operations.md)',
    )
    .requiredOption('--config <file>', 'the config file the daemon runs')
    .option('--json', 'the control socket responses, raw')
    .action(async (o: { config: string; json?: boolean }) => {
      const views = await ask(socketOf(o.config), VIEWS, o.config);
      process.stdout.write(o.json ? `${JSON.stringify(views, null, 2)}\n` : renderStatus(views));
    });
}

/**
 * What the control socket's read-only commands answer (docs/operations.md, "Watching it"): views
 * of a running Gateway built from the counters it already keeps, when asked; nothing here runs per
 * frame. Every response carries `sampledAtMs`, the daemon's monotonic clock, so a client computes
 * rates (IOPS, MB/s) from two samples. Counters grow while the daemon runs, except those of an
 * export a reload re-created (from zero again) and initiators aged out into "other".
 *
 * Latency: the built-in target keeps a service-time histogram per export and per principal
 * (src/target/service-time.ts; what it measures: src/target/data-path.ts). Percentiles here are
 * since the export (or principal) started, computed when asked; the bucket counts come along, so a
 * client windows two samples as it does for rates (aoegw top shows the p99 of its interval).
 * The import side's smoothed round-trip time per peer is shown as it is kept.
 */

import { formatMac } from '../aoe/mac.js';
import type { Gateway } from '../gateway/daemon.js';
import type { ExportStatsSnapshot } from '../target/counters.js';
import type { ServerStats } from '../target/server.js';
import { type ServiceTimeSnapshot, serviceTimeQuantile } from '../target/service-time.js';
import { RX_NAMES } from '../tunnel/endpoint.js';
import { stderrLogStats } from './log.js';
import type { ControlHandler } from './server.js';

/**
 * Service time of READ/WRITE/FLUSH requests (receive batch to reply), since the export or the
 * principal started. Percentiles are the upper edge of the bucket holding them (at most 25 % above
 * the true value), µs; null before the first request.
 */
export interface LatencyView {
  readonly count: number;
  readonly meanUs: number | null;
  readonly p50Us: number | null;
  readonly p90Us: number | null;
  readonly p99Us: number | null;
  /** Upper edge (µs) of the highest bucket used; 67108864 (67 s) also stands for anything longer. */
  readonly maxUs: number | null;
  /** Non-zero buckets as [upper edge µs, count], counts since start: window two samples for a rate. */
  readonly buckets: readonly (readonly [number, number])[];
}

export function latencyView(s: ServiceTimeSnapshot): LatencyView {
  const q = (p: number) => {
    const v = serviceTimeQuantile(s.buckets, p);
    return Number.isNaN(v) ? null : v;
  };
  return {
    count: s.count,
    meanUs: s.count > 0 ? Math.round(s.sumUs / s.count) : null,
    p50Us: q(0.5),
    p90Us: q(0.9),
    p99Us: q(0.99),
    maxUs: q(1),
    buckets: s.buckets,
  };
}

export interface StatusContext {
  readonly name: string;
  readonly version: string;
  readonly invitesPending: () => number;
}

/** One initiator of an export: a MAC on a local link, or a MAC behind a peer gateway. */
export interface PrincipalView {
  /** MAC, or "PEER/MAC" for an initiator behind a peer ("other": MACs beyond the per-export table). */
  readonly principal: string;
  /** The peer's name ('' for a local link's initiator, the key's hex if no peer has it now). */
  readonly peer: string;
  readonly mac: string;
  /** Every AoE request it sent (reads, writes, IDENTIFY, Query Config, ...), and its data bytes. */
  readonly requests: number;
  readonly bytesRead: number;
  readonly bytesWritten: number;
  /** Since its last request (ms), in the daemon's monotonic clock. */
  readonly idleMs: number;
  readonly latency: LatencyView;
}

export interface ExportView {
  readonly target: string;
  readonly readOnly: boolean;
  readonly store: string;
  readonly reads: number;
  readonly writes: number;
  readonly bytesRead: number;
  readonly bytesWritten: number;
  /** Errors answered (ATA, AoE, store) and requests dropped without an answer, in total and by reason. */
  readonly errors: number;
  readonly drops: number;
  readonly errorsBy: ExportStatsSnapshot['errors'];
  readonly dropsBy: ExportStatsSnapshot['drops'];
  /** Requests waiting for the store now. */
  readonly pending: number;
  readonly requests: ExportStatsSnapshot['requests'];
  readonly ata: ExportStatsSnapshot['ata'];
  readonly latency: LatencyView;
  readonly initiators: readonly PrincipalView[];
}

const sum = (o: Record<string, number>): number => Object.values(o).reduce((a, b) => a + b, 0);

/** The response header every read-only command shares. */
function header(ctx: StatusContext): Record<string, unknown> {
  const now = performance.now();
  return {
    ok: true,
    name: ctx.name,
    pid: process.pid,
    version: ctx.version,
    // performance.now() counts from the process's start.
    uptimeMs: Math.round(now),
    sampledAtMs: now,
  };
}

type PeerStats = {
  name: string;
  publicKey: string;
  connected: boolean;
  session: boolean;
  handshakeAgeMs: number | null;
  endpoint: { address: string; port: number } | null;
  rxBytes: number;
  txBytes: number;
  rxRecords: number;
  txRecords: number;
  grants: string[];
  records: Record<string, number>;
};

function peerStats(gw: Gateway): PeerStats[] {
  return gw.stats().peers as PeerStats[];
}

export function linksView(gw: Gateway): Record<string, unknown>[] {
  const stats = gw.links.stats();
  const specs = new Map(gw.currentSpec.links.map((l) => [l.name, l]));
  return gw.links.names().map((name) => {
    const l = gw.links.link(name);
    const s = stats[name]!;
    const serviceMac = specs.get(name)?.mac;
    return {
      name,
      state: l.state,
      mac: formatMac(l.mac),
      // The configured service MAC (links[].mac), when the link has one: health checks it is on.
      ...(serviceMac ? { serviceMac } : {}),
      mtu: l.mtu,
      rxFrames: s.rxFrames,
      txFrames: s.txFrames,
      rxErrors: s.rxErrors,
      txErrors: s.txErrors,
      txDropped: s.txDropped,
      kernelDrops: s.kernelDrops,
      linkDowns: s.linkDowns,
      consumerErrors: s.consumerErrors,
    };
  });
}

export function peersView(gw: Gateway): Record<string, unknown>[] {
  return peerStats(gw).map((p) => ({
    name: p.name,
    publicKey: p.publicKey,
    session: p.session,
    reachable: p.connected,
    handshakeAgeMs: p.handshakeAgeMs,
    endpoint: p.endpoint ? `${p.endpoint.address}:${p.endpoint.port}` : null,
    rxBytes: p.rxBytes,
    txBytes: p.txBytes,
    // The tunnel counts records per peer (several share a datagram); datagrams only per tunnel.
    rxRecords: p.rxRecords,
    txRecords: p.txRecords,
    records: p.records,
    grants: p.grants,
  }));
}

/** Datagrams received by outcome (rejects by reason: the tunnel counts them per tunnel, not per peer). */
export function tunnelView(gw: Gateway): Record<string, unknown> | null {
  const t = gw.tunnel;
  if (!t) return null;
  const s = t.stats().tunnel;
  const rx: Record<string, number> = {};
  RX_NAMES.forEach((n, i) => {
    rx[n] = s.rx[i] ?? 0;
  });
  return {
    localPort: t.localPort,
    rx,
    txData: s.txData,
    txKeepalive: s.txKeepalive,
    txDropped: s.txDropped,
    handshakesCompleted: s.handshakesCompleted,
    handshakesFailed: s.handshakesFailed,
    handlerErrors: s.handlerErrors,
  };
}

export function exportsView(gw: Gateway): ExportView[] {
  const target = gw.target;
  if (!target) return [];
  const now = performance.now();
  const byKey = new Map(peerStats(gw).map((p) => [p.publicKey, p.name]));
  const exports = target.stats().engine.exports;
  return Object.entries(exports).map(([key, e]) => ({
    target: key,
    readOnly: e.readOnly,
    store: e.storeDescription,
    reads: e.reads,
    writes: e.writes,
    bytesRead: e.bytesRead,
    bytesWritten: e.bytesWritten,
    errors: sum(e.errors),
    drops: sum(e.drops),
    errorsBy: e.errors,
    dropsBy: e.drops,
    pending: e.pending,
    requests: e.requests,
    ata: e.ata,
    latency: latencyView(e.serviceTime),
    initiators: Object.entries(e.initiators).map(([k, c]) => {
      const slash = k.indexOf('/');
      const ns = slash < 0 ? '' : k.slice(0, slash);
      const peer = ns === '' ? '' : (byKey.get(ns) ?? ns);
      const mac = slash < 0 ? k : k.slice(slash + 1);
      return {
        principal: peer === '' ? mac : `${peer}/${mac}`,
        peer,
        mac,
        requests: c.requests,
        bytesRead: c.bytesRead,
        bytesWritten: c.bytesWritten,
        idleMs: Math.max(0, Math.round(now - c.lastSeen)),
        latency: latencyView(c.serviceTime),
      };
    }),
  }));
}

export function importsView(gw: Gateway): Record<string, unknown> | null {
  const s = gw.stats().imports as Record<string, unknown> | null;
  if (!s) return null;
  const { list, rtt, ...counters } = s;
  return { list, rtt, counters };
}

export function forwardsView(gw: Gateway): Record<string, unknown> | null {
  const s = gw.stats().forwards as Record<string, unknown> | null;
  if (!s) return null;
  const { list, ...counters } = s;
  return { list, counters };
}

export function statusView(gw: Gateway, ctx: StatusContext): Record<string, unknown> {
  const links = gw.links.names().map((n) => gw.links.link(n).state);
  const stats = gw.stats();
  const peers = stats.peers as PeerStats[];
  const imports = (stats.imports as { list?: { usable: boolean }[] } | null)?.list ?? [];
  return {
    ...header(ctx),
    links: { up: links.filter((s) => s === 'up').length, down: links.filter((s) => s === 'down').length },
    peers: { total: peers.length, up: peers.filter((p) => p.session).length },
    exports: Object.keys((stats.target as ServerStats | null)?.engine.exports ?? {}).length,
    imports: { total: imports.length, usable: imports.filter((i) => i.usable).length },
    forwards: gw.forwards.status().length,
    invitesPending: ctx.invitesPending(),
    // stderr's log writer (null when the daemon logs elsewhere): lines waiting for a slow reader, lines lost.
    log: stderrLogStats() ?? null,
  };
}

/** The read-only commands: status, links, peers, exports, imports, forwards, and stats (every counter). */
export function statusHandlers(gw: Gateway, ctx: StatusContext): Record<string, ControlHandler> {
  return {
    status: () => statusView(gw, ctx) as { ok: true },
    links: () => ({ ...header(ctx), ok: true, links: linksView(gw) }),
    peers: () => ({ ...header(ctx), ok: true, peers: peersView(gw), tunnel: tunnelView(gw) }),
    exports: () => ({ ...header(ctx), ok: true, exports: exportsView(gw) }),
    imports: () => ({ ...header(ctx), ok: true, imports: importsView(gw) }),
    forwards: () => ({ ...header(ctx), ok: true, forwards: forwardsView(gw) }),
    stats: () => ({ ...header(ctx), ok: true, stats: gw.stats() }),
  };
}

/**
 * Prometheus metrics of `aoegw run` (docs/gateway.md, "Metrics"). Nothing is counted here: a
 * scrape takes one snapshot of the counters the daemon already keeps (Gateway.stats(), the
 * enrollment desk) and fills a prom-client registry from it, so the data path does no extra work
 * and every number of one scrape comes from the same instant. Series of things that are gone (a
 * removed peer or export) disappear with them; counters of an export or peer that a reload
 * re-creates start again from zero, which Prometheus' rate() reads as a counter reset.
 *
 * Service times are histograms (`aoegw_export_service_seconds`, `aoegw_initiator_service_seconds`):
 * the target's own bucket counts (src/target/service-time.ts), summed up to octave edges (8 µs to
 * 33.5 s; the target's buckets split each octave in 4, so these sums are exact), cumulative since
 * the export or initiator started: histogram_quantile() over rate() of the _bucket series gives
 * windowed percentiles.
 *
 * MetricsServer serves the text format on /metrics with node:http, one scrape at a time.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { AoegwError } from '../errors.js';
import type { GatewayStats } from '../gateway/daemon.js';
import type { Log } from '../log.js';
import type { ServiceTimeSnapshot } from '../target/service-time.js';
import { RX_NAMES } from '../tunnel/endpoint.js';
import { stderrLogStats } from './log.js';

/** What a scrape reads. */
export interface MetricsSource {
  stats(): GatewayStats;
  /** The inviter's enrollment counters (EnrollmentDesk), when this gateway serves invites. */
  readonly enrollment?: {
    readonly pending: number;
    readonly pinned: number;
    readonly refused: number;
  } | null;
}

type Labels = Record<string, string>;
type Metric = Counter<string> | Gauge<string>;

/** Upper edges (µs) of the exported service-time buckets: every octave from 8 µs to 33.5 s. */
const SERVICE_EDGES_US = Array.from({ length: 23 }, (_, i) => 2 ** (i + 3));

/**
 * A histogram whose series are set from service-time snapshots (prom-client's Histogram only
 * observes values one at a time): the same exposition, `_bucket{le}` cumulative, `_sum`, `_count`.
 */
class SnapshotHistogram extends Histogram<string> {
  private series: { labels: Labels; s: ServiceTimeSnapshot }[] = [];

  constructor(
    private readonly fullName: string,
    private readonly helpText: string,
    labelNames: string[],
    registry: Registry,
  ) {
    super({
      name: fullName,
      help: helpText,
      labelNames,
      buckets: SERVICE_EDGES_US.map((us) => us / 1e6),
      registers: [registry],
    });
  }

  set(labels: Labels, s: ServiceTimeSnapshot): void {
    this.series.push({ labels, s });
  }

  override reset(): void {
    this.series = [];
  }

  /** What the registry renders (prom-client calls this rather than get() for histograms). */
  async getForPromString() {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    for (const { labels, s } of this.series) {
      let j = 0;
      let cum = 0;
      for (const le of SERVICE_EDGES_US) {
        while (j < s.buckets.length && s.buckets[j]![0] <= le) cum += s.buckets[j++]![1];
        values.push({
          labels: { ...labels, le: le / 1e6 },
          value: cum,
          metricName: `${this.fullName}_bucket`,
        });
      }
      values.push({
        labels: { ...labels, le: '+Inf' },
        value: s.count,
        metricName: `${this.fullName}_bucket`,
      });
      values.push({ labels, value: s.sumUs / 1e6, metricName: `${this.fullName}_sum` });
      values.push({ labels, value: s.count, metricName: `${this.fullName}_count` });
    }
    return { name: this.fullName, help: this.helpText, type: 'histogram', values, aggregator: 'sum' };
  }

  override async get() {
    return (await this.getForPromString()) as unknown as Awaited<ReturnType<Histogram<string>['get']>>;
  }
}

export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly all: Metric[] = [];
  private readonly histograms: SnapshotHistogram[] = [];

  // Built-in exports and their initiators (principals).
  private readonly exportReads = this.counter('export_reads_total', 'ATA reads answered with data', [
    'export',
  ]);
  private readonly exportWrites = this.counter('export_writes_total', 'ATA writes acknowledged', ['export']);
  private readonly exportReadBytes = this.counter('export_read_bytes_total', 'Bytes read', ['export']);
  private readonly exportWrittenBytes = this.counter('export_written_bytes_total', 'Bytes written', [
    'export',
  ]);
  private readonly exportRequests = this.counter(
    'export_requests_total',
    'Requests by AoE command (after the allow-list)',
    ['export', 'command'],
  );
  private readonly exportAta = this.counter('export_ata_commands_total', 'ATA requests by command', [
    'export',
    'command',
  ]);
  private readonly exportErrors = this.counter('export_errors_total', 'Requests answered with an error', [
    'export',
    'kind',
  ]);
  private readonly exportDrops = this.counter('export_drops_total', 'Requests dropped without an answer', [
    'export',
    'reason',
  ]);
  private readonly exportStoreCalls = this.counter('export_store_calls_total', 'Calls into the block store', [
    'export',
    'call',
  ]);
  private readonly exportPending = this.gauge('export_pending', 'Requests waiting for the store now', [
    'export',
  ]);
  private readonly exportService = this.histogram(
    'export_service_seconds',
    'Service time of READ/WRITE/FLUSH requests: receive batch to reply (src/target/data-path.ts)',
    ['export'],
  );
  private readonly initiatorService = this.histogram(
    'initiator_service_seconds',
    'Service time of READ/WRITE/FLUSH requests per export and initiator',
    ['export', 'initiator'],
  );
  private readonly initiatorRequests = this.counter(
    'initiator_requests_total',
    'Requests per export and initiator ("MAC", "PEER/MAC" behind a peer gateway, or "other" beyond the per-export limit)',
    ['export', 'initiator'],
  );
  private readonly initiatorReadBytes = this.counter(
    'initiator_read_bytes_total',
    'Bytes read per export and initiator',
    ['export', 'initiator'],
  );
  private readonly initiatorWrittenBytes = this.counter(
    'initiator_written_bytes_total',
    'Bytes written per export and initiator',
    ['export', 'initiator'],
  );
  private readonly stateWrites = this.counter('target_state_writes_total', 'State file writes', []);
  private readonly stateWriteErrors = this.counter(
    'target_state_write_errors_total',
    'State file writes that failed',
    [],
  );
  private readonly heldReplies = this.counter(
    'target_held_replies_total',
    'Replies to state changes sent after the write completed, or as errors after it failed',
    ['result'],
  );
  private readonly targetLinkFrames = this.counter('target_link_frames_total', 'Frames of the target', [
    'link',
    'direction',
  ]);
  private readonly targetLinkIgnored = this.counter(
    'target_link_ignored_total',
    'Frames the target did not serve, by reason',
    ['link', 'reason'],
  );
  // Block I/O of the built-in exports.
  private readonly blockPending = this.gauge('blockio_pending', 'Requests waiting for their store now', []);
  private readonly blockDrops = this.counter('blockio_drops_total', 'Data-path requests or replies lost', [
    'reason',
  ]);
  private readonly ringOps = this.counter('blockio_ring_ops_total', 'io_uring operations submitted', []);
  private readonly ringCompletions = this.counter(
    'blockio_ring_completions_total',
    'io_uring completions delivered',
    [],
  );
  private readonly ringSubmits = this.counter('blockio_ring_submits_total', 'io_uring_enter calls', []);
  private readonly ringWakeups = this.counter(
    'blockio_ring_wakeups_total',
    'Event-loop wakeups on the ring',
    [],
  );
  private readonly ringBacklogged = this.counter(
    'blockio_ring_backlogged_total',
    'Operations held back because the completion queue was full',
    [],
  );
  private readonly ringQueued = this.gauge(
    'blockio_ring_queued',
    'Operations not yet handed to the kernel',
    [],
  );
  private readonly ringInFlight = this.gauge('blockio_ring_in_flight', 'Operations in the kernel now', []);
  // Shared links.
  private readonly linkFrames = this.counter('link_frames_total', 'Frames received and sent', [
    'link',
    'direction',
  ]);
  private readonly linkDrops = this.counter(
    'link_drops_total',
    'Frames lost or refused on the link, by reason',
    ['link', 'reason'],
  );
  private readonly linkDowns = this.counter('link_downs_total', 'Times the link went down', ['link']);
  // Tunnel.
  private readonly tunnelRx = this.counter(
    'tunnel_rx_datagrams_total',
    'Datagrams received, by outcome (rejects: malformed, bad_mac1, rate_limited, handshake_failed, unknown_peer, stale_timestamp, unknown_index, expired, replay, bad_auth, bad_records, bad_cookie, unknown_invite, internal)',
    ['outcome'],
  );
  private readonly tunnelTx = this.counter('tunnel_tx_messages_total', 'Messages sent, by kind', ['kind']);
  private readonly tunnelTxDropped = this.counter(
    'tunnel_tx_dropped_total',
    'Records not sent for lack of a session or endpoint',
    [],
  );
  private readonly handshakes = this.counter('tunnel_handshakes_total', 'Handshakes completed or given up', [
    'result',
  ]);
  private readonly tunnelHandlerErrors = this.counter(
    'tunnel_handler_errors_total',
    'Records lost to a throwing handler',
    [],
  );
  private readonly tunnelRxTruncated = this.counter(
    'tunnel_rx_truncated_total',
    'Datagrams longer than a receive slot',
    [],
  );
  private readonly tunnelErrors = this.counter(
    'tunnel_driver_errors_total',
    'Errors caught by the UDP driver',
    [],
  );
  private readonly cookieMode = this.counter(
    'tunnel_cookie_mode_entered_total',
    'Times load turned cookie mode on',
    [],
  );
  // Peers.
  private readonly peerUp = this.gauge('peer_up', '1 while the peer has a session that can send', ['peer']);
  private readonly peerHandshakeAge = this.gauge(
    'peer_handshake_age_seconds',
    'Since the last completed handshake (absent before the first)',
    ['peer'],
  );
  private readonly peerBytes = this.counter('peer_bytes_total', 'Tunnel bytes to and from the peer', [
    'peer',
    'direction',
  ]);
  private readonly peerRecords = this.counter('peer_records_total', 'Records to and from the peer', [
    'peer',
    'direction',
  ]);
  private readonly peerPathMtu = this.gauge('peer_path_mtu_bytes', 'Datagram size in use towards the peer', [
    'peer',
  ]);
  // Import side (our initiators' requests relayed to peers).
  private readonly importPending = this.gauge('import_pending', 'Requests relayed and not yet answered', []);
  private readonly importRelayed = this.counter('import_relayed_total', 'Requests relayed to peers', []);
  private readonly importReplies = this.counter(
    'import_replies_total',
    'Replies delivered to initiators',
    [],
  );
  private readonly importResends = this.counter(
    'import_resends_total',
    'Resends across the tunnel (own timeout) and reissues under a new number',
    ['kind'],
  );
  private readonly importInProgress = this.counter(
    'import_in_progress_total',
    'Resends put off because the exporter said the request is still running (AOE_IN_PROGRESS)',
    [],
  );
  private readonly logLinesDropped = this.counter(
    'log_lines_dropped_total',
    'Log lines never written to stderr: its reader was not reading (1 MiB waited), had gone, or the write failed',
    [],
  );
  private readonly logLinesQueued = this.gauge(
    'log_lines_queued',
    "Log lines waiting for stderr's reader now",
    [],
  );
  private readonly importFailures = this.counter(
    'import_failures_total',
    'Requests given up after failAfterMs (ATA error, or abandoned)',
    ['kind'],
  );
  private readonly importDrops = this.counter('import_drops_total', 'Frames or replies dropped, by reason', [
    'reason',
  ]);
  private readonly importUsable = this.gauge('import_usable', '1 while the import is usable', [
    'import',
    'peer',
    'remote',
  ]);
  private readonly importSrtt = this.gauge('import_peer_srtt_seconds', 'Smoothed round-trip time', ['peer']);
  // Export side (peers' requests served here).
  private readonly sideRequests = this.counter(
    'export_side_requests_total',
    'Requests received from peers',
    [],
  );
  private readonly sideInFlight = this.gauge('export_side_in_flight', 'Peer requests in flight here', []);
  private readonly sideRefused = this.counter(
    'export_side_refused_total',
    'Peer requests refused, by reason',
    ['reason'],
  );
  private readonly sideDuplicates = this.counter('export_side_duplicates_total', 'Duplicate peer requests', [
    'handling',
  ]);
  private readonly sideRevoked = this.counter(
    'export_side_revoked_total',
    'Requests failed because a reload took the grant',
    ['when'],
  );
  private readonly sideExpired = this.counter(
    'export_side_expired_total',
    'In-flight requests never answered',
    [],
  );
  // Forward side (native targets relayed to).
  private readonly fwdRelayed = this.counter(
    'forward_relayed_total',
    'Requests relayed to native targets',
    [],
  );
  private readonly fwdReplies = this.counter('forward_replies_total', 'Replies sent back to peers', []);
  private readonly fwdDrops = this.counter('forward_drops_total', 'Requests or replies dropped, by reason', [
    'reason',
  ]);
  private readonly fwdExpired = this.counter('forward_expired_total', 'Relayed requests never answered', []);
  private readonly fwdOutstanding = this.gauge(
    'forward_outstanding',
    'Requests in flight to the native target',
    ['target', 'link'],
  );
  // Control plane.
  private readonly reloads = this.counter('reloads_total', 'Reloads applied or refused', ['result']);
  private readonly invitesPending = this.gauge('enrollment_invites_pending', 'Invites live now', []);
  private readonly enrollments = this.counter('enrollments_total', 'Enrollments pinned or refused', [
    'result',
  ]);

  /**
   * `initiatorLatency`: also the per-initiator histogram (26 series per export and initiator, up
   * to 33 initiators per export, and initiators come and go with their MACs): off unless asked.
   */
  constructor(
    private readonly source: MetricsSource,
    private readonly opts: { initiatorLatency?: boolean } = {},
  ) {}

  get contentType(): string {
    return this.registry.contentType;
  }

  /** One snapshot of every counter, in the Prometheus text format. */
  async render(): Promise<string> {
    this.fill(this.source.stats());
    return this.registry.metrics();
  }

  private counter(name: string, help: string, labelNames: string[]): Counter<string> {
    const m = new Counter({ name: `aoegw_${name}`, help, labelNames, registers: [this.registry] });
    this.all.push(m);
    return m;
  }

  private histogram(name: string, help: string, labelNames: string[]): SnapshotHistogram {
    const m = new SnapshotHistogram(`aoegw_${name}`, help, labelNames, this.registry);
    this.histograms.push(m);
    return m;
  }

  private gauge(name: string, help: string, labelNames: string[]): Gauge<string> {
    const m = new Gauge({ name: `aoegw_${name}`, help, labelNames, registers: [this.registry] });
    this.all.push(m);
    return m;
  }

  private fill(s: GatewayStats): void {
    // A metric without labels comes back as 0 from reset(): absent instead, until something sets it
    // (a gateway without a tunnel has no tunnel counters, not zero ones).
    for (const m of this.all) {
      m.reset();
      m.remove({});
    }
    for (const m of this.histograms) m.reset();
    this.fillTarget(s);
    this.fillLinks(s);
    this.fillTunnel(s);
    this.fillSides(s);
    put(this.reloads, { result: 'applied' }, s.reloads.applied);
    put(this.reloads, { result: 'refused' }, s.reloads.refused);
    const log = stderrLogStats();
    if (log) {
      put(this.logLinesDropped, {}, log.linesDropped);
      put(this.logLinesQueued, {}, log.linesQueued);
    }
    const e = this.source.enrollment;
    if (e) {
      put(this.invitesPending, {}, e.pending);
      put(this.enrollments, { result: 'pinned' }, e.pinned);
      put(this.enrollments, { result: 'refused' }, e.refused);
    }
  }

  private fillTarget(s: GatewayStats): void {
    const t = s.target;
    if (!t) return;
    const peerNames = new Map(s.peers.map((p) => [p.publicKey, p.name]));
    for (const [key, x] of Object.entries(t.engine.exports)) {
      const l = { export: key };
      put(this.exportReads, l, x.reads);
      put(this.exportWrites, l, x.writes);
      put(this.exportReadBytes, l, x.bytesRead);
      put(this.exportWrittenBytes, l, x.bytesWritten);
      put(this.exportPending, l, x.pending);
      this.exportService.set(l, x.serviceTime);
      putAll(this.exportRequests, l, 'command', {
        ata: x.requests.ata,
        query_config: x.requests.queryConfig,
        mac_mask: x.requests.macMask,
        reserve: x.requests.reserve,
        other: x.requests.other,
      });
      putAll(this.exportAta, l, 'command', {
        read: x.ata.read,
        write: x.ata.write,
        identify: x.ata.identify,
        flush: x.ata.flush,
        check_power: x.ata.checkPower,
        other: x.ata.other,
      });
      putAll(this.exportErrors, l, 'kind', x.errors);
      putAll(this.exportDrops, l, 'reason', {
        allow_list: x.drops.allowList,
        masked: x.drops.masked,
        buffer_full: x.drops.bufferFull,
        broadcast_ata: x.drops.broadcastAta,
        malformed: x.drops.malformed,
        state_rate: x.drops.stateRate,
      });
      putAll(this.exportStoreCalls, l, 'call', {
        readv: x.store.readv,
        writev: x.store.writev,
        commit: x.store.commits,
        flush: x.store.flushes,
      });
      for (const [principal, c] of Object.entries(x.initiators)) {
        const li = { export: key, initiator: this.principalLabel(principal, peerNames) };
        put(this.initiatorRequests, li, c.requests);
        put(this.initiatorReadBytes, li, c.bytesRead);
        put(this.initiatorWrittenBytes, li, c.bytesWritten);
        if (this.opts.initiatorLatency) this.initiatorService.set(li, c.serviceTime);
      }
    }
    for (const l of Object.values(t.engine.links)) {
      put(this.targetLinkFrames, { link: l.name, direction: 'rx' }, l.framesIn);
      put(this.targetLinkFrames, { link: l.name, direction: 'tx' }, l.framesOut);
      putAll(this.targetLinkIgnored, { link: l.name }, 'reason', {
        malformed: l.malformed,
        not_aoe: l.notAoe,
        response: l.responses,
        not_for_us: l.notForUs,
        group_source: l.groupSource,
        error_flag: l.errorFlag,
        broadcast_rate_limited: l.broadcastRateLimited,
      });
    }
    put(this.stateWrites, {}, t.stateWrites);
    put(this.stateWriteErrors, {}, t.stateWriteErrors);
    put(this.heldReplies, { result: 'sent' }, t.heldRepliesSent);
    put(this.heldReplies, { result: 'failed' }, t.heldRepliesFailed);
    const d = t.blockIo.dataPath;
    put(this.blockPending, {}, d.pending);
    putAll(this.blockDrops, {}, 'reason', {
      pool_full: d.dropPoolFull,
      reply_lost: d.replyLost,
      stray_completion: d.strayCompletions,
    });
    const r = t.blockIo.ring;
    if (r) {
      put(this.ringOps, {}, r.ops);
      put(this.ringCompletions, {}, r.completions);
      put(this.ringSubmits, {}, r.submits);
      put(this.ringWakeups, {}, r.wakeups);
      put(this.ringBacklogged, {}, r.backlogged);
      put(this.ringQueued, {}, r.queued);
      put(this.ringInFlight, {}, r.ops - r.completions);
    }
  }

  /** `KEY/MAC` of an initiator behind a peer becomes `PEER/MAC` (the key while no peer has it). */
  private principalLabel(principal: string, peerNames: ReadonlyMap<string, string>): string {
    const slash = principal.indexOf('/');
    if (slash < 0) return principal;
    const name = peerNames.get(principal.slice(0, slash));
    return name === undefined ? principal : `${name}${principal.slice(slash)}`;
  }

  private fillLinks(s: GatewayStats): void {
    for (const [link, x] of Object.entries(s.links)) {
      put(this.linkFrames, { link, direction: 'rx' }, x.rxFrames);
      put(this.linkFrames, { link, direction: 'tx' }, x.txFrames);
      put(this.linkDowns, { link }, x.linkDowns);
      putAll(this.linkDrops, { link }, 'reason', {
        rx_truncated: x.rxTruncated,
        rx_error: x.rxErrors,
        rx_vlan: x.rxVlanDropped,
        rx_other_host: x.rxOtherHostDropped,
        kernel: x.kernelDrops,
        tx_dropped: x.txDropped,
        tx_error: x.txErrors,
        tx_oversized: x.txOversized,
        handler_error: x.handlerErrors,
        consumer_error: x.consumerErrors,
      });
    }
  }

  private fillTunnel(s: GatewayStats): void {
    const t = s.tunnel;
    if (t) {
      for (const [i, outcome] of RX_NAMES.entries()) put(this.tunnelRx, { outcome }, t.rx[i] ?? 0);
      putAll(this.tunnelTx, {}, 'kind', {
        data: t.txData,
        keepalive: t.txKeepalive,
        initiation: t.txInitiation,
        response: t.txResponse,
        cookie_reply: t.txCookieReply,
      });
      put(this.tunnelTxDropped, {}, t.txDropped);
      put(this.handshakes, { result: 'completed' }, t.handshakesCompleted);
      put(this.handshakes, { result: 'failed' }, t.handshakesFailed);
      put(this.tunnelHandlerErrors, {}, t.handlerErrors);
      put(this.tunnelRxTruncated, {}, t.driver.rxTruncated);
      put(this.tunnelErrors, {}, t.driver.errors);
      put(this.cookieMode, {}, t.driver.loadEntered);
    }
    for (const p of s.peers) {
      const peer = p.name;
      put(this.peerUp, { peer }, p.connected ? 1 : 0);
      if (p.handshakeAgeMs !== null) put(this.peerHandshakeAge, { peer }, p.handshakeAgeMs / 1000);
      put(this.peerBytes, { peer, direction: 'rx' }, p.rxBytes);
      put(this.peerBytes, { peer, direction: 'tx' }, p.txBytes);
      put(this.peerRecords, { peer, direction: 'rx' }, p.rxRecords);
      put(this.peerRecords, { peer, direction: 'tx' }, p.txRecords);
      if (typeof p.pathMtu === 'number') put(this.peerPathMtu, { peer }, p.pathMtu);
    }
  }

  private fillSides(s: GatewayStats): void {
    const im = s.imports;
    if (im) {
      put(this.importPending, {}, im.pending);
      put(this.importRelayed, {}, im.relayed);
      put(this.importReplies, {}, im.replies);
      putAll(this.importResends, {}, 'kind', { timeout: im.retransmits, reissued: im.reissued });
      put(this.importInProgress, {}, im.inProgress);
      putAll(this.importFailures, {}, 'kind', { failed: im.failed, abandoned: im.abandoned });
      putAll(this.importDrops, {}, 'reason', {
        dropped: im.dropped,
        group_source: im.groupSource,
        unusable: im.unusable,
        table_full: im.tableFull,
        too_large: im.tooLarge,
        send_failed: im.sendFailed,
        stale_reply: im.staleReplies,
        foreign_reply: im.foreignReplies,
      });
      for (const i of im.list)
        put(this.importUsable, { import: i.local, peer: i.peer, remote: i.remote }, i.usable ? 1 : 0);
      for (const r of im.rtt) if (r.samples > 0) put(this.importSrtt, { peer: r.peer }, r.srttMs / 1000);
    }
    const x = s.exportSide;
    put(this.sideRequests, {}, x.requests);
    put(this.sideInFlight, {}, x.inFlight);
    putAll(this.sideRefused, {}, 'reason', {
      malformed: x.malformed,
      group_source: x.groupSource,
      denied: x.denied,
      too_large: x.tooLarge,
      read_only: x.readOnlyRefused,
      stale_epoch: x.staleEpoch,
      stale_fence: x.staleFence,
      stale_old: x.staleOld,
      busy: x.busy,
    });
    putAll(this.sideDuplicates, {}, 'handling', {
      in_progress: x.dupInProgress,
      answered: x.dupAnswered,
      rerun: x.dupRerun,
      lost: x.dupLost,
    });
    putAll(this.sideRevoked, {}, 'when', { request: x.revoked, in_flight: x.revokedInFlight });
    put(this.sideExpired, {}, x.expired);
    const f = s.forwards;
    if (f) {
      put(this.fwdRelayed, {}, f.relayed);
      put(this.fwdReplies, {}, f.replies);
      put(this.fwdExpired, {}, f.expired);
      putAll(this.fwdDrops, {}, 'reason', {
        no_target: f.noTarget,
        malformed: f.malformed,
        buffer_full: f.bufferFull,
        table_full: f.tableFull,
        too_large: f.tooLarge,
        send_failed: f.sendFailed,
        stale_reply: f.staleReplies,
      });
      for (const t of f.list) put(this.fwdOutstanding, { target: t.target, link: t.link }, t.outstanding);
    }
  }
}

function put(m: Metric, labels: Labels, value: number): void {
  if (!Number.isFinite(value)) return;
  if (m instanceof Counter) m.inc(labels, Math.max(0, value));
  else m.set(labels, value);
}

/** One series per key of `values`, the key as label `label`. */
function putAll(m: Metric, labels: Labels, label: string, values: Record<string, number>): void {
  for (const [k, v] of Object.entries(values)) put(m, { ...labels, [label]: k }, v);
}

export interface MetricsServerOptions {
  readonly address: string;
  readonly port: number;
  readonly metrics: GatewayMetrics;
  readonly log?: Log;
  /** Connections open at once (default 8); more are refused by the kernel's backlog. */
  readonly maxConnections?: number;
}

/** GET /metrics over HTTP; 404 elsewhere, 405 for other methods, 503 while a scrape runs. */
export class MetricsServer {
  private busy = false;

  private constructor(
    private readonly server: Server,
    readonly address: string,
    readonly port: number,
  ) {}

  /** Listens on address:port (port 0: any). Throws ERR_BIND naming the address when it cannot. */
  static async open(o: MetricsServerOptions): Promise<MetricsServer> {
    let self: MetricsServer | undefined;
    const server = createServer((req, res) => {
      if (self) self.handle(req, res, o);
      else res.writeHead(503).end();
    });
    server.maxConnections = o.maxConnections ?? 8;
    server.headersTimeout = 5000;
    server.requestTimeout = 10_000;
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) => {
        const host = o.address.includes(':') ? `[${o.address}]` : o.address;
        reject(
          new AoegwError('ERR_BIND', `metrics: cannot listen on ${host}:${o.port}: ${e.code ?? e.message}`),
        );
      });
      server.listen({ host: o.address, port: o.port, exclusive: true }, () => resolve());
    });
    server.on('error', (e) => o.log?.warn(`metrics: ${e.message}`));
    // Scrapes do not keep the daemon alive (a daemon that lost its links must still notice).
    server.unref();
    const bound = server.address();
    self = new MetricsServer(server, o.address, typeof bound === 'object' && bound ? bound.port : o.port);
    return self;
  }

  private handle(req: IncomingMessage, res: ServerResponse, o: MetricsServerOptions): void {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('GET /metrics\n');
      return;
    }
    if (this.busy) {
      res.writeHead(503, { 'retry-after': '1', 'content-type': 'text/plain' }).end('a scrape is running\n');
      return;
    }
    this.busy = true;
    o.metrics
      .render()
      .then(
        (body) => {
          res.writeHead(200, { 'content-type': o.metrics.contentType });
          res.end(req.method === 'HEAD' ? undefined : body);
        },
        (e: Error) => {
          o.log?.error(`metrics: scrape failed: ${e.message}`);
          res.writeHead(500, { 'content-type': 'text/plain' }).end('scrape failed\n');
        },
      )
      .finally(() => {
        this.busy = false;
      });
  }

  /** Stops listening and drops open connections. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

/** 127.0.0.0/8 and ::1: reachable from this host only. */
export function isLoopback(address: string): boolean {
  return /^127\./.test(address) || address === '::1' || address === '0:0:0:0:0:0:0:1';
}

/**
 * The daemon's metrics server for `metrics` of the config: listening, logged (with a warning when
 * the address is reachable from other hosts: /metrics has no authentication).
 */
export async function serveMetrics(
  listen: { readonly address: string; readonly port: number; readonly initiatorLatency?: boolean },
  source: MetricsSource,
  log: Log,
): Promise<MetricsServer> {
  const metrics = new GatewayMetrics(source, { initiatorLatency: listen.initiatorLatency === true });
  const server = await MetricsServer.open({ address: listen.address, port: listen.port, metrics, log });
  const host = listen.address.includes(':') ? `[${listen.address}]` : listen.address;
  log.info(`metrics: http://${host}:${server.port}/metrics`);
  if (!isLoopback(listen.address))
    log.warn(
      `metrics: ${host} is not a loopback address: anyone who reaches it reads the counters (restrict it with a firewall)`,
    );
  return server;
}

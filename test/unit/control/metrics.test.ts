/**
 * The Prometheus metrics (src/control/metrics.ts) against a Gateway-like stats object: each family
 * reads the counter it names, series of things that are gone disappear, the text parses (with the
 * test parser, support/prom-text.ts), and the HTTP server answers /metrics only.
 */
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { GatewayMetrics, isLoopback, MetricsServer } from '../../../src/control/metrics.js';
import type { GatewayPeerStats, GatewayStats } from '../../../src/gateway/daemon.js';
import { lineLog } from '../../../src/log.js';
import type { ExportStatsSnapshot } from '../../../src/target/counters.js';
import { RX_NAMES, Rx } from '../../../src/tunnel/endpoint.js';
import { parsePromText, promSum, promValue } from '../../../support/prom-text.js';

function exportStats(n: number): ExportStatsSnapshot {
  return {
    shelf: 1,
    slot: n,
    storeDescription: 'memory',
    readOnly: false,
    requests: { ata: 10 * n, queryConfig: 2, macMask: 0, reserve: 0, other: 1 },
    ata: { read: 4 * n, write: 5 * n, identify: 1, flush: 0, checkPower: 0, other: 0 },
    reads: 4 * n,
    writes: 5 * n,
    bytesRead: 4096 * n,
    bytesWritten: 5120 * n,
    store: { readv: 3, writev: 4, commits: 4, flushes: 0 },
    errors: { ata: 1, aoe: 0, store: 0 },
    drops: { allowList: 0, masked: 0, bufferFull: 7, broadcastAta: 0, malformed: 0, stateRate: 0 },
    configTestMiss: 0,
    stateChanges: 0,
    serviceTime: {
      count: 4,
      sumUs: 31_500,
      buckets: [
        [640, 3],
        [32768, 1],
      ],
    },
    pending: n,
    initiators: {
      '02:00:00:00:00:01': {
        requests: 6,
        bytesRead: 1024,
        bytesWritten: 2048,
        lastSeen: 1,
        serviceTime: { count: 3, sumUs: 1500, buckets: [[640, 3]] },
      },
      'abcd/02:00:00:00:00:02': {
        requests: 4,
        bytesRead: 0,
        bytesWritten: 512,
        lastSeen: 1,
        serviceTime: { count: 1, sumUs: 30_000, buckets: [[32768, 1]] },
      },
    },
  };
}

const linkStats = (rx: number, tx: number) => ({
  rxFrames: rx,
  rxBatches: 1,
  rxTruncated: 0,
  rxErrors: 0,
  txFrames: tx,
  txBatches: 1,
  txDropped: 2,
  txErrors: 0,
  kernelDrops: 3,
  handlerErrors: 0,
  rxVlanDropped: 0,
  rxOtherHostDropped: 0,
  txOversized: 0,
  linkDowns: 1,
  consumerErrors: 0,
});

function peer(name: string, connected: boolean): GatewayPeerStats {
  return {
    name,
    publicKey: name === 'b' ? 'abcd' : 'ef01',
    connected,
    session: connected,
    endpoint: null,
    handshakeAgeMs: connected ? 2500 : null,
    rxBytes: 1000,
    txBytes: 2000,
    rxRecords: 10,
    txRecords: 20,
    records: {
      requests: 0,
      responses: 0,
      responsesUnexpected: 0,
      inProgress: 0,
      incompatible: 0,
      control: 0,
      controlMalformed: 0,
      unknown: 0,
    },
    grants: [],
    pathMtu: 1452,
  };
}

function gatewayStats(): GatewayStats {
  const rx = new Array<number>(RX_NAMES.length).fill(0);
  rx[Rx.DATA] = 100;
  rx[Rx.REPLAY] = 3;
  rx[Rx.BAD_MAC1] = 2;
  rx[Rx.COOKIE_SENT] = 1;
  return {
    links: { lan: linkStats(50, 40) },
    target: {
      engine: {
        links: {
          '0': {
            name: 'lan',
            mac: '02:00:00:00:00:aa',
            mtu: 1500,
            batches: 1,
            framesIn: 30,
            framesOut: 25,
            malformed: 1,
            notAoe: 2,
            responses: 0,
            notForUs: 5,
            groupSource: 0,
            framesHeld: 0,
            errorFlag: 0,
            broadcastRateLimited: 0,
          },
        },
        exports: { 'e1.1': exportStats(1), 'e1.2': exportStats(2) },
        stateChangeErrors: 0,
      },
      links: {},
      stateWrites: 3,
      stateWriteErrors: 1,
      heldRepliesSent: 2,
      heldRepliesFailed: 0,
      blockIo: {
        description: 'io_uring',
        exports: {},
        dataPath: { pending: 3, dropPoolFull: 4, strayCompletions: 0, replyLost: 1 },
        ring: {
          submits: 5,
          ops: 12,
          completions: 10,
          inlineCompletions: 0,
          wakeups: 6,
          backlogged: 0,
          spuriousWakeups: 0,
          canceled: 0,
          handlerErrors: 0,
          queued: 1,
        },
      },
    },
    imports: {
      framesIn: 9,
      notForUs: 0,
      dropped: 1,
      groupSource: 0,
      unusable: 2,
      answeredLocally: 0,
      relayed: 8,
      tableFull: 0,
      tooLarge: 0,
      sendFailed: 0,
      replies: 7,
      staleReplies: 0,
      foreignReplies: 0,
      retransmits: 4,
      inProgress: 3,
      superseded: 0,
      reissued: 1,
      failed: 2,
      abandoned: 0,
      announcements: 1,
      pending: 5,
      list: [{ local: 'e7.1', peer: 'b', remote: 'disk', usable: true, bufferCount: 16, pending: 0 }],
      rtt: [{ peer: 'b', srttMs: 1.5, rtoMs: 200, samples: 3 }],
    },
    forwards: {
      framesIn: 0,
      discovered: 1,
      relayed: 6,
      replies: 6,
      staleReplies: 0,
      noTarget: 1,
      malformed: 0,
      bufferFull: 0,
      tableFull: 0,
      tooLarge: 0,
      sendFailed: 0,
      expired: 0,
      list: [{ target: 'e1.0', link: 'lan', mac: null, bufferCount: 8, outstanding: 2 }],
    },
    exportSide: {
      requests: 40,
      malformed: 0,
      groupSource: 0,
      denied: 3,
      tooLarge: 0,
      readOnlyRefused: 1,
      toExports: 36,
      toForwards: 0,
      dupInProgress: 0,
      dupAnswered: 2,
      dupRerun: 0,
      dupLost: 0,
      staleEpoch: 0,
      staleFence: 0,
      staleOld: 0,
      busy: 0,
      lateReplies: 0,
      expired: 0,
      revoked: 1,
      revokedInFlight: 0,
      inFlight: 4,
    },
    peers: [peer('b', true), peer('c', false)],
    tunnel: {
      localPort: 7788,
      driver: { rxBatches: 1, rxDatagrams: 106, rxTruncated: 0, errors: 0, loadEntered: 1 },
      txData: 90,
      txKeepalive: 2,
      txInitiation: 1,
      txResponse: 0,
      txCookieReply: 1,
      txDropped: 0,
      handshakesCompleted: 1,
      handshakesFailed: 2,
      handlerErrors: 0,
      rx,
    },
    reloads: { applied: 3, refused: 1, last: '' },
  };
}

describe('GatewayMetrics', () => {
  it('reads every family from one stats snapshot', async () => {
    const s = gatewayStats();
    const m = new GatewayMetrics({ stats: () => s, enrollment: { pending: 2, pinned: 1, refused: 4 } });
    const p = parsePromText(await m.render());
    const v = (name: string, labels: Record<string, string> = {}) => promValue(p, `aoegw_${name}`, labels);

    expect(v('export_writes_total', { export: 'e1.2' })).toBe(10);
    expect(v('export_reads_total', { export: 'e1.1' })).toBe(4);
    expect(v('export_written_bytes_total', { export: 'e1.2' })).toBe(10240);
    expect(v('export_pending', { export: 'e1.2' })).toBe(2);
    expect(v('export_drops_total', { export: 'e1.1', reason: 'buffer_full' })).toBe(7);
    expect(v('export_errors_total', { export: 'e1.1', kind: 'ata' })).toBe(1);
    expect(v('export_requests_total', { export: 'e1.2', command: 'ata' })).toBe(20);
    // Initiators behind a peer are named by the peer, not its key.
    expect(v('initiator_requests_total', { export: 'e1.1', initiator: 'b/02:00:00:00:00:02' })).toBe(4);
    expect(v('initiator_requests_total', { export: 'e1.1', initiator: '02:00:00:00:00:01' })).toBe(6);
    expect(promSum(p, 'aoegw_initiator_written_bytes_total', { export: 'e1.1' })).toBe(2560);
    expect(v('target_link_ignored_total', { link: 'lan', reason: 'not_for_us' })).toBe(5);
    expect(v('target_held_replies_total', { result: 'sent' })).toBe(2);

    expect(v('blockio_pending')).toBe(3);
    expect(v('blockio_drops_total', { reason: 'pool_full' })).toBe(4);
    expect(v('blockio_ring_in_flight')).toBe(2);

    expect(v('link_frames_total', { link: 'lan', direction: 'rx' })).toBe(50);
    expect(v('link_drops_total', { link: 'lan', reason: 'kernel' })).toBe(3);
    expect(v('link_downs_total', { link: 'lan' })).toBe(1);

    // Every rx outcome is a series, zero or not; rejects are labelled by their reason.
    expect(promSum(p, 'aoegw_tunnel_rx_datagrams_total')).toBe(106);
    expect(p.samples.filter((x) => x.name === 'aoegw_tunnel_rx_datagrams_total')).toHaveLength(
      RX_NAMES.length,
    );
    expect(v('tunnel_rx_datagrams_total', { outcome: 'replay' })).toBe(3);
    expect(v('tunnel_rx_datagrams_total', { outcome: 'bad_mac1' })).toBe(2);
    expect(v('tunnel_rx_datagrams_total', { outcome: 'cookie_sent' })).toBe(1);
    expect(v('tunnel_rx_datagrams_total', { outcome: 'unknown_invite' })).toBe(0);
    expect(v('tunnel_tx_messages_total', { kind: 'cookie_reply' })).toBe(1);
    expect(v('tunnel_handshakes_total', { result: 'completed' })).toBe(1);
    expect(v('tunnel_handshakes_total', { result: 'failed' })).toBe(2);
    expect(v('tunnel_cookie_mode_entered_total')).toBe(1);

    expect(v('peer_up', { peer: 'b' })).toBe(1);
    expect(v('peer_up', { peer: 'c' })).toBe(0);
    expect(v('peer_handshake_age_seconds', { peer: 'b' })).toBe(2.5);
    // No handshake yet: no age (not a misleading 0).
    expect(v('peer_handshake_age_seconds', { peer: 'c' })).toBeUndefined();
    expect(v('peer_bytes_total', { peer: 'b', direction: 'tx' })).toBe(2000);
    expect(v('peer_records_total', { peer: 'c', direction: 'rx' })).toBe(10);
    expect(v('peer_path_mtu_bytes', { peer: 'b' })).toBe(1452);

    expect(v('import_pending')).toBe(5);
    expect(v('import_resends_total', { kind: 'timeout' })).toBe(4);
    expect(v('import_in_progress_total', {})).toBe(3);
    expect(v('import_failures_total', { kind: 'failed' })).toBe(2);
    expect(v('import_usable', { import: 'e7.1', peer: 'b', remote: 'disk' })).toBe(1);
    expect(v('import_peer_srtt_seconds', { peer: 'b' })).toBeCloseTo(0.0015);
    expect(v('export_side_in_flight')).toBe(4);
    expect(v('export_side_refused_total', { reason: 'denied' })).toBe(3);
    expect(v('export_side_revoked_total', { when: 'request' })).toBe(1);
    expect(v('forward_outstanding', { target: 'e1.0', link: 'lan' })).toBe(2);
    expect(v('forward_drops_total', { reason: 'no_target' })).toBe(1);

    expect(v('reloads_total', { result: 'applied' })).toBe(3);
    expect(v('reloads_total', { result: 'refused' })).toBe(1);
    expect(v('enrollment_invites_pending')).toBe(2);
    expect(v('enrollments_total', { result: 'refused' })).toBe(4);

    expect(p.types.get('aoegw_export_writes_total')).toBe('counter');
    expect(p.types.get('aoegw_export_pending')).toBe('gauge');
    expect(p.types.get('aoegw_export_service_seconds')).toBe('histogram');
    // Counters are named *_total, gauges are not.
    for (const [name, type] of p.types) expect(name.endsWith('_total'), name).toBe(type === 'counter');
  });

  it("service times are histograms: cumulative octave buckets summed exactly from the target's", async () => {
    const m = new GatewayMetrics({ stats: () => gatewayStats() }, { initiatorLatency: true });
    const text = await m.render();
    const p = parsePromText(text);
    const bucket = (name: string, labels: Record<string, string>) =>
      p.samples
        .filter(
          (x) =>
            x.name === `aoegw_${name}_bucket` && Object.entries(labels).every(([k, v]) => x.labels[k] === v),
        )
        .map((x) => [x.labels.le, x.value] as const);
    // e1.1: 3 requests in [512, 640) µs, 1 in [28672, 32768) µs.
    const b = bucket('export_service_seconds', { export: 'e1.1' });
    expect(b).toHaveLength(24);
    expect(b[0]).toEqual(['0.000008', 0]);
    expect(b.find(([le]) => le === '0.000512')).toEqual(['0.000512', 0]);
    expect(b.find(([le]) => le === '0.001024')).toEqual(['0.001024', 3]);
    expect(b.find(([le]) => le === '0.016384')).toEqual(['0.016384', 3]);
    expect(b.find(([le]) => le === '0.032768')).toEqual(['0.032768', 4]);
    expect(b.at(-1)).toEqual(['+Inf', 4]);
    // Cumulative: never decreasing.
    for (let i = 1; i < b.length; i++) expect(b[i]![1]).toBeGreaterThanOrEqual(b[i - 1]![1]);
    expect(promValue(p, 'aoegw_export_service_seconds_sum', { export: 'e1.1' })).toBeCloseTo(0.0315);
    expect(promValue(p, 'aoegw_export_service_seconds_count', { export: 'e1.1' })).toBe(4);
    // Per initiator, named like the other initiator series (a peer's by its name).
    const ib = bucket('initiator_service_seconds', { export: 'e1.2', initiator: 'b/02:00:00:00:00:02' });
    expect(ib.find(([le]) => le === '0.016384')).toEqual(['0.016384', 0]);
    expect(ib.at(-1)).toEqual(['+Inf', 1]);
    expect(text).toContain('# TYPE aoegw_initiator_service_seconds histogram');
  });

  it('the per-initiator histogram only when asked (metrics.initiatorLatency): its series multiply', async () => {
    const p = parsePromText(await new GatewayMetrics({ stats: () => gatewayStats() }).render());
    expect(p.samples.filter((x) => x.name.startsWith('aoegw_initiator_service_seconds'))).toEqual([]);
    expect(p.samples.some((x) => x.name === 'aoegw_export_service_seconds_count')).toBe(true);
  });

  it('reads the counters at scrape time: a second scrape sees new values, gone series disappear', async () => {
    let s = gatewayStats();
    const m = new GatewayMetrics({ stats: () => s });
    await m.render();
    s = gatewayStats();
    s.peers = [peer('b', true)];
    s.tunnel!.handshakesCompleted = 5;
    delete s.target!.engine.exports['e1.2'];
    s.imports = null;
    const p = parsePromText(await m.render());
    expect(promValue(p, 'aoegw_tunnel_handshakes_total', { result: 'completed' })).toBe(5);
    expect(promValue(p, 'aoegw_peer_up', { peer: 'c' })).toBeUndefined();
    expect(promValue(p, 'aoegw_export_writes_total', { export: 'e1.2' })).toBeUndefined();
    expect(promValue(p, 'aoegw_export_service_seconds_count', { export: 'e1.2' })).toBeUndefined();
    expect(promValue(p, 'aoegw_export_service_seconds_count', { export: 'e1.1' })).toBe(4);
    expect(promValue(p, 'aoegw_import_pending')).toBeUndefined();
    // No enrollment desk: no enrollment series.
    expect(promValue(p, 'aoegw_enrollment_invites_pending')).toBeUndefined();
  });

  it('a gateway with nothing but a link: only what exists is exported', async () => {
    const s = gatewayStats();
    const bare: GatewayStats = { ...s, target: null, imports: null, forwards: null, peers: [], tunnel: null };
    const p = parsePromText(await new GatewayMetrics({ stats: () => bare }).render());
    expect(promValue(p, 'aoegw_link_frames_total', { link: 'lan', direction: 'tx' })).toBe(40);
    expect(p.samples.filter((x) => x.name.startsWith('aoegw_tunnel_'))).toEqual([]);
    expect(p.samples.filter((x) => x.name.startsWith('aoegw_export_writes'))).toEqual([]);
  });
});

describe('MetricsServer', () => {
  let server: MetricsServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  function get(
    port: number,
    path: string,
    method = 'GET',
  ): Promise<{ status: number; type: string; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }),
        );
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('serves the text format on /metrics, 404 elsewhere, 405 for other methods', async () => {
    const s = gatewayStats();
    server = await MetricsServer.open({
      address: '127.0.0.1',
      port: 0,
      metrics: new GatewayMetrics({ stats: () => s }),
    });
    expect(server.port).toBeGreaterThan(0);
    const ok = await get(server.port, '/metrics');
    expect(ok.status).toBe(200);
    expect(ok.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(promValue(parsePromText(ok.body), 'aoegw_reloads_total', { result: 'applied' })).toBe(3);
    expect((await get(server.port, '/metrics?x=1')).status).toBe(200);
    expect((await get(server.port, '/')).status).toBe(404);
    expect((await get(server.port, '/metrics/x')).status).toBe(404);
    expect((await get(server.port, '/metrics', 'POST')).status).toBe(405);
  });

  it('a port in use is ERR_BIND naming the address', async () => {
    const s = gatewayStats();
    const metrics = new GatewayMetrics({ stats: () => s });
    server = await MetricsServer.open({ address: '127.0.0.1', port: 0, metrics });
    await expect(
      MetricsServer.open({ address: '127.0.0.1', port: server.port, metrics }),
    ).rejects.toMatchObject({
      code: 'ERR_BIND',
      message: expect.stringContaining(`127.0.0.1:${server.port}`),
    });
  });

  it('a scrape that fails is a 500, and the next one is served', async () => {
    let fail = true;
    const s = gatewayStats();
    const lines: string[] = [];
    server = await MetricsServer.open({
      address: '127.0.0.1',
      port: 0,
      log: lineLog((l) => lines.push(l)),
      metrics: new GatewayMetrics({
        stats: () => {
          if (fail) throw new Error('boom');
          return s;
        },
      }),
    });
    expect((await get(server.port, '/metrics')).status).toBe(500);
    expect(lines).toEqual(['metrics: scrape failed: boom']);
    fail = false;
    expect((await get(server.port, '/metrics')).status).toBe(200);
  });
});

describe('isLoopback', () => {
  it('127.0.0.0/8 and ::1 only', () => {
    expect(isLoopback('127.0.0.1')).toBe(true);
    expect(isLoopback('127.1.2.3')).toBe(true);
    expect(isLoopback('::1')).toBe(true);
    expect(isLoopback('0.0.0.0')).toBe(false);
    expect(isLoopback('::')).toBe(false);
    expect(isLoopback('10.0.0.1')).toBe(false);
  });
});

describe('parsePromText (support/prom-text.ts)', () => {
  it('reads labels with escapes, special values, and types', () => {
    const p = parsePromText(
      [
        '# HELP x_total a counter',
        '# TYPE x_total counter',
        'x_total{a="q\\"uo\\\\te",b="n\\nl"} 3',
        'y +Inf',
        'z{} -2.5e3 1700000000',
      ].join('\n'),
    );
    expect(p.samples).toEqual([
      { name: 'x_total', labels: { a: 'q"uo\\te', b: 'n\nl' }, value: 3 },
      { name: 'y', labels: {}, value: Number.POSITIVE_INFINITY },
      { name: 'z', labels: {}, value: -2500 },
    ]);
    expect(p.types.get('x_total')).toBe('counter');
    expect(() => parsePromText('x{a=1} 2')).toThrow(/bad label/);
    expect(() => parsePromText('x abc')).toThrow(/bad value/);
  });
});

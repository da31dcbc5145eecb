/**
 * `aoegw top`'s screen from two samples: rates over the daemon's clock, sort orders, unknown rates
 * shown as '-', and an 80×24 screen that never overflows however many rows there are.
 */
import { describe, expect, it } from 'vitest';
import { renderStatus } from '../../../src/cli/cmd-status.js';
import { renderTop, type Sample, topRows } from '../../../src/cli/top-view.js';
import { type ExportView, latencyView, type PrincipalView } from '../../../src/control/status-view.js';

type Buckets = [number, number][];
const latency = (buckets: Buckets) =>
  latencyView({ count: buckets.reduce((a, [, n]) => a + n, 0), sumUs: 0, buckets });

const STATUS = {
  ok: true,
  name: 'site-b',
  pid: 42,
  version: '0.1.0',
  uptimeMs: 3_723_000,
  links: { up: 2, down: 0 },
  peers: { total: 1, up: 1 },
  exports: 2,
  imports: { total: 0, usable: 0 },
  forwards: 0,
  invitesPending: 0,
};

function ini(
  principal: string,
  requests: number,
  bytesRead: number,
  bytesWritten: number,
  buckets: Buckets = [],
): PrincipalView {
  const slash = principal.indexOf('/');
  return {
    principal,
    peer: slash < 0 ? '' : principal.slice(0, slash),
    mac: principal.slice(slash + 1),
    requests,
    bytesRead,
    bytesWritten,
    idleMs: 0,
    latency: latency(buckets),
  };
}

function exp(
  target: string,
  reads: number,
  writes: number,
  bytes: number,
  errors: number,
  initiators: PrincipalView[],
  buckets: Buckets = [],
): ExportView {
  return {
    target,
    readOnly: false,
    store: 'memory',
    reads,
    writes,
    bytesRead: bytes,
    bytesWritten: 0,
    errors,
    drops: 0,
    errorsBy: { ata: errors, aoe: 0, store: 0 },
    dropsBy: { allowList: 0, masked: 0, bufferFull: 0, broadcastAta: 0, malformed: 0, stateRate: 0 },
    pending: 3,
    requests: { ata: reads + writes, queryConfig: 0, macMask: 0, reserve: 0, other: 0 },
    ata: { read: reads, write: writes, identify: 0, flush: 0, checkPower: 0, other: 0 },
    latency: latency(buckets),
    initiators,
  };
}

const t0: Sample = {
  sampledAtMs: 10_000,
  status: STATUS,
  exports: [
    exp(
      'e1.0',
      100,
      50,
      1_000_000,
      0,
      [ini('site-a/52:54:00:00:00:01', 150, 1_000_000, 0, [[112, 150]])],
      [[112, 150]],
    ),
    exp('e1.1', 0, 0, 0, 7, []),
  ],
};
// Two seconds later (by the daemon's clock): e1.0 did 2000 reads + 400 writes, 8 MB read; 40 of
// those 2400 requests took about a millisecond (1.7 %: the p99 of the interval is 1.024 ms).
const t1: Sample = {
  sampledAtMs: 12_000,
  status: STATUS,
  exports: [
    exp(
      'e1.0',
      2100,
      450,
      9_000_000,
      0,
      [
        ini('site-a/52:54:00:00:00:01', 1550, 5_000_000, 0, [[112, 1550]]),
        ini('52:54:00:00:00:09', 1000, 4_000_000, 0, [
          [112, 960],
          [1024, 40],
        ]),
      ],
      [
        [112, 2510],
        [1024, 40],
      ],
    ),
    exp('e1.1', 0, 0, 0, 9, []),
  ],
};

describe('top', () => {
  it('rates are differences over the daemon clock; unknown ones are NaN', () => {
    const rows = topRows(t0, t1, 'iops');
    expect(rows.map((r) => r.name)).toEqual([
      'e1.0 rw',
      'site-a/52:54:00:00:00:01',
      '52:54:00:00:00:09',
      'e1.1 rw',
    ]);
    expect(rows[0]).toMatchObject({
      iops: 1200,
      readsPerS: 1000,
      writesPerS: 200,
      readMBps: 4,
      pending: 3,
      p99Ms: 1.024,
    });
    expect(rows[1]).toMatchObject({ iops: 700, readMBps: 2, p99Ms: 0.112 });
    // New since the last sample: no rate yet (its counters cover the daemon's whole life).
    expect(rows[2]!.iops).toBeNaN();
    expect(rows[2]!.p99Ms).toBeNaN();
    // No request in the interval: no p99.
    expect(rows[3]!.p99Ms).toBeNaN();
    expect(topRows(null, t1, 'iops')[0]!.iops).toBeNaN();
  });

  it('sorts by errors and by name', () => {
    expect(topRows(t0, t1, 'errors')[0]!.name).toBe('e1.1 rw');
    expect(topRows(t0, t1, 'name').map((r) => r.name)[0]).toBe('e1.0 rw');
    expect(topRows(t0, t1, 'mbps')[0]!.name).toBe('e1.0 rw');
    expect(topRows(t0, t1, 'p99').map((r) => r.name)).toEqual([
      'e1.0 rw',
      'site-a/52:54:00:00:00:01',
      '52:54:00:00:00:09',
      'e1.1 rw',
    ]);
  });

  it('the p99 is of the interval: a histogram whose counts went back (export re-created) has none', () => {
    const restarted: Sample = {
      ...t1,
      exports: [exp('e1.0', 10, 0, 0, 0, [], [[112, 10]])],
    };
    expect(topRows(t1, restarted, 'iops')[0]!.p99Ms).toBeNaN();
  });

  it('fits 80×24 with many rows and says how many are not shown', () => {
    const many: Sample = {
      ...t1,
      exports: Array.from({ length: 30 }, (_, i) =>
        exp(`e${i}.0`, i, 0, 0, 0, [ini(`a-very-long-peer-name-indeed/52:54:00:00:00:${i}`, 1, 0, 0)]),
      ),
    };
    const lines = renderTop(null, many, 'name', 80, 24);
    expect(lines).toHaveLength(24);
    expect(lines.every((l) => l.length <= 80)).toBe(true);
    expect(lines.at(-1)).toMatch(/^… \d+ more rows$/);
    const screen = renderTop(t0, t1, 'iops', 80, 24);
    expect(screen[0]).toContain('site-b  pid 42');
    expect(screen[2]).toMatch(/RD MB\/s WR MB\/s P99 ms PEND ERRORS$/);
    expect(screen[3]).toMatch(/^e1\.0 rw\s+1200\s+1000\s+200\s+4\.00\s+0\.00\s+1\.024\s+3\s+0$/);
    // The MAC is kept whole; the peer name gives way.
    expect(screen[4]).toMatch(/^ {2}s\S*…\/52:54:00:00:00:01\s+700\s+-\s+-\s+2\.00\s+0\.00\s+0\.112/);
    expect(renderTop(t0, t1, 'iops', 100, 24)[4]).toMatch(/^ {2}site-a\/52:54:00:00:00:01\s+700/);
  });

  it('status renders exports, initiators and peers as tables', () => {
    const text = renderStatus({
      status: STATUS,
      exports: { exports: t1.exports },
      peers: {
        peers: [
          {
            name: 'site-a',
            session: true,
            handshakeAgeMs: 12_000,
            endpoint: '10.0.0.1:7788',
            rxBytes: 2048,
            txBytes: 4096,
            rxRecords: 10,
            txRecords: 20,
          },
        ],
        tunnel: { rx: { data: 10, replay: 2, bad_auth: 0 } },
      },
      imports: { imports: null },
      forwards: { forwards: null },
      links: { links: [] },
    });
    expect(text).toContain('site-b  pid 42  v0.1.0  up 1h02m');
    expect(text).toMatch(/e1\.0\s+rw\s+2100\s+450/);
    expect(text).toMatch(/ {2}site-a\/52:54:00:00:00:01\s+1550 req/);
    // Since start: 40 of 2550 requests took about a millisecond (1.6 %).
    expect(text).toMatch(/EXPORT\s+MODE.*PENDING\s+P50\s+P99\s+MAX/);
    expect(text).toMatch(/e1\.0\s+rw\s+2100\s+450.*\s3\s+112µs\s+1\.02ms\s+1\.02ms/);
    expect(text).toMatch(/ {2}52:54:00:00:00:09\s+1000 req.*idle 0s\s+112µs\s+1\.02ms\s+1\.02ms/);
    expect(text).toMatch(/e1\.1\s+rw.*\s-\s+-\s+-$/m);
    expect(text).toMatch(/site-a\s+up\s+12s ago\s+10\.0\.0\.1:7788\s+2\.0 KiB\s+4\.0 KiB\s+10\s+20/);
    expect(text).toContain('tunnel rejects: replay 2');
  });
});

import { describe, expect, it } from 'vitest';
import {
  type BadInputStats,
  badInputCounters,
  badInputWarnings,
  startBadInputReporter,
} from '../../../src/control/bad-input.js';
import { lineLog } from '../../../src/log.js';
import { RX_NAMES, Rx } from '../../../src/tunnel/endpoint.js';

function stats(
  o: { malformed?: number; badMac1?: number; truncated?: number; control?: number } = {},
): BadInputStats {
  const rx = RX_NAMES.map(() => 0);
  rx[Rx.DATA] = 1000; // accepted datagrams are no bad input
  rx[Rx.BAD_MAC1] = o.badMac1 ?? 0;
  return {
    links: { lan: { rxTruncated: o.truncated ?? 0 } },
    target: { engine: { links: { '0': { name: 'lan', malformed: o.malformed ?? 0 } } } },
    forwards: null,
    exportSide: { malformed: 0, denied: 0 },
    peers: [{ name: 'b', records: { controlMalformed: o.control ?? 0 } }],
    tunnel: { rx },
  };
}

const warnings = (a: BadInputStats, b: BadInputStats) =>
  badInputWarnings(badInputCounters(a), badInputCounters(b), 10_000);

describe('bad input warnings', () => {
  it('nothing grew: nothing to say', () => {
    expect(warnings(stats({ malformed: 5 }), stats({ malformed: 5 }))).toEqual([]);
  });

  it('one warning per reason that grew, saying by how much, whatever the number of frames', () => {
    const w = warnings(stats({ malformed: 3 }), stats({ malformed: 40, badMac1: 12, control: 1 }));
    expect(w).toEqual([
      {
        msg: 'dropped 37 malformed AoE frames on link lan in the last 10 s',
        fields: { reason: 'malformed', link: 'lan', count: 37 },
      },
      {
        msg: 'dropped 1 malformed control record from peer b in the last 10 s',
        fields: { reason: 'malformed control record', peer: 'b', count: 1 },
      },
      {
        msg: 'rejected 12 tunnel datagrams: bad mac1 in the last 10 s',
        fields: { reason: 'bad_mac1', count: 12 },
      },
    ]);
    const flood = warnings(stats(), stats({ malformed: 1_000_000 }));
    expect(flood).toHaveLength(1);
    expect(flood[0]!.fields).toMatchObject({ count: 1_000_000 });
  });

  it('a counter that went down was re-created: all of it is new; one that appeared counts from zero', () => {
    expect(warnings(stats({ truncated: 9 }), stats({ truncated: 2 }))[0]).toMatchObject({
      msg: 'dropped 2 frames longer than the MTU on link lan in the last 10 s',
    });
    const before = { ...stats(), peers: [] };
    expect(warnings(before, stats({ control: 4 })).map((x) => x.fields)).toEqual([
      { reason: 'malformed control record', peer: 'b', count: 4 },
    ]);
  });

  it('every tunnel refusal is a reason; accepted datagrams are not', () => {
    const keys = badInputCounters(stats()).map((c) => c.key);
    expect(keys).toContain('tunnel/bad_mac1');
    expect(keys).toContain('tunnel/unknown_invite');
    expect(keys).not.toContain('tunnel/data');
    expect(keys).not.toContain('tunnel/cookie_sent');
  });

  it('the reporter logs each interval what grew in it, at warn, and stops', async () => {
    let s = stats();
    const lines: { line: string; level: string }[] = [];
    const r = startBadInputReporter({
      stats: () => s,
      log: lineLog((line, level) => lines.push({ line, level })),
      intervalMs: 20,
    });
    s = stats({ malformed: 5 });
    await new Promise((res) => setTimeout(res, 70));
    r.stop();
    expect(lines).toEqual([
      { line: 'dropped 5 malformed AoE frames on link lan in the last 0 s', level: 'warn' },
    ]);
  });
});

/**
 * Engine defences against hostile senders (issue 7): group-bit sources, the E flag, amplification
 * by broadcast requests, state-change floods, held replies for state changes, and bounded
 * per-initiator counters.
 */
import { describe, expect, it } from 'vitest';
import { decodeFrame, type QueryConfigMessage } from '../../../src/aoe/index.js';
import { InitiatorTable } from '../../../src/target/counters.js';
import { MemoryStore } from '../../../src/target/memory-store.js';
import { SourceRateLimiter } from '../../../src/target/rate-limit.js';
import { INI_MAC, mask, qc, read, reserve, setup } from './helpers.js';

const WILD = { dst: 'ff:ff:ff:ff:ff:ff', major: 0xffff, minor: 0xff };

function spoofed(i: number): string {
  return `52:54:01:${((i >> 16) & 0xff).toString(16).padStart(2, '0')}:${((i >> 8) & 0xff)
    .toString(16)
    .padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
}

/** An engine with `n` exports e1.0 .. e1.(n-1). */
function many(n: number, engine = {}) {
  const s = setup({ engine, exp: { shelf: 1, slot: 0 } });
  for (let i = 1; i < n; i++) s.engine.addExport({ shelf: 1, slot: i, store: new MemoryStore(64) });
  return s;
}

function link(s: ReturnType<typeof setup>) {
  return Object.values(s.engine.stats().links)[0]!;
}

describe('group-bit source MACs', () => {
  it('are dropped and counted, for every command, unicast or broadcast', () => {
    const s = many(4);
    for (const src of ['ff:ff:ff:ff:ff:ff', '01:00:5e:00:00:01', '33:33:00:00:00:01', '03:00:00:00:00:00']) {
      expect(s.run([qc({ src, ...WILD }), qc({ src }), read(0, 1, { src }), mask({ mcmd: 0, src })])).toEqual(
        [],
      );
    }
    expect(link(s).groupSource).toBe(16);
    // A locally administered unicast source (bit 1, not bit 0) is served.
    expect(s.run([qc({ src: '02:00:00:00:00:01' })])).toHaveLength(1);
  });
});

describe('broadcast requests (amplification)', () => {
  it('one discovery sees every export; a flood from one MAC is bounded per second', () => {
    const s = many(64);
    const first = s.run([qc(WILD)], { now: 0 }) as QueryConfigMessage[];
    expect(first.map((r) => r.minor).sort((a, b) => a - b)).toEqual(Array.from({ length: 64 }, (_, i) => i));
    // 1000 broadcast queries in one second from the same MAC: the burst (8) plus one a second.
    let answers = 0;
    for (let i = 0; i < 1000; i++) answers += s.run([qc(WILD)], { now: i }).length;
    expect(answers).toBe(7 * 64); // the first query above took one of the 8
    expect(link(s).broadcastRateLimited).toBe(1000 - 7);
    // Linux's periodic discovery (every 60 s) always gets every answer.
    for (let t = 60_000; t <= 600_000; t += 60_000) expect(s.run([qc(WILD)], { now: t })).toHaveLength(64);
    // Directed requests are not limited: they draw one answer each.
    for (let i = 0; i < 100; i++)
      expect(s.run([qc({ major: 1, minor: 5 })], { now: 700_000 })).toHaveLength(1);
  });

  it('a flood from many spoofed MACs is bounded by the global bucket', () => {
    const s = many(16);
    let answers = 0;
    for (let i = 0; i < 5000; i++)
      answers += s.run([qc({ ...WILD, src: spoofed(i) })], { now: i / 10 }).length;
    // 500 ms: the global burst (128) plus 64/s × 0.5 s, one answer per export each.
    expect(answers).toBeLessThanOrEqual((128 + 33) * 16);
    expect(answers).toBeGreaterThanOrEqual(128 * 16);
    // Another source still gets through once the global bucket refilled.
    expect(s.run([qc(WILD)], { now: 10_000 })).toHaveLength(16);
  });

  it('can be turned off (null)', () => {
    const s = many(2, { broadcastLimit: null });
    let answers = 0;
    for (let i = 0; i < 100; i++) answers += s.run([qc(WILD)]).length;
    expect(answers).toBe(200);
  });
});

describe('state-change rate limit', () => {
  it('drops changes over the per-source limit (unanswered, counted), not reads or no-op sets', () => {
    const s = setup();
    let acked = 0;
    for (let i = 0; i < 200; i++) acked += s.run([qc({ ccmd: 4, config: `c${i}` })], { now: i }).length;
    // 200 ms: burst 20 + 10/s × 0.2 s.
    expect(acked).toBeGreaterThanOrEqual(20);
    expect(acked).toBeLessThanOrEqual(23);
    expect(s.changes).toHaveLength(acked);
    const st = s.engine.stats().exports['e1.0']!;
    expect(st.drops.stateRate).toBe(200 - acked);
    // Reads and sets to the current value are answered (they change nothing).
    const cur = s.engine.exportState('e1.0')!.config.toString();
    expect(s.run([qc(), qc({ ccmd: 4, config: cur }), reserve({ rcmd: 0 })], { now: 200 })).toHaveLength(3);
    // Refilled a second later.
    expect(s.run([mask({ mcmd: 1, directives: [{ dcmd: 1, mac: INI_MAC }] })], { now: 2000 })).toHaveLength(
      1,
    );
  });

  it('a broadcast set that changes many exports takes one token', () => {
    const s = many(30);
    const r = s.run([qc({ ...WILD, ccmd: 4, config: 'all' })]);
    expect(r).toHaveLength(30);
    expect(s.changes).toHaveLength(30);
  });
});

describe('held replies', () => {
  it('the reply to a state change goes to holdReply (whole frame), others to the sink', () => {
    const held: { link: number; frame: Buffer }[] = [];
    const s = setup({ engine: { holdReply: (link, frame) => held.push({ link, frame }) } });
    const out = s.run([
      qc(),
      qc({ ccmd: 4, config: 'new', tag: 77 }),
      read(0, 1),
      qc({ ccmd: 4, config: 'new' }),
    ]);
    // The read, the Query Config read, and the set that changed nothing go out at once.
    expect(out).toHaveLength(3);
    expect(held).toHaveLength(1);
    expect(held[0]!.link).toBe(1);
    const d = decodeFrame(held[0]!.frame);
    expect(d.ok && d.value).toMatchObject({ response: true, tag: 77, config: Buffer.from('new') });
    expect(held[0]!.frame.length).toBeGreaterThanOrEqual(60);
    expect(link(s).framesHeld).toBe(1);
  });
});

describe('per-initiator counters', () => {
  it('stay bounded under a spoofed-MAC flood: top entries, idle ones aged out, the rest in other', () => {
    const s = setup({ exp: { maxInitiators: 8, initiatorIdleMs: 1000 } });
    for (let i = 0; i < 3; i++) s.run([read(0, 1)], { now: 0 });
    for (let i = 0; i < 5000; i++) s.run([read(0, 1, { src: spoofed(i) })], { now: 10 });
    let ini = s.engine.stats().exports['e1.0']!.initiators;
    expect(Object.keys(ini)).toHaveLength(9);
    expect(Object.keys(ini)[0]).toBe(INI_MAC); // busiest first
    expect(ini.other!.requests).toBe(5000 - 7);
    // Later, idle entries make room for new initiators.
    s.run([read(0, 1, { src: '52:54:00:00:00:99' })], { now: 5000 });
    ini = s.engine.stats().exports['e1.0']!.initiators;
    expect(ini['52:54:00:00:00:99']!.requests).toBe(1);
    expect(Object.keys(ini)).toHaveLength(9);
    const total = Object.values(ini).reduce((n, c) => n + c.requests, 0);
    expect(total).toBe(3 + 5000 + 1);
    expect(JSON.stringify(ini).length).toBeLessThan(2000);
  });

  it('InitiatorTable reuses its preallocated entries', () => {
    const t = new InitiatorTable(2, 10);
    const a = t.get(1, 1, 0);
    const b = t.get(1, 2, 0);
    expect(t.get(1, 3, 5)).toBe(t.other);
    a.lastSeen = 0;
    b.lastSeen = 8;
    expect(t.get(1, 3, 20)).toBe(a); // a idle 20 ms > 10: reused
    expect(t.agedOut).toBe(1);
  });
});

describe('SourceRateLimiter', () => {
  it('refills per source, bounds the table, and never exceeds the global bucket', () => {
    const l = new SourceRateLimiter({ rate: 2, burst: 3, globalRate: 1000, globalBurst: 1000, sources: 16 });
    expect(l.capacity).toBe(16);
    let ok = 0;
    for (let i = 0; i < 10; i++) if (l.take(1, 2, 0)) ok++;
    expect(ok).toBe(3);
    expect(l.take(1, 2, 499)).toBe(false);
    expect(l.take(1, 2, 500)).toBe(true);
    const g = new SourceRateLimiter({ rate: 100, burst: 100, globalRate: 10, globalBurst: 5 });
    ok = 0;
    for (let i = 0; i < 100; i++) if (g.take(i, i, 0)) ok++;
    expect(ok).toBe(5);
    expect(g.refusedGlobal).toBe(95);
  });
});

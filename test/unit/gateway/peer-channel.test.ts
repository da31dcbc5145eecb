/**
 * PeerChannel between two gateways over an in-memory "tunnel" whose path silently drops datagrams
 * above a size: records larger than a datagram cross as fragments, and a configured MTU larger
 * than the path is detected by probes and lowered, after which large records cross again.
 */
import { describe, expect, it } from 'vitest';
import { PeerChannel } from '../../../src/gateway/peer-channel.js';
import { datagramBytesForRecord } from '../../../src/gateway/probe-records.js';
import { lineLog } from '../../../src/log.js';

interface Got {
  type: number;
  bytes: Buffer;
}

function pair(o: { mtu: number; pathMtu: number }) {
  const clock = { now: 0 };
  const path = { limit: o.pathMtu, dropped: 0, datagrams: 0 };
  const got: Got[] = [];
  const logs: string[] = [];
  const sides: PeerChannel[] = [];
  const heard = [Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY];
  const mtus = [o.mtu, o.mtu];
  /** One record from side `from`, as one datagram of its own size (records are never packed here). */
  const carry = (from: number, type: number, buf: Uint8Array, off: number, len: number, alone: boolean) => {
    const size = datagramBytesForRecord(len);
    if (!alone && size > mtus[from]!) throw new Error(`record of ${len} bytes over the packing limit`);
    path.datagrams++;
    if (size > path.limit) {
      path.dropped++;
      return true; // silently lost on the path
    }
    const to = 1 - from;
    heard[to] = clock.now;
    sides[to]!.receive(type, Buffer.from(buf.subarray(off, off + len)), 0, len, clock.now);
    return true;
  };
  for (const k of [0, 1]) {
    sides.push(
      new PeerChannel({
        name: `p${k}`,
        log: lineLog((l) => logs.push(l)),
        maxRecordBytes: 65535,
        now: 0,
        deliver: (type, buf, off, len) => {
          if (k === 1) got.push({ type, bytes: Buffer.from(buf.subarray(off, off + len)) });
        },
        tunnel: {
          mtu: o.mtu,
          send: (t, b, off, len) => carry(k, t, b, off, len, false),
          sendAlone: (t, b, off, len) => carry(k, t, b, off, len, true),
          setMtu: (m) => {
            mtus[k] = m;
          },
          lastHeardAt: () => heard[k]!,
        },
      }),
    );
  }
  return { a: sides[0]!, b: sides[1]!, clock, path, got, logs, mtus };
}

const big = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff));

describe('PeerChannel', () => {
  it('sends a record that fits whole, and a larger one as fragments reassembled on the other side', () => {
    const s = pair({ mtu: 1452, pathMtu: 1500 });
    s.a.send(3, big(1000), 0, 1000);
    s.a.send(3, big(8900), 0, 8900);
    expect(s.got.map((g) => g.bytes.length)).toEqual([1000, 8900]);
    expect(s.got[1]!.bytes.equals(big(8900))).toBe(true);
    expect(s.a.recordsWhole).toBe(1);
    expect(s.a.recordsFragmented).toBe(1);
    expect(s.a.fragmenter.counters.fragmentsOut).toBe(7); // 8900 / (1417 - 9) → 7 fragments
    expect(s.b.reassembler.counters.messagesReassembled).toBe(1);
  });

  it('detects a path smaller than the configured MTU, lowers the size, logs it, and large records cross again', () => {
    const s = pair({ mtu: 8952, pathMtu: 1500 });
    // Before detection a fragment of ~8.9 KB is lost on the path: the record never arrives.
    s.a.send(3, big(20_000), 0, 20_000);
    expect(s.got).toEqual([]);
    expect(s.path.dropped).toBeGreaterThan(0);
    // Probes (and the peer's acks) run on ticks; losses are judged while the peer is heard.
    // It drops to the floor known to work (1280), then searches up to the largest size that arrives.
    for (let t = 0; t < 120_000 && (s.a.pathMtu.current > 1500 || s.a.pathMtu.isSearching); t += 100) {
      s.clock.now = t;
      s.a.tick(t);
      s.b.tick(t);
    }
    expect(s.a.pathMtu.current).toBeLessThanOrEqual(1500);
    expect(s.a.pathMtu.current).toBeGreaterThanOrEqual(1500 - 16);
    expect(s.mtus[0]).toBe(s.a.pathMtu.current);
    expect(s.logs.some((l) => /p0: path MTU lowered from 8952/.test(l))).toBe(true);
    expect(s.a.pathMtu.counters.lowered).toBeGreaterThan(0);
    s.a.send(3, big(20_000), 0, 20_000);
    expect(s.got.map((g) => g.bytes.length)).toEqual([20_000]);
    expect(s.got[0]!.bytes.equals(big(20_000))).toBe(true);
  });

  it('answers every probe with an ack and counts it', () => {
    const s = pair({ mtu: 1452, pathMtu: 9000 });
    for (let t = 0; t < 5000; t += 100) {
      s.clock.now = t;
      s.a.tick(t);
    }
    expect(s.b.probesAnswered).toBeGreaterThan(0);
    expect(s.a.pathMtu.counters.probesAcked).toBeGreaterThan(0);
    expect(s.a.pathMtu.current).toBe(1452);
    // The acks came back whole: each one counted, none malformed.
    expect(s.a.probeAcksIn).toBe(s.b.probesAnswered);
    expect(s.a.probesMalformed).toBe(0);
  });

  it('counts every PROBE and PROBE_ACK it receives: answered, unanswered, acks in, or too short', () => {
    let refuse = false;
    const sent: number[] = [];
    const c = new PeerChannel({
      name: 'p',
      maxRecordBytes: 65535,
      now: 0,
      deliver: () => {
        throw new Error('probes are not delivered');
      },
      tunnel: {
        mtu: 1452,
        send: (type) => {
          if (refuse) return false;
          sent.push(type);
          return true;
        },
        sendAlone: () => true,
        setMtu: () => {},
        lastHeardAt: () => 0,
      },
    });
    const probe = (n: number) => c.receive(6, Buffer.alloc(n, 1), 0, n, 0);
    const ack = (n: number) => c.receive(7, Buffer.alloc(n, 1), 0, n, 0);
    for (const n of [0, 3, 4, 1417]) probe(n);
    refuse = true;
    probe(4);
    for (const n of [0, 5, 6, 100]) ack(n);
    expect(sent).toEqual([7, 7]);
    expect({
      answered: c.probesAnswered,
      unanswered: c.probesUnanswered,
      acksIn: c.probeAcksIn,
      malformed: c.probesMalformed,
    }).toEqual({ answered: 2, unanswered: 1, acksIn: 2, malformed: 4 });
    // An ack of no probe of ours is read, counted and ignored by the path MTU state.
    expect(c.pathMtu.counters.acksUnknown).toBe(2);
    expect(c.stats().probes).toMatchObject({ answered: 2, unanswered: 1, acksIn: 2, malformed: 4 });
  });

  it('a new session drops partial messages of the old one', () => {
    const s = pair({ mtu: 1452, pathMtu: 1500 });
    let n = 0;
    // Let only the first fragment through, then start a new session on the receiver.
    s.path.limit = 1500;
    const orig = s.b.receive.bind(s.b);
    s.b.receive = (type, buf, off, len, now) => {
      if (n++ === 0) orig(type, buf, off, len, now);
    };
    s.a.send(3, big(5000), 0, 5000);
    expect(s.b.reassembler.messagesHeld).toBe(1);
    expect(s.b.stats().reassembler).toMatchObject({ fragmentsIn: 1, messagesHeld: 1, partsHeld: 1 });
    s.b.sessionUp(0);
    expect(s.b.reassembler.messagesHeld).toBe(0);
    expect(s.b.stats().reassembler).toMatchObject({ fragmentsIn: 1, partsReset: 1, partsHeld: 0 });
  });
});

/**
 * The fault relay's command line and stdin/stdout protocol: what the launcher writes, the relay
 * reads back the same; bad input is refused with a reason that names it.
 */
import { describe, expect, it } from 'vitest';
import {
  directionSeed,
  faultFlags,
  parseControl,
  parseEndpoint,
  parseReadyLine,
  parseRelayArgs,
  readyLine,
} from '../../../support/fault-relay-protocol.js';

const sides = ['--a-side', '10.91.1.1:7790', '--a-peer', '10.91.1.2:7788'];
const bSides = ['--b-side', '10.91.2.1:7790', '--b-peer', '10.91.2.2:7788'];

describe('fault relay command line', () => {
  it('reads endpoints, faults for both directions, seed and batch', () => {
    const a = parseRelayArgs([
      ...sides,
      ...bSides,
      ...['--drop', '5', '--dup', '5', '--reorder', '10', '--delay', '20', '--jitter', '10'],
      ...['--max-size', '1400', '--seed', '7', '--batch', '32'],
    ]);
    expect(a).toEqual({
      aSide: { address: '10.91.1.1', port: 7790 },
      aPeer: { address: '10.91.1.2', port: 7788 },
      bSide: { address: '10.91.2.1', port: 7790 },
      bPeer: { address: '10.91.2.2', port: 7788 },
      faults: {
        dropPercent: 5,
        duplicatePercent: 5,
        reorderPercent: 10,
        delayMs: 20,
        jitterMs: 10,
        maxSizeBytes: 1400,
      },
      seed: 7,
      batch: 32,
    });
    expect(parseRelayArgs([...sides, ...bSides])).toMatchObject({ faults: {}, seed: 1, batch: 64 });
  });

  it('gives back the faults the launcher turned into flags', () => {
    const faults = {
      dropPercent: 1.5,
      duplicatePercent: 2,
      reorderPercent: 3,
      reorderAfter: 4,
      reorderDelayMs: 5,
      delayMs: 6,
      jitterMs: 7,
      maxSizeBytes: 1372,
    };
    expect(parseRelayArgs([...sides, ...bSides, ...faultFlags(faults)]).faults).toEqual(faults);
  });

  it('refuses what it cannot use, saying which flag', () => {
    expect(() => parseRelayArgs(bSides)).toThrow(/--a-side is required/);
    expect(() => parseRelayArgs([...sides, ...bSides, '--drop', 'x'])).toThrow(/--drop x: not a number/);
    expect(() => parseRelayArgs([...sides, ...bSides, '--drop', '101'])).toThrow(/dropPercent = 101/);
    expect(() => parseRelayArgs([...sides, ...bSides, '--seed', '1.5'])).toThrow(/--seed 1.5/);
    expect(() => parseRelayArgs([...sides, ...bSides, '--batch', '0'])).toThrow(/--batch 0/);
    expect(() => parseRelayArgs([...sides, ...bSides, '--loss', '1'])).toThrow(/loss/);
    expect(() => parseRelayArgs(['--a-side', 'host:1', '--a-peer', '1.2.3.4:1', ...bSides])).toThrow(
      /--a-side 'host:1'/,
    );
  });

  it('parses and formats IPv4 and IPv6 endpoints', () => {
    expect(parseEndpoint('[fd00::1]:7788')).toEqual({ address: 'fd00::1', port: 7788 });
    expect(() => parseEndpoint('fd00::1:7788')).toThrow(/expected IPv4:PORT/);
    expect(() => parseEndpoint('10.0.0.1:65536')).toThrow(/expected/);
    const line = readyLine({ address: '10.0.0.1', port: 1 }, { address: 'fd00::2', port: 2 });
    expect(line).toBe('relay ready a=10.0.0.1:1 b=[fd00::2]:2');
    expect(parseReadyLine(line)).toEqual({
      aSide: { address: '10.0.0.1', port: 1 },
      bSide: { address: 'fd00::2', port: 2 },
    });
    expect(parseReadyLine('{"ok":"set"}')).toBeUndefined();
  });

  it('seeds the two directions differently', () => {
    expect(directionSeed(1, 'a2b')).not.toBe(directionSeed(1, 'b2a'));
  });
});

describe('fault relay control lines', () => {
  it('reads set, blackout and stats', () => {
    expect(parseControl('{"set":{"both":{"dropPercent":5},"b2a":{"delayMs":3}}}')).toEqual({
      set: { both: { dropPercent: 5 }, b2a: { delayMs: 3 } },
    });
    expect(parseControl('{"blackout":250}')).toEqual({ blackout: 250 });
    expect(parseControl('{"stats":true}')).toEqual({ stats: true });
  });

  it('refuses anything else with the reason', () => {
    expect(() => parseControl('drop 5')).toThrow(/not JSON/);
    expect(() => parseControl('{"set":{"up":{}}}')).toThrow(/unknown direction 'up'/);
    expect(() => parseControl('{"set":{"a2b":{"dropPercent":-1}}}')).toThrow(/dropPercent = -1/);
    expect(() => parseControl('{"set":[]}')).toThrow(/set: expected/);
    expect(() => parseControl('{"blackout":-5}')).toThrow(/blackout: expected milliseconds/);
    expect(() => parseControl('{"blackout":"1s"}')).toThrow(/blackout/);
    expect(() => parseControl('{"stats":true,"blackout":1}')).toThrow(/one of the keys/);
    expect(() => parseControl('{"stats":1}')).toThrow(/unknown command/);
    expect(() => parseControl('[]')).toThrow(/one of the keys/);
  });
});

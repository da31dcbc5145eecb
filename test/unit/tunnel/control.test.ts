/** Control messages: round trips, wire compatibility with the schema, hostile bytes. */
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import {
  CONTROL_LIMITS,
  CONTROL_PROTO,
  ControlErrorCode,
  type ControlMessage,
  decodeControl,
  encodeControl,
} from '../../../src/tunnel/control.js';

const hello: ControlMessage = {
  kind: 'hello',
  hello: { protocolVersion: 1, capabilities: ['aoe', 'exports', 'ünïcode'], gatewayName: 'site-a' },
};
const error: ControlMessage = {
  kind: 'error',
  error: { code: ControlErrorCode.NOT_AUTHORIZED, message: 'target e1.0 not allowed' },
};
const advert: ControlMessage = {
  kind: 'targetAdvert',
  targetAdvert: {
    shelf: 1,
    slot: 0,
    bufferCount: 16,
    sectors: 2n ** 40n + 7n,
    configString: Uint8Array.of(0, 1, 0xff),
  },
};

describe('round trips', () => {
  it.each([hello, error, advert])('$kind', (m) => {
    expect(decodeControl(encodeControl(m))).toEqual(m);
  });

  it('defaults decode as zero/empty values', () => {
    const m: ControlMessage = {
      kind: 'hello',
      hello: { protocolVersion: 0, capabilities: [], gatewayName: '' },
    };
    const bytes = encodeControl(m);
    expect(decodeControl(bytes)).toEqual(m);
  });

  it('random valid messages (property)', () => {
    const str = (max: number) => fc.string({ maxLength: max }).filter((s) => Buffer.byteLength(s) <= max);
    const msg: fc.Arbitrary<ControlMessage> = fc.oneof(
      fc
        .record({
          protocolVersion: fc.nat(),
          capabilities: fc.array(str(CONTROL_LIMITS.capabilityLength), { maxLength: 10 }),
          gatewayName: str(CONTROL_LIMITS.gatewayName),
        })
        .map((hello) => ({ kind: 'hello' as const, hello })),
      fc.record({ code: fc.nat(), message: str(200) }).map((error) => ({ kind: 'error' as const, error })),
      fc
        .record({
          shelf: fc.integer({ min: 0, max: CONTROL_LIMITS.shelf }),
          slot: fc.integer({ min: 0, max: CONTROL_LIMITS.slot }),
          bufferCount: fc.integer({ min: 0, max: CONTROL_LIMITS.bufferCount }),
          sectors: fc.bigInt({ min: 0n, max: CONTROL_LIMITS.sectors }),
          configString: fc.uint8Array({ maxLength: CONTROL_LIMITS.configString }),
        })
        .map((targetAdvert) => ({ kind: 'targetAdvert' as const, targetAdvert })),
    );
    fc.assert(
      fc.property(msg, (m) => {
        expect(decodeControl(encodeControl(m))).toEqual(m);
      }),
    );
  });

  it('decodes at an offset inside a larger buffer', () => {
    const b = encodeControl(advert);
    const big = new Uint8Array(b.length + 10);
    big.set(b, 5);
    expect(decodeControl(big, 5, b.length)).toEqual(advert);
  });
});

describe('schema compatibility', () => {
  const root = protobuf.parse(CONTROL_PROTO).root;
  const Control = root.lookupType('aoegw.tunnel.v1.ControlMessage');

  it('field numbers on the wire: hello = 1, error = 2, target_advert = 3', () => {
    expect(encodeControl(hello)[0]).toBe((1 << 3) | 2);
    expect(encodeControl(error)[0]).toBe((2 << 3) | 2);
    expect(encodeControl(advert)[0]).toBe((3 << 3) | 2);
  });

  it('unknown fields are skipped (a newer peer)', () => {
    const bytes = encodeControl(error);
    const withUnknown = Uint8Array.from([...bytes, (15 << 3) | 0, 42]);
    expect(decodeControl(withUnknown)).toEqual(error);
  });

  it('a message with no body is refused', () => {
    expect(decodeControl(Control.encode(Control.create({})).finish())).toBeNull();
    expect(decodeControl(new Uint8Array(0))).toBeNull();
  });
});

describe('hostile input', () => {
  it.each([
    ['truncated varint', [0x08, 0xff]],
    ['length past the end', [0x0a, 0x10, 0x08]],
    ['wire type 7', [0x0f]],
    ['group start', [0x0b]],
  ])('%s → null', (_n, bytes) => {
    expect(decodeControl(Uint8Array.from(bytes))).toBeNull();
  });

  it('out-of-limit values decode to null', () => {
    const Control = protobuf.parse(CONTROL_PROTO).root.lookupType('aoegw.tunnel.v1.ControlMessage');
    const enc = (o: object) => Control.encode(Control.fromObject(o)).finish();
    expect(decodeControl(enc({ targetAdvert: { shelf: 0x10000 } }))).toBeNull();
    expect(decodeControl(enc({ targetAdvert: { slot: 256 } }))).toBeNull();
    expect(decodeControl(enc({ targetAdvert: { sectors: '281474976710656' } }))).toBeNull();
    expect(decodeControl(enc({ targetAdvert: { configString: new Uint8Array(1025) } }))).toBeNull();
    expect(decodeControl(enc({ hello: { gatewayName: 'x'.repeat(256) } }))).toBeNull();
    expect(decodeControl(enc({ hello: { capabilities: Array(65).fill('a') } }))).toBeNull();
    expect(decodeControl(enc({ error: { message: 'é'.repeat(513) } }))).toBeNull();
  });

  it('encode refuses out-of-limit messages', () => {
    expect(() =>
      encodeControl({
        kind: 'targetAdvert',
        targetAdvert: { ...advert.targetAdvert!, slot: 300 },
      } as ControlMessage),
    ).toThrow(expect.objectContaining({ code: 'ERR_TUNNEL_CONFIG' }));
  });

  it('never throws on arbitrary bytes or ranges (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: -2, max: 300 }), (b, len) => {
        decodeControl(b);
        decodeControl(b, 0, len);
        decodeControl(b, len, 3);
      }),
      { numRuns: 2000 },
    );
  });
});

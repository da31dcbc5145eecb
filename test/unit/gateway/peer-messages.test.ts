/**
 * Gateway control records: round trips, every bound enforced both ways (encode throws, decode
 * returns null), garbage never throws, and advertisement chunking.
 */
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { RECORD_FRAGMENT } from '../../../src/gateway/fragments.js';
import {
  type AdvertChunk,
  advertChunks,
  decodePeerMessage,
  encodePeerMessage,
  PEER_LIMITS,
  PEER_MESSAGES_PROTO,
  type PeerMessage,
  RECORD_AOE_IN_PROGRESS,
  RECORD_AOE_REQUEST,
  RECORD_AOE_RESPONSE,
  RECORD_CONTROL,
  type TargetAdvert,
} from '../../../src/gateway/peer-messages.js';
import { RECORD_PROBE, RECORD_PROBE_ACK } from '../../../src/gateway/probe-records.js';

const L = PEER_LIMITS;

/** Strings whose UTF-8 encoding is at most `bytes` long (multi-byte characters included). */
const boundedString = (bytes: number) =>
  fc.string({ unit: 'grapheme', maxLength: bytes }).filter((s) => Buffer.byteLength(s) <= bytes);

const advertArb: fc.Arbitrary<TargetAdvert> = fc.record({
  shelf: fc.integer({ min: 0, max: 0xfffe }),
  slot: fc.integer({ min: 0, max: 0xfe }),
  bufferCount: fc.integer({ min: 0, max: 0xffff }),
  sectors: fc.bigInt({ min: 0n, max: L.sectors }),
  configString: fc.uint8Array({ maxLength: L.configString }),
  maxSectors: fc.integer({ min: 0, max: 255 }),
  name: boundedString(L.name),
  readOnly: fc.boolean(),
  firmware: fc.integer({ min: 0, max: 0xffff }),
});

const messageArb: fc.Arbitrary<PeerMessage> = fc.oneof(
  fc.record({
    kind: fc.constant('hello' as const),
    hello: fc.record({
      protocolVersion: fc.nat(),
      capabilities: fc.array(boundedString(L.capabilityLength), { maxLength: L.capabilities }),
      gatewayName: boundedString(L.gatewayName),
      requestEpochSeen: fc.nat(),
    }),
  }),
  fc.record({
    kind: fc.constant('error' as const),
    error: fc.record({ code: fc.nat(), message: boundedString(L.errorMessage) }),
  }),
  fc
    .record({
      generation: fc.nat(),
      chunks: fc.integer({ min: 1, max: L.chunks }),
      chunkSeed: fc.nat(),
      targets: fc.array(advertArb, { maxLength: 8 }),
    })
    .map(({ generation, chunks, chunkSeed, targets }) => ({
      kind: 'adverts' as const,
      adverts: { generation, chunks, chunk: chunkSeed % chunks, targets },
    })),
);

const advert = (over: Partial<TargetAdvert> = {}): TargetAdvert => ({
  shelf: 1,
  slot: 2,
  bufferCount: 16,
  sectors: 2048n,
  configString: new Uint8Array([0x61, 0x62]),
  maxSectors: 2,
  name: 'disk',
  readOnly: false,
  firmware: 1,
  ...over,
});

const adverts = (over: Partial<AdvertChunk> = {}): PeerMessage => ({
  kind: 'adverts',
  adverts: { generation: 1, chunk: 0, chunks: 1, targets: [advert()], ...over },
});

/** Encodes with the schema directly, bypassing our encoder's checks: what a hostile peer sends. */
const rawType = protobuf.parse(PEER_MESSAGES_PROTO).root.lookupType('aoegw.gateway.v1.PeerMessage');
function rawEncode(body: Record<string, unknown>): Uint8Array {
  return rawType.encode(rawType.fromObject(body)).finish();
}

function normalize(m: PeerMessage): unknown {
  if (m.kind !== 'adverts') return m;
  return {
    ...m,
    adverts: {
      ...m.adverts,
      targets: m.adverts.targets.map((t) => ({ ...t, configString: Array.from(t.configString) })),
    },
  };
}

describe('peer messages', () => {
  it('round trip: decode(encode(m)) equals m (fast-check)', () => {
    fc.assert(
      fc.property(messageArb, (m) => {
        const bytes = encodePeerMessage(m);
        const back = decodePeerMessage(bytes);
        expect(back).not.toBeNull();
        expect(normalize(back!)).toEqual(normalize(m));
      }),
      { numRuns: 300 },
    );
  });

  it('decodes at an offset inside a larger buffer, and rejects bad ranges', () => {
    const m = adverts();
    const bytes = encodePeerMessage(m);
    const big = new Uint8Array(bytes.length + 20).fill(0xee);
    big.set(bytes, 7);
    expect(normalize(decodePeerMessage(big, 7, bytes.length)!)).toEqual(normalize(m));
    expect(decodePeerMessage(big, -1, 3)).toBeNull();
    expect(decodePeerMessage(big, 7, big.length)).toBeNull();
    expect(decodePeerMessage(big, 1.5, 3)).toBeNull();
  });

  it('values at the limits pass both ways', () => {
    const edge: PeerMessage[] = [
      {
        kind: 'hello',
        hello: {
          protocolVersion: 0xffffffff,
          capabilities: Array.from({ length: L.capabilities }, () => 'c'.repeat(L.capabilityLength)),
          gatewayName: 'n'.repeat(L.gatewayName),
        },
      },
      { kind: 'error', error: { code: 0xffffffff, message: 'm'.repeat(L.errorMessage) } },
      adverts({
        chunks: L.chunks,
        chunk: L.chunks - 1,
        generation: 0xffffffff,
        targets: Array.from({ length: L.targetsPerChunk }, () => advert()),
      }),
      adverts({
        targets: [
          advert({
            shelf: 0xfffe,
            slot: 0xfe,
            bufferCount: 0xffff,
            sectors: L.sectors,
            maxSectors: 255,
            firmware: 0xffff,
            name: 'x'.repeat(L.name),
            configString: new Uint8Array(L.configString),
          }),
        ],
      }),
    ];
    for (const m of edge) expect(decodePeerMessage(encodePeerMessage(m))).not.toBeNull();
  });

  // Each: [what, the message through our encoder (must throw), the same as a hostile peer's bytes (must decode to null)].
  const t0 = { shelf: 1, slot: 2, bufferCount: 16, sectors: '2048', maxSectors: 2, firmware: 1 };
  const violations: [string, PeerMessage, Record<string, unknown>][] = [
    [
      'too many capabilities',
      { kind: 'hello', hello: { protocolVersion: 1, capabilities: Array(65).fill('a'), gatewayName: 'g' } },
      { hello: { protocolVersion: 1, capabilities: Array(65).fill('a'), gatewayName: 'g' } },
    ],
    [
      'capability too long',
      { kind: 'hello', hello: { protocolVersion: 1, capabilities: ['a'.repeat(65)], gatewayName: 'g' } },
      { hello: { protocolVersion: 1, capabilities: ['a'.repeat(65)], gatewayName: 'g' } },
    ],
    [
      'capability too long in UTF-8 bytes (33 two-byte characters)',
      { kind: 'hello', hello: { protocolVersion: 1, capabilities: ['é'.repeat(33)], gatewayName: 'g' } },
      { hello: { protocolVersion: 1, capabilities: ['é'.repeat(33)], gatewayName: 'g' } },
    ],
    [
      'gateway name too long',
      { kind: 'hello', hello: { protocolVersion: 1, capabilities: [], gatewayName: 'g'.repeat(256) } },
      { hello: { protocolVersion: 1, gatewayName: 'g'.repeat(256) } },
    ],
    [
      'error message too long',
      { kind: 'error', error: { code: 1, message: 'm'.repeat(1025) } },
      { error: { code: 1, message: 'm'.repeat(1025) } },
    ],
    [
      'chunks 0',
      adverts({ chunks: 0, chunk: 0 }),
      { adverts: { generation: 1, chunk: 0, chunks: 0, targets: [t0] } },
    ],
    [
      'chunks above the limit',
      adverts({ chunks: 65, chunk: 0 }),
      { adverts: { generation: 1, chunk: 0, chunks: 65, targets: [t0] } },
    ],
    [
      'chunk not below chunks',
      adverts({ chunks: 2, chunk: 2 }),
      { adverts: { generation: 1, chunk: 2, chunks: 2, targets: [t0] } },
    ],
    [
      'too many targets in one chunk',
      adverts({ targets: Array.from({ length: 257 }, () => advert()) }),
      { adverts: { generation: 1, chunk: 0, chunks: 1, targets: Array(257).fill(t0) } },
    ],
    [
      'broadcast shelf',
      adverts({ targets: [advert({ shelf: 0xffff })] }),
      { adverts: { generation: 1, chunk: 0, chunks: 1, targets: [{ ...t0, shelf: 0xffff }] } },
    ],
    [
      'shelf beyond 16 bits',
      adverts({ targets: [advert({ shelf: 0x10000 })] }),
      { adverts: { generation: 1, chunk: 0, chunks: 1, targets: [{ ...t0, shelf: 0x10000 }] } },
    ],
    [
      'broadcast slot',
      adverts({ targets: [advert({ slot: 0xff })] }),
      { adverts: { generation: 1, chunk: 0, chunks: 1, targets: [{ ...t0, slot: 0xff }] } },
    ],
    [
      'buffer count beyond 16 bits',
      adverts({ targets: [advert({ bufferCount: 0x10000 })] }),
      { adverts: { generation: 1, chunk: 0, chunks: 1, targets: [{ ...t0, bufferCount: 0x10000 }] } },
    ],
    [
      'sectors of 2^48',
      adverts({ targets: [advert({ sectors: 1n << 48n })] }),
      {
        adverts: {
          generation: 1,
          chunk: 0,
          chunks: 1,
          targets: [{ ...t0, sectors: (1n << 48n).toString() }],
        },
      },
    ],
    [
      'max sectors above 255',
      adverts({ targets: [advert({ maxSectors: 256 })] }),
      { adverts: { generation: 1, chunk: 0, chunks: 1, targets: [{ ...t0, maxSectors: 256 }] } },
    ],
    [
      'firmware beyond 16 bits',
      adverts({ targets: [advert({ firmware: 0x10000 })] }),
      { adverts: { generation: 1, chunk: 0, chunks: 1, targets: [{ ...t0, firmware: 0x10000 }] } },
    ],
    [
      'name too long',
      adverts({ targets: [advert({ name: 'n'.repeat(256) })] }),
      { adverts: { generation: 1, chunk: 0, chunks: 1, targets: [{ ...t0, name: 'n'.repeat(256) }] } },
    ],
    [
      'config string too long',
      adverts({ targets: [advert({ configString: new Uint8Array(1025) })] }),
      {
        adverts: {
          generation: 1,
          chunk: 0,
          chunks: 1,
          targets: [{ ...t0, configString: new Uint8Array(1025) }],
        },
      },
    ],
  ];

  it.each(
    violations,
  )('rejects %s: encode throws ERR_GATEWAY, a peer’s bytes decode to null', (_what, msg, raw) => {
    expect(() => encodePeerMessage(msg)).toThrow(expect.objectContaining({ code: 'ERR_GATEWAY' }));
    const bytes = rawEncode(raw);
    expect(bytes.length).toBeGreaterThan(0);
    expect(decodePeerMessage(bytes)).toBeNull();
  });

  it('the encoder rejects what the schema cannot say: negative and fractional numbers', () => {
    expect(() =>
      encodePeerMessage({ kind: 'hello', hello: { protocolVersion: -1, capabilities: [], gatewayName: '' } }),
    ).toThrow(/protocol version/);
    expect(() => encodePeerMessage({ kind: 'error', error: { code: 1.5, message: '' } })).toThrow(
      /error code/,
    );
    expect(() => encodePeerMessage(adverts({ generation: 2 ** 32 }))).toThrow(/generation/);
    expect(() => encodePeerMessage(adverts({ targets: [advert({ sectors: -1n })] }))).toThrow(/sectors/);
    expect(() => encodePeerMessage({ kind: 'nope' } as unknown as PeerMessage)).toThrow(/unknown kind/);
  });

  it('a record without a known body is ignored; unknown fields are skipped', () => {
    expect(decodePeerMessage(new Uint8Array(0))).toBeNull();
    expect(decodePeerMessage(rawEncode({}))).toBeNull();
    // Field 3 of PeerMessage (reserved in our schema) as a length-delimited blob, then a hello.
    const hello = encodePeerMessage({
      kind: 'hello',
      hello: { protocolVersion: 1, capabilities: ['x'], gatewayName: 'g' },
    });
    const withUnknown = new Uint8Array([0x1a, 0x02, 0x08, 0x01, 0x7a, 0x01, 0x00, ...hello]);
    const m = decodePeerMessage(withUnknown);
    expect(m).toMatchObject({ kind: 'hello', hello: { protocolVersion: 1, gatewayName: 'g' } });
  });

  it('garbage never throws and never yields an out-of-bounds message (fuzz)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        const m = decodePeerMessage(bytes);
        // Whatever decodes must be something we could have sent.
        if (m !== null) expect(() => encodePeerMessage(m)).not.toThrow();
      }),
      { numRuns: 3000 },
    );
    // Mutations of valid messages reach deeper into the decoder than random bytes do.
    fc.assert(
      fc.property(
        messageArb,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
        fc.nat(),
        (msg, flips, cut) => {
          const bytes = Uint8Array.from(encodePeerMessage(msg));
          for (const [i, v] of flips) if (bytes.length > 0) bytes[i % bytes.length] = v;
          const m = decodePeerMessage(bytes, 0, bytes.length === 0 ? 0 : cut % (bytes.length + 1));
          if (m !== null) expect(() => encodePeerMessage(m)).not.toThrow();
        },
      ),
      { numRuns: 1000 },
    );
  });

  describe('advertChunks', () => {
    it('an empty set is one empty chunk (it withdraws everything)', () => {
      const chunks = advertChunks(9, [], 1400);
      expect(chunks).toHaveLength(1);
      expect(decodePeerMessage(chunks[0]!)).toEqual({
        kind: 'adverts',
        adverts: { generation: 9, chunk: 0, chunks: 1, targets: [] },
      });
    });

    it('splits a big set into chunks under the byte bound that reassemble to the set', () => {
      const targets = Array.from({ length: 40 }, (_, i) =>
        advert({
          shelf: 10,
          slot: i,
          name: `export-${i}`,
          configString: new Uint8Array(200).fill(i),
        }),
      );
      for (const bound of [600, 1400, 4000]) {
        const chunks = advertChunks(7, targets, bound);
        expect(chunks.length).toBeGreaterThan(1);
        const got: TargetAdvert[] = [];
        for (const [i, c] of chunks.entries()) {
          expect(c.length).toBeLessThanOrEqual(bound);
          const m = decodePeerMessage(c);
          expect(m?.kind).toBe('adverts');
          if (m?.kind !== 'adverts') continue;
          expect(m.adverts).toMatchObject({ generation: 7, chunk: i, chunks: chunks.length });
          expect(m.adverts.targets.length).toBeGreaterThan(0);
          got.push(...m.adverts.targets);
        }
        expect(got.map((t) => t.slot)).toEqual(targets.map((t) => t.slot));
      }
    });

    it('never puts more targets in a chunk than a receiver accepts, however large the bound', () => {
      // 300 small targets fit one 64 KiB record by size, but not by the per-chunk count.
      const targets = Array.from({ length: 300 }, (_, i) =>
        advert({ shelf: Math.floor(i / 255), slot: i % 255, name: '', configString: new Uint8Array(0) }),
      );
      const chunks = advertChunks(3, targets, 65000);
      let total = 0;
      for (const c of chunks) {
        const m = decodePeerMessage(c);
        expect(m).not.toBeNull();
        if (m?.kind === 'adverts') total += m.adverts.targets.length;
      }
      expect(chunks.length).toBe(2);
      expect(total).toBe(300);
    });
  });
});

describe('record types', () => {
  it('every record type the gateway sends has its own number, none the tunnel reserves (0, 1)', () => {
    const types = [
      RECORD_CONTROL,
      RECORD_AOE_REQUEST,
      RECORD_AOE_RESPONSE,
      RECORD_FRAGMENT,
      RECORD_PROBE,
      RECORD_PROBE_ACK,
      RECORD_AOE_IN_PROGRESS,
    ];
    expect(new Set(types).size).toBe(types.length);
    expect(types.every((t) => t >= 2 && t <= 255)).toBe(true);
  });
});

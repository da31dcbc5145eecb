/**
 * TunnelPeerLink: a peer as one more engine link. Requests batch up until deliver(); every
 * unicast reply becomes one AOE_RESPONSE record; nothing larger than the record is accepted.
 */
import { describe, expect, it } from 'vitest';
import { TunnelPeerLink } from '../../../src/gateway/peer-link.js';
import { RECORD_AOE_RESPONSE } from '../../../src/gateway/peer-messages.js';
import { MemoryStore } from '../../../src/target/memory-store.js';
import { mac, pattern, read } from '../target/helpers.js';
import { engineWith, PipePort, serveEngine } from './helpers.js';

const INI = mac('52:54:00:00:00:01');

describe('TunnelPeerLink', () => {
  it('has a locally administered MAC unique per ordinal', () => {
    const a = new TunnelPeerLink(new PipePort('a'), 0, 1400);
    const b = new TunnelPeerLink(new PipePort('b'), 0x10203, 1400);
    expect(a.mac[0]! & 0x03).toBe(0x02); // locally administered, unicast
    expect(b.mac.subarray(3)).toEqual(Buffer.from([1, 2, 3]));
    expect(a.mac).not.toEqual(b.mac);
    expect(a.name).toBe('peer:a');
    expect(a.maxFrame).toBe(1414);
  });

  it('rebuilds frames with the initiator MAC as source and hands a batch over on deliver()', () => {
    const link = new TunnelPeerLink(new PipePort('a'), 0, 1400, 4);
    const batches: Buffer[][] = [];
    link.onBatch((frames, lens, n) => {
      batches.push(Array.from({ length: n }, (_, i) => Buffer.from(frames[i]!.subarray(0, lens[i]!))));
    });
    const f = read(0, 1, { major: 1, minor: 0, tag: 5 });
    const pdu = f.subarray(14);
    for (let i = 0; i < 6; i++) expect(link.push(INI, 0, pdu, 0, pdu.length)).toBe(true);
    // A full batch (4) went at the fifth push; the rest waits for deliver().
    expect(batches.map((b) => b.length)).toEqual([4]);
    link.deliver();
    expect(batches.map((b) => b.length)).toEqual([4, 2]);
    const g = batches[0]![0]!;
    expect(g.subarray(0, 6)).toEqual(link.mac);
    expect(g.subarray(6, 12)).toEqual(INI);
    expect(g.readUInt16BE(12)).toBe(0x88a2);
    expect(g.subarray(14)).toEqual(pdu);
    expect(link.stats()).toMatchObject({ rxFrames: 6, rxBatches: 2 });
  });

  it('refuses PDUs larger than its MTU, drops while paused or without handler, and after close', () => {
    const link = new TunnelPeerLink(new PipePort('a'), 0, 600);
    const big = Buffer.alloc(601);
    expect(link.push(INI, 0, big, 0, big.length)).toBe(false);
    expect(link.stats().rxTruncated).toBe(1);
    const pdu = read(0, 1).subarray(14);
    link.push(INI, 0, pdu, 0, pdu.length);
    link.deliver(); // no handler yet
    expect(link.stats().kernelDrops).toBe(1);
    let seen = 0;
    link.onBatch((_f, _l, n) => {
      seen += n;
    });
    link.pause();
    link.push(INI, 0, pdu, 0, pdu.length);
    link.deliver();
    expect(seen).toBe(0);
    link.resume();
    link.push(INI, 0, pdu, 0, pdu.length);
    link.deliver();
    expect(seen).toBe(1);
    link.close();
    expect(link.push(INI, 0, pdu, 0, pdu.length)).toBe(false);
  });

  it('a throwing handler is counted and reported, never thrown to the tunnel', () => {
    const link = new TunnelPeerLink(new PipePort('a'), 0, 1400);
    const errors: string[] = [];
    link.onError((e) => errors.push(e.message));
    link.onBatch(() => {
      throw new Error('engine bug');
    });
    const pdu = read(0, 1).subarray(14);
    link.push(INI, 0, pdu, 0, pdu.length);
    expect(() => link.deliver()).not.toThrow();
    expect(errors).toEqual(['engine bug']);
    expect(link.stats().handlerErrors).toBe(1);
  });

  it('engine replies become AOE_RESPONSE records of the bare PDU; a refused send is counted', () => {
    const port = new PipePort('a');
    const link = new TunnelPeerLink(port, 0, 1400);
    const store = new MemoryStore(pattern(16, 4));
    const engine = engineWith({ shelf: 1, slot: 0, store });
    serveEngine(engine, 1, link);
    const pdu = read(3, 2, { major: 1, minor: 0, tag: 0x42, dst: '02:a0:e0:00:00:00' }).subarray(14);
    link.push(INI, 0, pdu, 0, pdu.length);
    link.deliver();
    const [rec, ...rest] = port.take();
    expect(rest).toEqual([]);
    expect(rec!.type).toBe(RECORD_AOE_RESPONSE);
    expect(rec!.bytes.readUInt32BE(6)).toBe(0x42);
    expect(rec!.bytes[0]! & 0x08).toBe(0x08);
    expect(rec!.bytes.subarray(22, 22 + 1024)).toEqual(store.data.subarray(3 * 512, 5 * 512));
    port.accept = false;
    link.push(INI, 0, pdu, 0, pdu.length);
    link.deliver();
    expect(link.stats().txDropped).toBe(1);
  });
});

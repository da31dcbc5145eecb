import { describe, expect, it } from 'vitest';
import type { GatewaySpec, PeerSpec } from '../../../src/gateway/gateway-spec.js';
import { planReload, same, summarizePlan } from '../../../src/gateway/reload-plan.js';
import type { ExportSpec } from '../../../src/target/spec.js';

const key = (b: number) => new Uint8Array(32).fill(b);

function exp(shelf: number, slot: number, more: Partial<ExportSpec> = {}): ExportSpec {
  return {
    shelf,
    slot,
    path: `memory:1m`,
    readOnly: false,
    durability: 'sync',
    offset: 0,
    bufferCount: 16,
    links: [],
    allowMacs: [],
    ...more,
  };
}

function peer(name: string, k: number, more: Partial<PeerSpec> = {}): PeerSpec {
  return {
    name,
    publicKey: key(k),
    endpoint: { address: '10.0.0.2', port: 7788 },
    allow: [{ targets: [{ shelf: 1, slot: 0 }], access: 'rw' }],
    imports: [],
    persistentKeepaliveMs: 0,
    ...more,
    // Spec fields added later (a peer's source, …) do not matter to the plan.
  } as PeerSpec;
}

function spec(more: Partial<GatewaySpec> = {}): GatewaySpec {
  return {
    name: 'gw',
    privateKeyFile: '/k',
    listen: { address: '10.0.0.1', port: 7788 },
    stateFile: '/s.json',
    links: [{ name: 'lan', iface: 'eth0', batch: 64, busyPollUs: 0 }],
    exports: [exp(1, 0)],
    forwards: [],
    peers: [peer('b', 2)],
    tunnel: { mtu: 1420, busyPollUs: 0, failAfterMs: 120_000 },
    blockIo: 'auto',
    ...more,
  } as GatewaySpec;
}

const ctx = { tunnelOpen: true };

describe('planReload', () => {
  it('finds nothing to do in an equal spec (keys and arrays compared by value)', () => {
    const p = planReload(spec(), spec(), ctx);
    expect(p.refusals).toEqual([]);
    expect(p.peersAdded).toEqual([]);
    expect(p.peersRemoved).toEqual([]);
    expect(p.peersChanged).toEqual([]);
    expect(p.exportsAdded).toEqual([]);
    expect(p.exportsRemoved).toEqual([]);
    expect(summarizePlan(p, 0)).toBe('+0 peers, -0 peers');
  });

  it('refuses every key that needs a restart, all at once', () => {
    const p = planReload(
      spec(),
      spec({
        links: [{ name: 'lan', iface: 'eth1', batch: 64, busyPollUs: 0 }],
        listen: { address: '10.0.0.1', port: 7789 },
        privateKeyFile: '/other',
        stateFile: '/t.json',
        blockIo: 'sync',
        tunnel: { mtu: 1280, busyPollUs: 0, failAfterMs: 60_000 },
        exports: [],
      }),
      ctx,
    );
    expect(p.refusals).toEqual([
      'restart to change blockIo',
      'restart to change links',
      'restart to change listen',
      'restart to change privateKeyFile',
      'restart to change stateFile',
      'restart to change tunnel.failAfterMs',
      'restart to change tunnel.mtu',
    ]);
  });

  it('refuses a key it does not know (added to the spec later) when it changes', () => {
    const a = { ...spec(), controlSocket: '/run/a.sock' } as GatewaySpec;
    const b = { ...spec(), controlSocket: '/run/b.sock' } as GatewaySpec;
    expect(planReload(a, b, ctx).refusals).toEqual(['restart to change controlSocket']);
    expect(planReload(a, { ...a }, ctx).refusals).toEqual([]);
  });

  it('refuses a change of metrics (added, moved, removed): its server is opened at start', () => {
    const on = spec({ metrics: { address: '127.0.0.1', port: 9588 } });
    const moved = spec({ metrics: { address: '127.0.0.1', port: 9589 } });
    expect(planReload(spec(), on, ctx).refusals).toEqual(['restart to change metrics']);
    expect(planReload(on, moved, ctx).refusals).toEqual(['restart to change metrics']);
    expect(planReload(on, spec(), ctx).refusals).toEqual(['restart to change metrics']);
    expect(planReload(on, spec({ metrics: { address: '127.0.0.1', port: 9588 } }), ctx).refusals).toEqual([]);
  });

  it('refuses new peers when the tunnel is not open', () => {
    const p = planReload(spec({ peers: [] }), spec(), { tunnelOpen: false });
    expect(p.refusals).toHaveLength(1);
    expect(p.refusals[0]).toMatch(/restart to add peers/);
  });

  it('adds and removes peers by name; a new key is a new peer', () => {
    const p = planReload(spec(), spec({ peers: [peer('b', 9), peer('c', 3)] }), ctx);
    expect(p.peersRemoved.map((x) => x.name)).toEqual(['b']);
    expect(p.peersAdded.map((x) => x.name)).toEqual(['b', 'c']);
    expect(p.peersChanged).toEqual([]);
    expect(summarizePlan(p, 0)).toBe('+2 peers, -1 peer');
  });

  it('changes a peer in place: endpoint, keepalive, grants, imports', () => {
    const next = peer('b', 2, {
      endpoint: { address: '10.0.0.3', port: 7788 },
      persistentKeepaliveMs: 25_000,
      allow: [{ targets: [{ name: 'disk' }], access: 'ro' }],
      imports: [{ remote: { shelf: 2, slot: 0 }, localShelf: 5, localSlot: 0, links: [] }],
    });
    const p = planReload(spec(), spec({ peers: [next] }), ctx);
    expect(p.peersAdded).toEqual([]);
    expect(p.peersRemoved).toEqual([]);
    expect(p.peersChanged).toHaveLength(1);
    const c = p.peersChanged[0]!;
    expect([c.endpoint, c.keepalive, c.grants]).toEqual([true, true, true]);
    expect(p.importsAdded).toEqual([{ peer: 'b', spec: next.imports[0] }]);
    expect(p.importsRemoved).toEqual([]);
  });

  it('a changed import is removed and added; an unchanged one is untouched', () => {
    const im = (remote: number, local: number) => ({
      remote: { shelf: remote, slot: 0 },
      localShelf: local,
      localSlot: 0,
      links: [] as string[],
    });
    const old = spec({ peers: [peer('b', 2, { imports: [im(2, 5), im(3, 6)] })] });
    const next = spec({ peers: [peer('b', 2, { imports: [im(2, 5), im(4, 6)] })] });
    const p = planReload(old, next, ctx);
    expect(p.importsRemoved).toEqual([{ peer: 'b', spec: im(3, 6) }]);
    expect(p.importsAdded).toEqual([{ peer: 'b', spec: im(4, 6) }]);
    expect(p.peersChanged.map((c) => [c.endpoint, c.keepalive, c.grants])).toEqual([[false, false, false]]);
  });

  it('a changed export is removed and added; others are untouched', () => {
    const old = spec({ exports: [exp(1, 0), exp(1, 1), exp(1, 2)] });
    const next = spec({ exports: [exp(1, 0), exp(1, 1, { bufferCount: 8 }), exp(1, 3)] });
    const p = planReload(old, next, ctx);
    expect(p.exportsRemoved.map((e) => `${e.shelf}.${e.slot}`)).toEqual(['1.1', '1.2']);
    expect(p.exportsAdded.map((e) => `${e.shelf}.${e.slot}`)).toEqual(['1.1', '1.3']);
    expect(summarizePlan(p, 2)).toBe(
      '+0 peers, -0 peers, 2 grants changed, +1 export, -1 export, 1 export changed',
    );
  });

  it('forwards by link and shelf.slot', () => {
    const old = spec({
      forwards: [
        {
          link: 'lan',
          targets: [
            { shelf: 2, slot: 0 },
            { shelf: 2, slot: 1 },
          ],
        },
      ],
    });
    const next = spec({
      forwards: [
        {
          link: 'lan',
          targets: [
            { shelf: 2, slot: 1 },
            { shelf: 2, slot: 2 },
          ],
        },
      ],
    });
    const p = planReload(old, next, ctx);
    expect(p.forwardsRemoved).toEqual([{ link: 'lan', shelf: 2, slot: 0 }]);
    expect(p.forwardsAdded).toEqual([{ link: 'lan', shelf: 2, slot: 2 }]);
  });
});

describe('same', () => {
  it('compares bytes, arrays and objects by value; undefined equals missing', () => {
    expect(same(key(1), key(1))).toBe(true);
    expect(same(key(1), key(2))).toBe(false);
    expect(same({ a: 1, b: undefined }, { a: 1 })).toBe(true);
    expect(same([1, { x: [2] }], [1, { x: [2] }])).toBe(true);
    expect(same([1], [1, 2])).toBe(false);
    expect(same(key(1), [...key(1)])).toBe(false);
  });
});

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { assessHealth, type HealthViews } from '../../../src/cli/cmd-health.js';
import { socketOfConfigText } from '../../../src/cli/socket-of.js';
import { loadGatewayConfig } from '../../../src/config/gateway-config.js';

type LinkRow = { name: string; state: string; mac?: string; serviceMac?: string };

function views(o: {
  links?: LinkRow[];
  exports?: number;
  peers?: [string, boolean][];
  imports?: [string, boolean][] | null;
}): HealthViews {
  return {
    status: { ok: true },
    links: {
      links: (o.links ?? [{ name: 'lan', state: 'up' }]).map((l) => ({ mac: '02:00:00:00:00:01', ...l })),
    },
    exports: { exports: Array.from({ length: o.exports ?? 1 }, (_, i) => ({ target: `e1.${i}` })) },
    peers: { peers: (o.peers ?? []).map(([name, session]) => ({ name, session })) },
    imports: {
      imports:
        o.imports === null ? null : { list: (o.imports ?? []).map(([local, usable]) => ({ local, usable })) },
    },
  };
}

describe('aoegw health: assessHealth', () => {
  it('healthy: every link up; the summary counts links and the exports the daemon serves', () => {
    const h = assessHealth(
      views({
        links: [
          { name: 'lan', state: 'up' },
          { name: 'san', state: 'up' },
        ],
        exports: 2,
      }),
      { requirePeers: false },
    );
    expect(h).toEqual({ problems: [], summary: '2/2 links up, 2 exports served' });
  });

  it('a link down is a problem, named', () => {
    const h = assessHealth(
      views({
        links: [
          { name: 'lan', state: 'up' },
          { name: 'san', state: 'down' },
        ],
      }),
      { requirePeers: false },
    );
    expect(h.problems).toEqual(['link san is down']);
    expect(h.summary).toBe('1/2 links up, 1 export served');
  });

  it('a link that lost its service MAC is a problem (initiators send to the service MAC)', () => {
    const on = { name: 'san', state: 'up', mac: '02:00:5e:a0:00:01', serviceMac: '02:00:5e:a0:00:01' };
    expect(assessHealth(views({ links: [on] }), { requirePeers: false }).problems).toEqual([]);
    const lost = { ...on, mac: '52:54:00:12:34:56' };
    expect(assessHealth(views({ links: [lost] }), { requirePeers: false }).problems).toEqual([
      'link san has MAC 52:54:00:12:34:56, not its service MAC 02:00:5e:a0:00:01',
    ]);
  });

  it('peers and imports count only with requirePeers, and are always in the summary', () => {
    const v = views({
      peers: [
        ['site-a', true],
        ['site-c', false],
      ],
      imports: [['e7.1', false]],
    });
    const loose = assessHealth(v, { requirePeers: false });
    expect(loose.problems).toEqual([]);
    expect(loose.summary).toBe('1/1 links up, 1 export served, 1/2 peers in session, 0/1 imports usable');
    const strict = assessHealth(v, { requirePeers: true });
    expect(strict.problems).toEqual(['peer site-c has no session', 'import e7.1 is not usable']);
  });

  it('a daemon with no imports side (null) and no exports is healthy with its links up', () => {
    const h = assessHealth(views({ exports: 0, imports: null }), { requirePeers: true });
    expect(h).toEqual({ problems: [], summary: '1/1 links up, 0 exports served' });
  });
});

describe('aoegw health: the control socket from a config that need not be valid', () => {
  it('controlSocket, else control.sock beside stateFile, else beside the default state file', () => {
    expect(socketOfConfigText('{"controlSocket": "/run/x.sock", "bogus": 1}')).toBe('/run/x.sock');
    expect(socketOfConfigText('{"stateFile": "/srv/gw/state.json", "links": 7}')).toBe(
      '/srv/gw/control.sock',
    );
    expect(socketOfConfigText('{}')).toBe('/var/lib/aoegw/control.sock');
    expect(socketOfConfigText('{"links": [')).toBeUndefined();
    expect(socketOfConfigText('')).toBeUndefined();
    expect(socketOfConfigText('[]')).toBeUndefined();
    expect(socketOfConfigText('7')).toBeUndefined();
    expect(socketOfConfigText('{"controlSocket": 7, "stateFile": "/srv/gw/state.json"}')).toBe(
      '/srv/gw/control.sock',
    );
  });

  it('the default matches the gateway config schema', () => {
    const dir = mkdtempSync(join(tmpdir(), 'aoegw-health-'));
    try {
      const file = join(dir, 'gw.json');
      writeFileSync(file, JSON.stringify({ links: [{ name: 'lan', iface: 'lo' }] }));
      expect(loadGatewayConfig(file).stateFile).toBe('/var/lib/aoegw/state.json');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

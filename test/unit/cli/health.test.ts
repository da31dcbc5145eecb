import { describe, expect, it } from 'vitest';
import { assessHealth, type HealthViews } from '../../../src/cli/cmd-health.js';

function views(o: {
  links?: [string, string][];
  exports?: string[];
  peers?: [string, boolean][];
  imports?: [string, boolean][] | null;
}): HealthViews {
  return {
    status: { ok: true },
    links: { links: (o.links ?? [['lan', 'up']]).map(([name, state]) => ({ name, state })) },
    exports: { exports: (o.exports ?? ['e1.1']).map((target) => ({ target })) },
    peers: { peers: (o.peers ?? []).map(([name, session]) => ({ name, session })) },
    imports: {
      imports:
        o.imports === null ? null : { list: (o.imports ?? []).map(([local, usable]) => ({ local, usable })) },
    },
  };
}

describe('aoegw health: assessHealth', () => {
  it('healthy: every link up, every configured export served; the summary counts them', () => {
    const h = assessHealth(
      views({
        links: [
          ['lan', 'up'],
          ['san', 'up'],
        ],
        exports: ['e1.1', 'e1.2'],
      }),
      {
        configured: ['1.1', '1.2'],
        requirePeers: false,
      },
    );
    expect(h).toEqual({ problems: [], summary: '2/2 links up, 2/2 exports served' });
  });

  it('a link down and a configured export not served are problems, each named', () => {
    const h = assessHealth(
      views({
        links: [
          ['lan', 'up'],
          ['san', 'down'],
        ],
        exports: ['e1.1'],
      }),
      {
        configured: ['1.1', '1.2'],
        requirePeers: false,
      },
    );
    expect(h.problems).toEqual([
      'link san is down',
      'export 1.2 is configured but not served (a reload pending?)',
    ]);
    expect(h.summary).toBe('1/2 links up, 1/2 exports served');
  });

  it('peers and imports count only with requirePeers, and are always in the summary', () => {
    const v = views({
      peers: [
        ['site-a', true],
        ['site-c', false],
      ],
      imports: [['e7.1', false]],
    });
    const loose = assessHealth(v, { configured: ['1.1'], requirePeers: false });
    expect(loose.problems).toEqual([]);
    expect(loose.summary).toBe('1/1 links up, 1/1 exports served, 1/2 peers in session, 0/1 imports usable');
    const strict = assessHealth(v, { configured: ['1.1'], requirePeers: true });
    expect(strict.problems).toEqual(['peer site-c has no session', 'import e7.1 is not usable']);
  });

  it('a daemon with no imports side (null) and no exports configured is healthy with its links up', () => {
    const h = assessHealth(views({ exports: [], imports: null }), { configured: [], requirePeers: true });
    expect(h).toEqual({ problems: [], summary: '1/1 links up, 0/0 exports served' });
  });
});

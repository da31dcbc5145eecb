import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadTargetConfig, parseExportSpec } from '../../../src/config/target-config.js';

const dir = mkdtempSync(join(tmpdir(), 'aoegw-cfg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function load(content: unknown): ReturnType<typeof loadTargetConfig> {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return loadTargetConfig(file);
}

const good = {
  stateFile: '/tmp/x/state.json',
  links: [
    { name: 'lan', iface: 'eth0' },
    { iface: 'eth1', batch: 32 },
  ],
  exports: [
    { target: '1.2', path: '/srv/a.img' },
    {
      target: 'e7.0',
      path: '/dev/vdb',
      readOnly: true,
      durability: 'direct',
      offset: 1048576,
      length: 4096,
      bufferCount: 16,
      links: ['lan'],
      allowMacs: ['52:54:00:12:34:56'],
    },
  ],
};

describe('target config', () => {
  it('loads a valid file with defaults filled in', () => {
    const c = load(good);
    expect(c.stateFile).toBe('/tmp/x/state.json');
    expect(c.links).toEqual([
      { name: 'lan', iface: 'eth0', batch: 64, busyPollUs: 30 },
      { name: 'eth1', iface: 'eth1', batch: 32, busyPollUs: 30 },
    ]);
    expect(c.exports[0]).toMatchObject({
      shelf: 1,
      slot: 2,
      durability: 'sync',
      readOnly: false,
      bufferCount: 64,
      offset: 0,
    });
    expect(c.exports[1]).toMatchObject({
      shelf: 7,
      slot: 0,
      durability: 'direct',
      readOnly: true,
      length: 4096,
      links: ['lan'],
    });
  });

  it.each([
    [{ ...good, links: [] }, /links.*non-empty list/],
    [{ ...good, links: [{ iface: 'an-interface-name-too-long' }] }, /links\[0\]\.iface.*at most 15/],
    [
      { ...good, links: [{ iface: 'eth0', batch: 0 }] },
      /links\[0\]\.batch = 0: expected an integer in 1\.\.1024/,
    ],
    [{ ...good, links: [{ iface: 'eth0', bogus: 1 }] }, /links\[0\]\.bogus.*known keys/],
    [
      { ...good, exports: [{ target: '1.255', path: '/x' }] },
      /exports\[0\]\.target = "1\.255".*slot 0\.\.254/,
    ],
    [
      { ...good, exports: [{ target: '1.2', path: '/x', durability: 'fast' }] },
      /exports\[0\]\.durability = "fast": expected one of sync, writeback, direct/,
    ],
    [
      { ...good, exports: [{ target: '1.2', path: '/x', bufferCount: 1 }] },
      /exports\[0\]\.bufferCount = 1: expected an integer in 2\.\.1024/,
    ],
    [
      { ...good, exports: [{ target: '1.2', path: '/x', offset: 100 }] },
      /exports\[0\]\.offset = 100: expected a multiple of 512/,
    ],
    [
      { ...good, exports: [{ target: '1.2', path: '/x', allowMacs: ['nope'] }] },
      /exports\[0\]\.allowMacs\[0\] = "nope"/,
    ],
    [
      { ...good, exports: [{ target: '1.2', path: '/x', links: ['wan'] }] },
      /exports\[0\]\.links = "wan": expected one of the configured links \(lan, eth1\)/,
    ],
    [
      {
        ...good,
        exports: [
          { target: '1.2', path: '/x' },
          { target: 'e1.2', path: '/y' },
        ],
      },
      /exports\[1\]\.target.*not used by another export/,
    ],
    [{ ...good, surprise: true }, /surprise/],
    ['{ not json', /config .*/],
  ])('rejects bad input with the key, the value and what is expected (%#)', (content, msg) => {
    expect(() => load(content)).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG', message: expect.stringMatching(msg) }),
    );
    // The message names the file, so an operator knows which one to fix.
    expect(() => load(content)).toThrow(/config \S+\.json: /);
  });

  it('parses the --export shorthand', () => {
    expect(parseExportSpec('1.2=/srv/d.img')).toMatchObject({
      shelf: 1,
      slot: 2,
      path: '/srv/d.img',
      readOnly: false,
      durability: 'sync',
    });
    expect(parseExportSpec('e3.4=/dev/sdb,ro,direct,bufcnt=16')).toMatchObject({
      shelf: 3,
      slot: 4,
      readOnly: true,
      durability: 'direct',
      bufferCount: 16,
    });
    expect(() => parseExportSpec('1.2')).toThrow(/SHELF\.SLOT=PATH/);
    expect(() => parseExportSpec('1.2=/x,fast')).toThrow(/--export = "fast": expected ro, rw, sync/);
    expect(() => parseExportSpec('70000.1=/x')).toThrow(/shelf 0\.\.65534/);
    // Every problem of one flag, each naming the flag.
    expect(() => parseExportSpec('70000.1=/x,bufcnt=1')).toThrow(
      '--export 70000.1=/x,bufcnt=1: target = "70000.1": expected SHELF.SLOT with shelf 0..65534 and slot 0..254, e.g. "1.2"\n' +
        '--export 70000.1=/x,bufcnt=1: bufferCount = 1: expected an integer in 2..1024',
    );
    // A bad flag is a usage error, not a config-file error.
    expect(() => parseExportSpec('1.2=/x,fast')).toThrow(expect.objectContaining({ code: 'ERR_USAGE' }));
  });
});

describe('target config: every problem at once', () => {
  it('reports each bad link and export, one per line', () => {
    expect(() =>
      load({
        ...good,
        links: [{ iface: 'eth0', batch: 0, busyPollUs: -1 }],
        exports: [{ target: '1.255', path: '/x', offset: 100 }, { path: '' }],
      }),
    ).toThrow(
      new RegExp(
        [
          '6 problems:',
          '  links\\[0\\]\\.batch = 0: expected an integer in 1\\.\\.1024',
          '  links\\[0\\]\\.busyPollUs = -1: expected an integer in 0\\.\\.1000',
          '  exports\\[0\\]\\.target = "1\\.255": .*',
          '  exports\\[0\\]\\.offset = 100: expected a multiple of 512',
          '  exports\\[1\\]\\.target = undefined: expected a non-empty string',
          '  exports\\[1\\]\\.path = "": expected a non-empty string',
        ].join('\\n'),
      ),
    );
  });
});

describe('target config: a link service MAC (links[].mac)', () => {
  it('takes a unicast MAC in canonical lowercase', () => {
    const spec = load({ ...good, links: [{ name: 'lan', iface: 'eth0', mac: '02:00:5E:10:00:01' }] });
    expect(spec.links[0]!.mac).toBe('02:00:5e:10:00:01');
  });

  it('refuses broadcast, multicast, zero and malformed addresses, and a mac on a tap link', () => {
    for (const mac of ['ff:ff:ff:ff:ff:ff', '01:00:5e:00:00:01', '00:00:00:00:00:00', '02:00:5e:10:00', 7]) {
      expect(() => load({ ...good, links: [{ iface: 'eth0', mac }] })).toThrow(
        /links\[0\]\.mac = .*: expected a unicast MAC address/,
      );
    }
    expect(() => load({ ...good, links: [{ tap: 'tap0', mac: '02:00:5e:10:00:01' }] })).toThrow(
      /links\[0\]\.mac = "02:00:5e:10:00:01": expected no mac for a tap link/,
    );
  });
});

describe('target config: one link per interface when a service MAC is set', () => {
  it('refuses a second link on the interface of a link with a mac (either way round)', () => {
    for (const links of [
      [
        { name: 'lan', iface: 'eth0', mac: '02:00:5e:10:00:01' },
        { name: 'eth1', iface: 'eth0' },
      ],
      [
        { name: 'lan', iface: 'eth0' },
        { name: 'eth1', iface: 'eth0', mac: '02:00:5e:10:00:01' },
      ],
    ]) {
      expect(() => load({ ...good, links })).toThrow(
        /links\[1\]\.iface = "eth0": expected an interface no other link uses \(links\[0\] has it/,
      );
    }
    // Without a mac, two links on one interface stay allowed (as before); other namespaces differ.
    expect(
      load({
        ...good,
        links: [
          { name: 'lan', iface: 'eth0' },
          { name: 'eth1', iface: 'eth0' },
        ],
      }).links,
    ).toHaveLength(2);
    expect(
      load({
        ...good,
        links: [
          { name: 'lan', iface: 'eth0', mac: '02:00:5e:10:00:01' },
          { name: 'eth1', iface: 'eth0', netns: 'x' },
        ],
      }).links,
    ).toHaveLength(2);
  });
});

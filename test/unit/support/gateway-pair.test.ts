/**
 * The gateway-pair helper writes the issue-8 config contract: two configs that point at each
 * other, keys copied with mode 0600 (the loader refuses anything wider), per-side options.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT } from '../../../support/aoegw.js';
import { GATEWAY_PORT, writeGatewayConfigs } from '../../../support/gateway-pair.js';
import type { TwoSite } from '../../../support/two-site.js';

// Only the addresses and interface names are read: no namespaces needed.
const site = {
  ip: { gwAWan: '10.91.1.2', routerA: '10.91.1.1', routerB: '10.91.2.1', gwBWan: '10.91.2.2' },
  iface: { gwALan: 'lan0', gwBLan: 'lan0' },
} as unknown as TwoSite;

const pub = (side: string) => readFileSync(join(ROOT, 'keys-example', `gateway-${side}.pub`), 'utf8').trim();

describe('writeGatewayConfigs', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('writes both configs of the contract, peered with each other, keys mode 0600', () => {
    dir = mkdtempSync(join(tmpdir(), 'aoegw-gwcfg-'));
    const c = writeGatewayConfigs(site, {
      dir,
      a: { imports: [{ remote: '1.0', local: '7.0', links: ['lan'] }] },
      b: {
        exports: [{ target: '1.1', path: 'memory:64m', name: 'disk-b1' }],
        forwards: [{ link: 'lan', targets: ['1.0'] }],
        allow: [{ targets: ['1.0', '1.1'], access: 'rw' }],
        extra: { busyPollUs: 0 },
      },
    });
    const a = JSON.parse(readFileSync(c.configA, 'utf8'));
    const b = JSON.parse(readFileSync(c.configB, 'utf8'));
    expect(a).toEqual({
      privateKeyFile: c.keyA,
      listen: `10.91.1.2:${GATEWAY_PORT}`,
      stateFile: c.stateA,
      // Both sides' files share one directory: each its own control socket and enrollment file.
      controlSocket: c.stateA.replace(/\.json$/, '.sock'),
      enrollmentFile: c.stateA.replace(/\.json$/, '-enrollment.json'),
      links: [{ name: 'lan', iface: 'lan0' }],
      exports: [],
      forwards: [],
      peers: [
        {
          name: 'b',
          publicKey: pub('b'),
          endpoint: `10.91.2.2:${GATEWAY_PORT}`,
          allow: [],
          imports: [{ remote: '1.0', local: '7.0', links: ['lan'] }],
        },
      ],
    });
    expect(b.listen).toBe(`10.91.2.2:${GATEWAY_PORT}`);
    expect(b.controlSocket).not.toBe(a.controlSocket);
    expect(b.enrollmentFile).not.toBe(a.enrollmentFile);
    expect(b.exports).toEqual([{ target: '1.1', path: 'memory:64m', name: 'disk-b1' }]);
    expect(b.forwards).toEqual([{ link: 'lan', targets: ['1.0'] }]);
    expect(b.peers).toEqual([
      {
        name: 'a',
        publicKey: pub('a'),
        endpoint: `10.91.1.2:${GATEWAY_PORT}`,
        allow: [{ targets: ['1.0', '1.1'], access: 'rw' }],
        imports: [],
      },
    ]);
    expect(b.busyPollUs).toBe(0);
    for (const [k, side] of [
      [c.keyA, 'a'],
      [c.keyB, 'b'],
    ]) {
      expect(statSync(k!).mode & 0o777).toBe(0o600);
      expect(readFileSync(k!)).toEqual(readFileSync(join(ROOT, 'keys-example', `gateway-${side}.key`)));
    }
  });

  it('with a relay, points each gateway at the relay side facing it and still listens on its own address', () => {
    dir = mkdtempSync(join(tmpdir(), 'aoegw-gwcfg-'));
    const c = writeGatewayConfigs(site, { dir, relay: { port: 7790 } });
    const a = JSON.parse(readFileSync(c.configA, 'utf8'));
    const b = JSON.parse(readFileSync(c.configB, 'utf8'));
    expect(a.listen).toBe(`10.91.1.2:${GATEWAY_PORT}`);
    expect(a.peers[0].endpoint).toBe('10.91.1.1:7790');
    expect(b.listen).toBe(`10.91.2.2:${GATEWAY_PORT}`);
    expect(b.controlSocket).not.toBe(a.controlSocket);
    expect(b.enrollmentFile).not.toBe(a.enrollmentFile);
    expect(b.peers[0].endpoint).toBe('10.91.2.1:7790');
  });
});

/**
 * The control socket's export-add and export-remove against a running daemon in a namespace: an
 * export added at run time is in the config file and answers an initiator at once; removed, it
 * stops answering and leaves the file; bad requests change nothing and say why.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/control/client.js';
import type { Initiator } from '../../src/initiator/initiator.js';
import { identify, readSectors, writeSectors } from '../../src/initiator/operations.js';
import { sparseImage } from '../helpers/images.js';
import { type LanGateway, startLanGateway } from '../helpers/lan-gateway.js';
import { netnsSkipReason } from '../helpers/netns.js';
import { sleep } from '../helpers/wait.js';

describe.skipIf(netnsSkipReason())('control socket: export-add and export-remove while running', () => {
  let g: LanGateway;
  let dir: string;
  let config: string;
  let ini: Initiator;
  // The state directory does not exist before the daemon starts (it creates it, socket and all).
  const socket = () => join(dir, 'state', 'control.sock');
  const exportsServed = async () =>
    (
      (await controlRequest(socket(), { cmd: 'exports' })) as unknown as { exports: { target: string }[] }
    ).exports.map((e) => e.target);
  const inFile = () =>
    (JSON.parse(readFileSync(config, 'utf8')).exports as { target: string }[]).map((e) => e.target);

  beforeAll(async () => {
    g = await startLanGateway('ce', (d) => ({
      name: 'ce-gw',
      stateFile: join(d, 'state', 'state.json'),
      exports: [{ target: '6.1', path: 'memory:1m' }],
    }));
    ({ dir, config, ini } = g);
  });

  afterAll(() => g?.close());

  it('adds an export to the file and serves it at once; removes it from both', async () => {
    const image = sparseImage(dir, 'vol2.img', 8 << 20);
    const added = await controlRequest(socket(), {
      cmd: 'export-add',
      spec: `6.2=${image},sync`,
      name: 'vol2',
      links: ['lan'],
    });
    expect(added.ok, JSON.stringify(added)).toBe(true);
    expect(added).toMatchObject({
      summary: expect.stringMatching(/^added export 6\.2 \(vol2\); .*\+1 export/),
    });
    expect(inFile()).toEqual(['6.1', '6.2']);
    expect(await exportsServed()).toEqual(['e6.1', 'e6.2']);
    // An initiator finds it, writes and reads it back, and the bytes are in the image.
    const [adv] = await ini.queryConfig(1000, { major: 6, minor: 2 });
    expect(adv).toBeDefined();
    const c = ini.client(adv!);
    await identify(ini, c);
    await writeSectors(ini, c, 8, Buffer.alloc(512, 0x6b));
    const back = Buffer.alloc(512);
    await readSectors(ini, c, 8, back);
    expect(back.equals(Buffer.alloc(512, 0x6b))).toBe(true);
    expect(
      readFileSync(image)
        .subarray(8 * 512, 9 * 512)
        .equals(Buffer.alloc(512, 0x6b)),
    ).toBe(true);

    const removed = await controlRequest(socket(), { cmd: 'export-remove', target: 'vol2' });
    expect(removed.ok, JSON.stringify(removed)).toBe(true);
    expect(inFile()).toEqual(['6.1']);
    // A removed export drains its requests first, then goes.
    let served = await exportsServed();
    for (let i = 0; i < 50 && served.includes('e6.2'); i++) {
      await sleep(100);
      served = await exportsServed();
    }
    expect(served).toEqual(['e6.1']);
    expect(await ini.queryConfig(500, { major: 6, minor: 2 })).toEqual([]);
  });

  it('bad requests change nothing and say why', async () => {
    const before = readFileSync(config, 'utf8');
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ cmd: 'export-add' }, /export-add needs "spec"/],
      [{ cmd: 'export-add', spec: '6.9=/x', links: 'lan' }, /"links" must be a list of strings/],
      [{ cmd: 'export-add', spec: '6.1=memory:1m' }, /6\.1/],
      [{ cmd: 'export-add', spec: '6.3=memory:1m', links: ['nope'] }, /links/],
      [{ cmd: 'export-remove', target: '6.7' }, /no export 6\.7/],
      [{ cmd: 'export-remove', target: '6.1', force: 'yes' }, /"force" must be true or false/],
    ];
    for (const [req, why] of cases) {
      const r = await controlRequest(socket(), req as { cmd: string });
      expect(r.ok, JSON.stringify(req)).toBe(false);
      expect((r as { errors: readonly string[] }).errors.join('\n'), JSON.stringify(req)).toMatch(why);
    }
    expect(readFileSync(config, 'utf8')).toBe(before);
    expect(await exportsServed()).toEqual(['e6.1']);
  });
});

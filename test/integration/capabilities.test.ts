/**
 * Without CAP_NET_RAW / CAP_NET_ADMIN the addon says exactly which capability is missing, through
 * the CLI as well. Runs node as an unprivileged user with setpriv.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hasCommand } from '../helpers/processes.js';

const root = join(import.meta.dirname, '..', '..');
const skip =
  process.getuid?.() !== 0
    ? 'needs root to drop to another user'
    : hasCommand('setpriv')
      ? undefined
      : 'setpriv missing';

function asNobody(args: string[]) {
  return spawnSync(
    'setpriv',
    ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', process.execPath, ...args],
    {
      encoding: 'utf8',
      cwd: root,
    },
  );
}

describe.skipIf(skip)('missing capabilities', () => {
  it('raw socket and TAP creation name the capability they need', () => {
    const addon = join(root, 'build', 'Release', 'aoegw_native.node');
    const script = `
      const a = require(${JSON.stringify(addon)});
      const arenas = { batch: 1, slotSize: 128, rx: new ArrayBuffer(128), rxLen: new Int32Array(1), tx: new ArrayBuffer(128), txLen: new Int32Array(1) };
      for (const open of [() => a.openPacket({ ...arenas, ifname: 'lo' }), () => a.openTap({ ...arenas, name: 'aoegwcap0' })]) {
        try { open(); console.log('opened'); } catch (e) { console.log(e.code + ' ' + e.message); }
      }`;
    const r = asNobody(['-e', script]);
    expect(r.stdout).toMatch(/^ERR_NO_CAP_NET_RAW .*CAP_NET_RAW/m);
    expect(r.stdout).toMatch(/^ERR_NO_CAP_NET_ADMIN .*CAP_NET_ADMIN/m);
  });

  it('the CLI reports it and exits non-zero', () => {
    const r = asNobody([join(root, 'dist', 'cli', 'main.js'), 'discover', '--iface', 'lo']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/aoegw: socket\(AF_PACKET\) on lo: .*CAP_NET_RAW.*\[ERR_NO_CAP_NET_RAW\]/);
  });
});

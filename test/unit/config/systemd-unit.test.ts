/**
 * deploy/systemd/aoegw@.service: the keys the daemon's systemd support and its least privilege
 * rely on, read from the file itself; and, where systemd-analyze is installed, systemd's own
 * verdict (no warning from `verify`, an exposure score that stays low).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..', '..');
const unitPath = join(root, 'deploy', 'systemd', 'aoegw@.service');
const text = readFileSync(unitPath, 'utf8');

/** section → key → every value assigned, in order (a key may repeat, as DeviceAllow does). */
function parseUnit(s: string): Map<string, Map<string, string[]>> {
  const out = new Map<string, Map<string, string[]>>();
  let section: Map<string, string[]> | undefined;
  for (const raw of s.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const head = /^\[(\w+)\]$/.exec(line);
    if (head) {
      section = new Map();
      out.set(head[1]!, section);
      continue;
    }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (!kv || !section) throw new Error(`not a unit line: ${line}`);
    section.set(kv[1]!, [...(section.get(kv[1]!) ?? []), kv[2]!]);
  }
  return out;
}

const unit = parseUnit(text);
const service = unit.get('Service')!;
const one = (key: string) => {
  const v = service.get(key);
  expect(v, key).toHaveLength(1);
  return v![0]!;
};
const words = (key: string) => new Set(one(key).split(/\s+/));

describe('deploy/systemd/aoegw@.service', () => {
  it('runs one daemon per config, /etc/aoegw/INSTANCE.json, with its own state directory', () => {
    expect(one('ExecStart')).toMatch(/\/aoegw run --config \/etc\/aoegw\/%i\.json$/);
    expect(one('StateDirectory')).toBe('aoegw/%i');
    expect(unit.get('Unit')!.get('AssertPathExists')).toEqual(['/etc/aoegw/%i.json']);
    expect(unit.get('Install')!.get('WantedBy')).toEqual(['multi-user.target']);
  });

  it('is Type=notify, only the main process notifies, with a watchdog and SIGHUP for reload', () => {
    expect(one('Type')).toBe('notify');
    expect(one('NotifyAccess')).toBe('main');
    expect(one('WatchdogSec')).toMatch(/^\d+s$/);
    expect(one('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(one('Restart')).toBe('on-failure');
  });

  it('grants only CAP_NET_RAW and CAP_NET_ADMIN, and the socket families the daemon opens', () => {
    expect(words('CapabilityBoundingSet')).toEqual(new Set(['CAP_NET_RAW', 'CAP_NET_ADMIN']));
    expect(service.has('AmbientCapabilities')).toBe(false);
    expect(words('RestrictAddressFamilies')).toEqual(
      new Set(['AF_PACKET', 'AF_INET', 'AF_INET6', 'AF_UNIX']),
    );
    expect(one('NoNewPrivileges')).toBe('yes');
  });

  it('writes only its state directory (and /srv/aoe if present); devices only /dev/net/tun', () => {
    expect(one('ProtectSystem')).toBe('strict');
    expect(service.get('ReadWritePaths')).toEqual(['-/srv/aoe']);
    expect(one('DevicePolicy')).toBe('closed');
    expect(service.get('DeviceAllow')).toEqual(['/dev/net/tun rw']);
    // Hiding /dev would hide exported disks; W^X would stop V8's JIT.
    expect(service.has('PrivateDevices')).toBe(false);
    expect(service.has('MemoryDenyWriteExecute')).toBe(false);
    for (const k of [
      'ProtectHome',
      'PrivateTmp',
      'ProtectKernelTunables',
      'ProtectKernelModules',
      'ProtectControlGroups',
    ])
      expect(one(k), k).toBe('yes');
    // The comments explain how to allow an exported block device.
    expect(text).toMatch(/#\s+DeviceAllow=\/dev\/sdb rw/);
  });

  it('matches docs/operations.md: its example configs keep their state in /var/lib/aoegw/NAME/', () => {
    const md = readFileSync(join(root, 'docs', 'operations.md'), 'utf8');
    const configs = [...md.matchAll(/`\/etc\/aoegw\/([\w-]+)\.json`:\s*```json\n([\s\S]*?)```/g)];
    expect(configs.length).toBeGreaterThanOrEqual(2);
    for (const [, instance, json] of configs) {
      const c = JSON.parse(json!) as { stateFile: string };
      expect(c.stateFile, instance).toMatch(new RegExp(`^/var/lib/aoegw/${instance}/[^/]+$`));
    }
  });
});

const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
const noAnalyze = analyze.status === 0 ? undefined : 'systemd-analyze is not installed';

describe('deploy/systemd/aoegw-target.service (aoegw serve)', () => {
  const target = parseUnit(readFileSync(join(root, 'deploy', 'systemd', 'aoegw-target.service'), 'utf8'));
  const get = (key: string) => target.get('Service')!.get(key)?.[0];
  it('is Type=notify with a watchdog, only the main process notifies, least privilege', () => {
    expect(get('Type')).toBe('notify');
    expect(get('NotifyAccess')).toBe('main');
    expect(get('WatchdogSec')).toMatch(/^\d+s$/);
    expect(get('ExecStart')).toMatch(/ serve --config /);
    expect(new Set(get('CapabilityBoundingSet')!.split(/\s+/))).toEqual(
      new Set(['CAP_NET_RAW', 'CAP_NET_ADMIN']),
    );
    expect(get('ProtectSystem')).toBe('strict');
    expect(get('DevicePolicy')).toBe('closed');
  });
});

describe.skipIf(noAnalyze)('systemd-analyze on aoegw@.service and aoegw-target.service', () => {
  const dir = mkdtempSync(join(tmpdir(), 'aoegw-unit-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  // verify wants ExecStart's program to exist: this Node stands in for the installed aoegw.
  writeFileSync(join(dir, 'aoegw@.service'), text.replace('/usr/local/bin/aoegw', process.execPath));
  symlinkSync('aoegw@.service', join(dir, 'aoegw@site-b.service'));
  const target = readFileSync(join(root, 'deploy', 'systemd', 'aoegw-target.service'), 'utf8');
  writeFileSync(join(dir, 'aoegw-target.service'), target.replace('/usr/local/bin/aoegw', process.execPath));

  for (const unitFile of ['aoegw@site-b.service', 'aoegw-target.service']) {
    const instance = join(dir, unitFile);
    it(`${unitFile} verify: no warning`, () => {
      const r = spawnSync('systemd-analyze', ['verify', instance], { encoding: 'utf8', timeout: 30_000 });
      expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
      expect(r.status).toBe(0);
    });

    it(`${unitFile} security --offline: exposure of 3.0 or less (systemd calls up to 4.9 "OK")`, () => {
      const r = spawnSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', instance], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      const m = /Overall exposure level for \S+: (\d+\.\d+)/.exec(r.stdout);
      expect(m, r.stdout + r.stderr).not.toBeNull();
      expect(Number(m![1])).toBeLessThanOrEqual(3.0);
    });
  }
});

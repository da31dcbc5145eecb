/**
 * deploy/ocf/aoegw run as Pacemaker would (ocf-tester style): every action's exit code per the
 * OCF spec, meta-data that is well-formed XML, a daemon started detached from the agent's stdio,
 * monitor that asks the daemon (running → 0, a link down → 1, stopped → 7), idempotent start and
 * stop, and validate-all refusing a missing or invalid config (6) or a missing binary (5).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AOEGW, aoegwSync, statusJson } from '../helpers/aoegw.js';
import { Netns, netnsSkipReason, type VethPair, vethPair } from '../helpers/netns.js';
import { OCF, type OcfRun, ocfAgent } from '../helpers/ocf.js';
import { hasCommand } from '../helpers/processes.js';
import { sleep } from '../helpers/wait.js';

describe.skipIf(netnsSkipReason())('OCF resource agent deploy/ocf/aoegw', () => {
  let dir: string;
  let ns: Netns;
  let peer: Netns;
  let v: VethPair;
  let config: string;

  const run: OcfRun = (action, env) =>
    ocfAgent({
      config,
      log: join(dir, 'daemon.log'),
      rsctmp: join(dir, 'rsctmp'),
      ocfRoot: join(dir, 'no-ocf-root'),
    })(action, env);

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'aoegw-ocf-'));
    ns = new Netns('ocf');
    peer = new Netns('ocfp');
    v = vethPair(ns, peer, 1500);
    config = join(dir, 'gw.json');
    writeFileSync(
      config,
      JSON.stringify({
        name: 'ocf-test',
        stateFile: join(dir, 'state.json'),
        links: [{ name: 'lan', iface: v.a, netns: ns.name }],
        exports: [{ target: '1.1', path: 'memory:16m', name: 'disk' }],
      }),
    );
  });

  afterAll(() => {
    if (config) run('stop');
    peer?.delete();
    ns?.delete();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('meta-data is well-formed XML naming every action; unknown actions are unimplemented', () => {
    const r = run('meta-data');
    expect(r.code).toBe(OCF.SUCCESS);
    for (const a of ['start', 'stop', 'monitor', 'validate-all', 'meta-data'])
      expect(r.out).toContain(`<action name="${a}"`);
    for (const p of ['config', 'binary', 'log', 'require_peers', 'start_wait', 'stop_wait'])
      expect(r.out).toContain(`<parameter name="${p}"`);
    if (hasCommand('xmllint')) {
      const x = spawnSync('xmllint', ['--noout', '-'], { input: r.out, encoding: 'utf8' });
      expect(x.status, x.stderr).toBe(0);
    }
    expect(run('promote').code).toBe(OCF.ERR_UNIMPLEMENTED);
  });

  it('validate-all: good config 0; missing or invalid config 6; missing binary 5', () => {
    expect(run('validate-all').code).toBe(OCF.SUCCESS);
    expect(run('validate-all', { OCF_RESKEY_config: join(dir, 'absent.json') }).code).toBe(
      OCF.ERR_CONFIGURED,
    );
    expect(run('validate-all', { OCF_RESKEY_config: '' }).code).toBe(OCF.ERR_CONFIGURED);
    const bad = join(dir, 'bad.json');
    writeFileSync(
      bad,
      JSON.stringify({ stateFile: join(dir, 's.json'), links: [{ name: 'lan' }], bogus: 1 }),
    );
    const r = run('validate-all', { OCF_RESKEY_config: bad });
    expect(r.code).toBe(OCF.ERR_CONFIGURED);
    expect(r.err).toMatch(/bogus/);
    expect(run('validate-all', { OCF_RESKEY_binary: join(dir, 'no-such-aoegw') }).code).toBe(
      OCF.ERR_INSTALLED,
    );
    // Stopping a stopped resource succeeds, also when its config is gone or broken (a failed stop
    // would get the node fenced for nothing).
    expect(run('stop', { OCF_RESKEY_config: join(dir, 'absent.json') }).code).toBe(OCF.SUCCESS);
    expect(run('stop', { OCF_RESKEY_config: bad }).code).toBe(OCF.SUCCESS);
  });

  it('monitor 7 before start; start 0 (twice); monitor 0; a link down → 1, up again → 0; stop 0 (twice); monitor 7', async () => {
    expect(run('monitor').code).toBe(OCF.NOT_RUNNING);
    const started = run('start');
    expect(started.code, started.err).toBe(OCF.SUCCESS);
    expect(run('start').code).toBe(OCF.SUCCESS);
    expect(run('monitor').code).toBe(OCF.SUCCESS);
    const pid = Number(statusJson(config).status!.pid);
    expect(pid).toBeGreaterThan(0);
    // Detached from the agent: stdin is /dev/null, its own session.
    expect(readlinkSync(`/proc/${pid}/fd/0`)).toBe('/dev/null');
    expect(readlinkSync(`/proc/${pid}/fd/2`)).toBe(join(dir, 'daemon.log'));
    // A second daemon for the same config (by hand, beside the resource) stops at the control
    // socket, before it opens a link: never two targets answering for one export.
    const second = spawnSync(process.execPath, [AOEGW, 'run', '--config', config, '--log-format', 'human'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(second.status).not.toBe(0);
    expect(second.stderr).toMatch(
      /another aoegw \(pid \d+\) runs with the state file \S+ \(it holds \S+\.lock\)/,
    );
    expect(second.stderr).not.toMatch(/serving|link lan/);
    ns.ip('link', 'set', v.a, 'down');
    let code = -1;
    for (let i = 0; i < 20 && code !== OCF.ERR_GENERIC; i++) {
      code = run('monitor').code ?? -1;
      if (code !== OCF.ERR_GENERIC) await sleep(250);
    }
    expect(code).toBe(OCF.ERR_GENERIC);
    expect(run('monitor').err).toMatch(/unhealthy: 0\/1 links up, 1 export served;\s+link lan is down/);
    ns.ip('link', 'set', v.a, 'up');
    code = -1;
    for (let i = 0; i < 40 && code !== OCF.SUCCESS; i++) {
      code = run('monitor').code ?? -1;
      if (code !== OCF.SUCCESS) await sleep(250);
    }
    expect(code).toBe(OCF.SUCCESS);
    // aoegw health itself: 0 healthy. A config file with a mistake (or an edit not reloaded yet)
    // does not make the running daemon unhealthy: the daemon is judged, not the file; 7 once no
    // daemon runs, or when the config file is missing (a node without the resource).
    const health = (file = config) => aoegwSync('health', '--config', file);
    let h = health();
    expect([h.status, h.stdout]).toEqual([0, 'healthy: 1/1 links up, 1 export served\n']);
    const good = readFileSync(config, 'utf8');
    writeFileSync(config, JSON.stringify({ ...JSON.parse(good), bogus: 1 }));
    h = health();
    const m = run('monitor');
    writeFileSync(config, good);
    expect(h.status).toBe(0);
    expect(m.code).toBe(OCF.SUCCESS);
    expect(health(join(dir, 'absent.json')).status).toBe(7);
    expect(run('stop').code).toBe(OCF.SUCCESS);
    expect(() => process.kill(pid, 0)).toThrow();
    expect(run('stop').code).toBe(OCF.SUCCESS);
    expect(run('monitor').code).toBe(OCF.NOT_RUNNING);
    h = health();
    expect(h.status).toBe(7);
    expect(h.stderr).toMatch(/no daemon running for /);
    expect(readFileSync(join(dir, 'daemon.log'), 'utf8')).toMatch(/ready: 1 exports[\s\S]*SIGTERM: stopping/);
  }, 120_000);

  it('a daemon that stops answering is failed (1), not "not running", and stop still ends it', () => {
    expect(run('start').code).toBe(OCF.SUCCESS);
    const pid = Number(statusJson(config).status!.pid);
    expect(pid).toBeGreaterThan(0);
    process.kill(pid, 'SIGSTOP');
    try {
      expect(run('monitor').code).toBe(OCF.ERR_GENERIC);
      // SIGTERM waits in the stopped process; after stop_wait the agent kills it and waits for it.
      expect(run('stop', { OCF_RESKEY_stop_wait: '2' }).code).toBe(OCF.SUCCESS);
      expect(() => process.kill(pid, 0)).toThrow();
    } finally {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    expect(run('monitor').code).toBe(OCF.NOT_RUNNING);
  }, 120_000);
});

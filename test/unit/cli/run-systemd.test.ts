/** What `aoegw run` tells systemd around its start, reloads and stop (messages captured). */
import { describe, expect, it } from 'vitest';
import { openRunSystemd, statusLine } from '../../../src/cli/run-systemd.js';
import { SdNotify } from '../../../src/control/sd-notify.js';
import type { Gateway } from '../../../src/gateway/daemon.js';
import { silentLog } from '../../../src/log.js';

const stats = {
  target: { engine: { exports: { '1.1': {}, '1.2': {} } } },
  peers: [{ connected: true }, { connected: false }],
  imports: { list: [{ usable: true }] },
};
const fakeGateway = { stats: () => stats } as unknown as Gateway;

function setup(env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: '@test' }) {
  const sent: string[] = [];
  const notify = SdNotify.open({ env, send: (_p, m) => sent.push(m), monotonicUsec: () => 7n });
  let gw: Gateway | undefined;
  const run = openRunSystemd(() => gw, silentLog, notify);
  return {
    sent,
    run,
    started: () => {
      gw = fakeGateway;
      run.ready();
    },
  };
}

const outcome = (ok: boolean, done = Promise.resolve()) => ({ ok, errors: ok ? [] : ['a', 'b'], done });

describe('statusLine', () => {
  it('counts exports, peers up and usable imports', () => {
    expect(statusLine(stats)).toBe('2 exports, 1/2 peers up, 1/1 imports usable');
    expect(statusLine({ target: null, peers: [], imports: null })).toBe('0 exports, 0/0 peers up');
  });
});

describe('openRunSystemd', () => {
  it('READY=1 with the status line once serving; reloads before that are part of the start', async () => {
    const s = setup();
    s.run.reload(() => outcome(true));
    await Promise.resolve();
    expect(s.sent).toEqual([]);
    s.started();
    expect(s.sent).toEqual(['READY=1\nSTATUS=2 exports, 1/2 peers up, 1/1 imports usable']);
  });

  it('RELOADING=1 at once, READY=1 only when the reload is in effect; overlapping reloads end once', async () => {
    const s = setup();
    s.started();
    s.sent.length = 0;
    let finish!: () => void;
    const r = s.run.reload(() =>
      outcome(
        true,
        new Promise<void>((res) => {
          finish = res;
        }),
      ),
    );
    expect(r.ok).toBe(true);
    s.run.reload(() => outcome(true));
    await new Promise((res) => setImmediate(res));
    expect(s.sent).toEqual(['RELOADING=1\nMONOTONIC_USEC=7\nSTATUS=reloading the config']);
    finish();
    await new Promise((res) => setImmediate(res));
    expect(s.sent.slice(1)).toEqual(['READY=1\nSTATUS=2 exports, 1/2 peers up, 1/1 imports usable']);
  });

  it('a refused reload still ends with READY=1, saying the previous config runs', async () => {
    const s = setup();
    s.started();
    s.run.reload(() => outcome(false));
    await new Promise((res) => setImmediate(res));
    expect(s.sent.at(-1)).toBe(
      'READY=1\nSTATUS=2 exports, 1/2 peers up, 1/1 imports usable; last reload refused: 2 problems, still running the previous config',
    );
  });

  it('a reload that throws still ends with READY=1 and rethrows', async () => {
    const s = setup();
    s.started();
    expect(() =>
      s.run.reload(() => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(s.sent.slice(1).map((m) => m.split('\n')[0])).toEqual(['RELOADING=1', 'READY=1']);
  });

  it('STOPPING=1 at shutdown; a reload still draining then ends without READY=1', async () => {
    const s = setup();
    s.started();
    let finish!: () => void;
    s.run.reload(() =>
      outcome(
        true,
        new Promise<void>((res) => {
          finish = res;
        }),
      ),
    );
    s.run.stopping();
    finish();
    await new Promise((res) => setImmediate(res));
    expect(s.sent.slice(1).map((m) => m.split('\n')[0])).toEqual(['RELOADING=1', 'STOPPING=1']);
    expect(s.sent.at(-1)).toBe('STOPPING=1\nSTATUS=stopping, completing writes');
  });

  it('sends nothing without NOTIFY_SOCKET, and reloads still run', () => {
    const s = setup({});
    s.started();
    expect(s.run.reload(() => outcome(true)).ok).toBe(true);
    s.run.stopping();
    expect(s.sent).toEqual([]);
  });
});

import { describe, expect, it } from 'vitest';
import { AoegwError } from '../../../src/errors.js';
import type { Gateway, ReloadResult } from '../../../src/gateway/daemon.js';
import type { GatewaySpec } from '../../../src/gateway/gateway-spec.js';
import { reloadFromFile } from '../../../src/gateway/reload-file.js';
import { lineLog } from '../../../src/log.js';

const SPEC = {} as GatewaySpec;

function gateway(result: Partial<ReloadResult>) {
  const calls: GatewaySpec[] = [];
  const gw = {
    reload: (s: GatewaySpec) => {
      calls.push(s);
      return { ok: true, errors: [], summary: '', changes: null, done: Promise.resolve(), ...result };
    },
  } as unknown as Gateway;
  return { gw, calls };
}

describe('reloadFromFile', () => {
  it('a config that does not load: every problem logged and returned, the gateway untouched', () => {
    const { gw, calls } = gateway({});
    const log: string[] = [];
    const load = () => {
      throw new AoegwError(
        'ERR_CONFIG',
        'config /etc/gw.json: 2 problems:\n  exports[0].bufferCount: "many" is not an integer\n  listen: bad',
      );
    };
    const r = reloadFromFile(
      gw,
      '/etc/gw.json',
      load,
      lineLog((l) => log.push(l)),
    );
    expect(r.ok).toBe(false);
    expect(r.errors).toEqual(['exports[0].bufferCount: "many" is not an integer', 'listen: bad']);
    expect(calls).toEqual([]);
    expect(log).toEqual([
      'reload: /etc/gw.json not applied, still running the previous config:',
      'reload:   exports[0].bufferCount: "many" is not an integer',
      'reload:   listen: bad',
    ]);
  });

  it('a config the gateway refuses: its problems, nothing else', () => {
    const { gw } = gateway({ ok: false, errors: ['restart to change links', 'restart to change listen'] });
    const log: string[] = [];
    const r = reloadFromFile(
      gw,
      'f',
      () => SPEC,
      lineLog((l) => log.push(l)),
    );
    expect(r).toMatchObject({ ok: false, summary: '', changes: null });
    expect(r.errors).toEqual(['restart to change links', 'restart to change listen']);
    expect(log).toHaveLength(3);
  });

  it('an applied reload: one summary line', async () => {
    const { gw, calls } = gateway({ summary: '+1 peer, -0 peers' });
    const log: string[] = [];
    const r = reloadFromFile(
      gw,
      'f',
      () => SPEC,
      lineLog((l) => log.push(l)),
    );
    expect(calls).toEqual([SPEC]);
    expect(r).toMatchObject({ ok: true, summary: '+1 peer, -0 peers', errors: [] });
    await r.done;
    expect(log).toEqual(['reload: +1 peer, -0 peers']);
  });
});

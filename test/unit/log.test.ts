import { describe, expect, it } from 'vitest';
import { lineLog, silentLog } from '../../src/log.js';

describe('lineLog and silentLog', () => {
  it('lineLog passes each message with its level and the bindings of every child, call fields last', () => {
    const got: unknown[] = [];
    const log = lineLog((line, level, fields) => got.push([line, level, fields]));
    const peer = log.child({ component: 'peer' }).child({ peer: 'b' });
    peer.warn('peer b: handshake failed, will retry');
    peer.info('peer b: session up', { peer: 'b2', address: '10.0.0.2' });
    log.debug('d');
    expect(got).toEqual([
      ['peer b: handshake failed, will retry', 'warn', { component: 'peer', peer: 'b' }],
      ['peer b: session up', 'info', { component: 'peer', peer: 'b2', address: '10.0.0.2' }],
      ['d', 'debug', {}],
    ]);
  });

  it('silentLog takes every call, and its children are silent too', () => {
    expect(() => silentLog.child({ a: 1 }).error('x', { b: 2 })).not.toThrow();
    expect(silentLog.child({})).toBe(silentLog);
  });
});

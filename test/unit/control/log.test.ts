import { describe, expect, it } from 'vitest';
import {
  droppedLine,
  humanLine,
  type LogSettings,
  logSettings,
  openLog,
  stderrLogStats,
} from '../../../src/control/log.js';
import type { AoegwError } from '../../../src/errors.js';

function capture(settings: LogSettings) {
  const out: string[] = [];
  return { log: openLog(settings, (s) => out.push(s)), out };
}

describe('log settings', () => {
  it('JSON unless stderr is a terminal, level info', () => {
    expect(logSettings({}, {}, false)).toEqual({ format: 'json', level: 'info' });
    expect(logSettings({}, {}, true)).toEqual({ format: 'human', level: 'info' });
    // journald: stderr is its socket, not a terminal.
    expect(logSettings({}, { JOURNAL_STREAM: '8:1234' }, false).format).toBe('json');
  });

  it('the flag before the environment before the default', () => {
    const env = { AOEGW_LOG_FORMAT: 'human', AOEGW_LOG_LEVEL: 'debug' };
    expect(logSettings({}, env, false)).toEqual({ format: 'human', level: 'debug' });
    expect(logSettings({ logFormat: 'json', logLevel: 'warn' }, env, true)).toEqual({
      format: 'json',
      level: 'warn',
    });
    expect(logSettings({}, { AOEGW_LOG_FORMAT: '' }, true).format).toBe('human');
  });

  it('a bad value is a usage error naming where it came from', () => {
    expect(() => logSettings({ logFormat: 'xml' }, {}, false)).toThrow(
      /^--log-format xml: expected one of json, human$/,
    );
    expect(() => logSettings({}, { AOEGW_LOG_LEVEL: 'loud' }, false)).toThrow(/^AOEGW_LOG_LEVEL loud: /);
    try {
      logSettings({ logLevel: 'trace' }, {}, false);
    } catch (e) {
      expect((e as AoegwError).code).toBe('ERR_USAGE');
    }
  });
});

describe('openLog', () => {
  it('JSON: one object per line with level, time, msg, pid and the fields of the child and the call', () => {
    const { log, out } = capture({ format: 'json', level: 'info' });
    log
      .child({ component: 'target' })
      .warn('link lan: down (ENETDOWN), waiting for it to return', { link: 'lan' });
    expect(out).toHaveLength(1);
    expect(out[0]!.endsWith('\n')).toBe(true);
    const r = JSON.parse(out[0]!);
    expect(r).toMatchObject({
      level: 'warn',
      pid: process.pid,
      component: 'target',
      link: 'lan',
      msg: 'link lan: down (ENETDOWN), waiting for it to return',
    });
    expect(Number.isNaN(Date.parse(r.time))).toBe(false);
  });

  it('the level suppresses what is below it', () => {
    const { log, out } = capture({ format: 'json', level: 'warn' });
    log.debug('d');
    log.info('i');
    log.warn('w');
    log.error('e');
    expect(out.map((l) => JSON.parse(l).level)).toEqual(['warn', 'error']);
    const dbg = capture({ format: 'json', level: 'debug' });
    dbg.log.debug('d');
    expect(dbg.out).toHaveLength(1);
  });

  it('fields that could hold a secret are redacted, at the top and one level down', () => {
    const { log, out } = capture({ format: 'json', level: 'info' });
    log
      .child({ psk: 'c2VjcmV0' })
      .info('x', { privateKey: 'AAAA', peer: { token: 'aoegw1-xyz', name: 'b' } });
    expect(out[0]).not.toMatch(/c2VjcmV0|AAAA|aoegw1-xyz/);
    expect(JSON.parse(out[0]!)).toMatchObject({
      psk: '[redacted]',
      privateKey: '[redacted]',
      peer: { token: '[redacted]', name: 'b' },
    });
  });

  it('human: the aoegw: line as before, warnings marked, extra fields as key=value', () => {
    const { log, out } = capture({ format: 'human', level: 'info' });
    log.child({ component: 'daemon' }).info('ready: 1 exports on 1 links (pid 7)');
    log
      .child({ component: 'input' })
      .warn('rejected 12 tunnel datagrams: bad mac1 in the last 10 s', { reason: 'bad_mac1', count: 12 });
    log.error('stopped', { why: 'two words', link: 'lan', invite: 'site-a', import: 'e7.1' });
    expect(out).toEqual([
      'aoegw: ready: 1 exports on 1 links (pid 7)\n',
      'aoegw: warning: rejected 12 tunnel datagrams: bad mac1 in the last 10 s reason=bad_mac1 count=12\n',
      'aoegw: error: stopped why="two words"\n',
    ]);
  });

  it('humanLine reads one pino line', () => {
    expect(humanLine('{"level":"debug","time":"t","pid":1,"msg":"m","n":{"a":1}}')).toBe(
      'aoegw: debug: m n={"a":1}\n',
    );
    expect(humanLine('not json\n')).toBe('aoegw: not json\n');
  });

  it('humanLine shows control characters as \\xNN: no escape sequence or forged line reaches a terminal', () => {
    const msg = 'peer b: error: \u001b[2J\naoegw: ready: forged';
    const line = humanLine(
      JSON.stringify({ level: 'warn', time: 't', pid: 1, msg, why: 'a\u009bb', n: 'x\ry' }),
    );
    expect(line).toBe(
      'aoegw: warning: peer b: error: \\x1b[2J\\x0aaoegw: ready: forged why=a\\x9bb n="x\\ry"\n',
    );
    expect(line.split('\n')).toHaveLength(2);
  });

  it('humanLine shows line separators and bidirectional overrides as \\uNNNN', () => {
    const line = humanLine(
      JSON.stringify({ level: 'info', time: 't', pid: 1, msg: 'a\u2028b\u202ec\u2066d' }),
    );
    expect(line).toBe('aoegw: a\\u2028b\\u202ec\\u2066d\n');
  });
});

describe('the stderr sink', () => {
  it("the dropped-lines notice is a warn record in the log's format", () => {
    const r = JSON.parse(droppedLine(37, 'json'));
    expect(r).toMatchObject({
      level: 'warn',
      pid: process.pid,
      dropped: 37,
      msg: "log: 37 lines dropped: stderr's reader was not reading",
    });
    expect(Number.isNaN(Date.parse(r.time))).toBe(false);
    expect(droppedLine(37, 'human')).toBe(
      "aoegw: warning: log: 37 lines dropped: stderr's reader was not reading dropped=37\n",
    );
  });

  it('one writer for fd 2 and one exit flush, however many logs are opened', () => {
    // Opening writes nothing: no line reaches the test's stderr.
    const before = process.listenerCount('exit');
    const hadWriter = stderrLogStats() !== undefined;
    openLog({ format: 'json', level: 'error' });
    openLog({ format: 'human', level: 'error' });
    openLog({ format: 'json', level: 'error' });
    expect(process.listenerCount('exit')).toBe(before + (hadWriter ? 0 : 1));
    expect(stderrLogStats()).toMatchObject({
      linesWritten: 0,
      linesQueued: 0,
      bytesQueued: 0,
      linesDropped: 0,
    });
  });
});

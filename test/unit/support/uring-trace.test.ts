/**
 * test/helpers/uring-trace.ts on lines as this kernel prints them (tracefs `trace` of an instance
 * with io_uring_submit_req, io_uring_complete and sys_enter_sendmmsg): the parser reads them, and
 * the order check keeps the daemon's ring only and flags an acknowledgement sent between a
 * write's completion and the fdatasync's.
 */
import { describe, expect, it } from 'vitest';
import { ackOrder, parseTrace } from '../../helpers/uring-trace.js';

const HEADER = `# tracer: nop
#
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
`;
const sub = (
  ts: string,
  req: string,
  ud: number,
  op: string,
  ring = '000000004a6033bd',
  tid = 'node-12573',
) =>
  `            ${tid}   [001] ..... ${ts}: io_uring_submit_req: ring ${ring}, req ${req}, user_data 0x${ud.toString(16)}, opcode ${op}, flags 0x400004, sq_thread 0`;
const done = (ts: string, req: string, ud: number, res: number, ring = '000000004a6033bd') =>
  `   iou-wrk-12573-12604   [000] ...1. ${ts}: io_uring_complete: ring ${ring}, req ${req}, user_data 0x${ud.toString(16)}, result ${res}, cflags 0x0 extra1 0 extra2 0 `;
const send = (ts: string, vlen: string, tid = 'node-12573') =>
  `            ${tid}   [001] ..... ${ts}: sys_sendmmsg(fd: 0x16, mmsg: 0x1503ea20, vlen: ${vlen}, flags: 0x40)`;

describe('uring-trace parsing and the acknowledgement order check', () => {
  it('parses submit, complete and sendmmsg lines (hex vlen, worker threads, names with dashes)', () => {
    const ev = parseTrace(
      `${HEADER}${sub('10672.777641', '0000000086b9b9cd', 0, 'WRITE')}\n${done('10672.780166', '0000000086b9b9cd', 0, 1024)}\n${send('10672.790575', '0x3f')}\n`,
    );
    expect(ev).toEqual([
      {
        kind: 'submit',
        tid: 12573,
        ctx: '000000004a6033bd',
        req: '0000000086b9b9cd',
        userData: 0,
        opcode: 'WRITE',
        flags: 0x400004,
      },
      {
        kind: 'complete',
        tid: 12604,
        ctx: '000000004a6033bd',
        req: '0000000086b9b9cd',
        userData: 0,
        result: 1024,
      },
      { kind: 'sendmmsg', tid: 12573, fd: 0x16, vlen: 63 },
    ]);
  });

  it('counts a send between a write completion and its fdatasync completion, not one after', () => {
    const lines = [
      sub('1.000001', 'a', 0, 'WRITEV'),
      sub('1.000002', 'b', 1, 'FSYNC'),
      done('1.000010', 'a', 0, 65536),
      send('1.000011', '1'), // before the fsync completed: a violation
      done('1.000020', 'b', 1, 0),
      send('1.000021', '0x10'), // after it: fine
      // Another process's ring (submitted by another pid) is ignored, its completions too.
      sub('1.000030', 'c', 0, 'WRITE', 'ffff', 'node-999'),
      done('1.000031', 'c', 0, 512, 'ffff'),
      send('1.000032', '2'),
    ];
    expect(ackOrder(parseTrace(lines.join('\n')), 12573)).toEqual({
      rings: 1,
      writes: 1,
      fsyncs: 1,
      sends: 3,
      violations: 1,
      failed: 0,
    });
  });

  it('a failed fdatasync does not make the written data clean', () => {
    const lines = [
      sub('1.1', 'a', 0, 'WRITE'),
      sub('1.2', 'b', 1, 'FSYNC'),
      done('1.3', 'a', 0, 4096),
      done('1.4', 'b', 1, -5),
      send('1.5', '1'),
    ];
    expect(ackOrder(parseTrace(lines.join('\n')), 12573)).toMatchObject({
      fsyncs: 0,
      violations: 1,
      failed: 1,
    });
  });
});

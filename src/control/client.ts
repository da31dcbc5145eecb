/**
 * Talking to a running daemon over its control socket: one request, one response. Used by
 * `aoegw reload` and by every command that edits a config or enrollment file, so the daemon applies
 * the change at once.
 */
import { createConnection } from 'node:net';
import { AoegwError } from '../errors.js';
import { type ControlRequest, type ControlResponse, MAX_RESPONSE_BYTES } from './protocol.js';

/** No daemon listens there: the socket file is missing, stale, or not ours to open. */
export class DaemonNotRunning extends AoegwError {
  constructor(path: string, why: string) {
    super('ERR_CONTROL', `no aoegw daemon answers on ${path} (${why})`);
  }
}

/** Sends one request and resolves with the daemon's response. Throws DaemonNotRunning or ERR_CONTROL. */
export function controlRequest(
  path: string,
  req: ControlRequest,
  timeoutMs = 10_000,
): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    let buf = '';
    let settled = false;
    const finish = (f: () => void) => {
      if (settled) return;
      settled = true;
      s.destroy();
      f();
    };
    s.setEncoding('utf8');
    s.setTimeout(timeoutMs, () =>
      finish(() =>
        reject(new AoegwError('ERR_CONTROL', `${path}: no answer to "${req.cmd}" within ${timeoutMs} ms`)),
      ),
    );
    s.once('connect', () => s.write(`${JSON.stringify(req)}\n`));
    s.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        const line = buf.slice(0, nl);
        finish(() => {
          try {
            const v = JSON.parse(line) as ControlResponse;
            if (typeof v !== 'object' || v === null || typeof v.ok !== 'boolean') throw new Error('no "ok"');
            resolve(v);
          } catch (e) {
            reject(new AoegwError('ERR_CONTROL', `${path}: malformed response (${(e as Error).message})`));
          }
        });
      } else if (buf.length > MAX_RESPONSE_BYTES) {
        finish(() => reject(new AoegwError('ERR_CONTROL', `${path}: response too long`)));
      }
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      const code = e.code ?? '';
      if (code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'ENOTSOCK') {
        finish(() =>
          reject(new DaemonNotRunning(path, code === 'ENOENT' ? 'no socket' : 'nothing listening')),
        );
      } else {
        finish(() => reject(new AoegwError('ERR_CONTROL', `${path}: ${e.message}`)));
      }
    });
    s.once('close', () =>
      finish(() => reject(new AoegwError('ERR_CONTROL', `${path}: connection closed before an answer`))),
    );
  });
}

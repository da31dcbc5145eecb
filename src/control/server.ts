/**
 * The daemon's control socket (docs/operations.md): a UNIX stream socket, mode 0600, answering one
 * JSON request per line with one JSON response per line (protocol.ts). The daemon registers its
 * commands as handlers; this file only owns the socket: refusing to take over a live daemon's
 * socket or a file that is not a socket, bounding request size, connections and idle time, and
 * answering each connection's requests in order.
 */
import { lstatSync, statSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { AoegwError } from '../errors.js';
import type { Log } from '../log.js';
import {
  type ControlRequest,
  type ControlResponse,
  encodeResponse,
  MAX_REQUEST_BYTES,
  parseRequest,
} from './protocol.js';

/** Requests of one connection waiting for their answer before it stops reading. */
const MAX_QUEUED_REQUESTS = 8;

export type ControlHandler = (req: ControlRequest) => ControlResponse | Promise<ControlResponse>;

export interface ControlServerOptions {
  readonly path: string;
  readonly handlers: Readonly<Record<string, ControlHandler>>;
  readonly log?: Log;
  /** Connections open at once (default 16); more are refused. */
  readonly maxConnections?: number;
  /** A connection idle this long is closed (ms, default 30 s). */
  readonly idleMs?: number;
}

/** Is something answering on the socket at `path`? (A stale socket file refuses connections.) */
function answers(path: string, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    const done = (alive: boolean) => {
      s.destroy();
      resolve(alive);
    };
    s.setTimeout(timeoutMs, () => done(true));
    s.once('connect', () => done(true));
    // Only a refused connection means nobody listens; anything else (a full backlog, EACCES)
    // may be a live daemon whose socket must not be taken over.
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code !== 'ECONNREFUSED'));
  });
}

export class ControlServer {
  private readonly sockets = new Set<Socket>();
  private ino = -1;

  private constructor(
    private readonly server: Server,
    readonly path: string,
  ) {}

  /** Listens on opts.path. Throws ERR_CONTROL naming the path when it cannot. */
  static async open(opts: ControlServerOptions): Promise<ControlServer> {
    const path = opts.path;
    let existing: ReturnType<typeof lstatSync> | undefined;
    try {
      existing = lstatSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new AoegwError('ERR_CONTROL', `control socket ${path}: ${(e as Error).message}`);
      }
    }
    if (existing) {
      if (!existing.isSocket()) {
        throw new AoegwError(
          'ERR_CONTROL',
          `control socket ${path} exists and is not a socket: refusing to replace it`,
        );
      }
      if (await answers(path)) {
        throw new AoegwError(
          'ERR_CONTROL',
          `control socket ${path} is in use: another aoegw runs with this config (or set controlSocket)`,
        );
      }
      unlinkSync(path);
    }
    try {
      statSync(dirname(path));
    } catch {
      throw new AoegwError(
        'ERR_CONTROL',
        `control socket ${path}: directory ${dirname(path)} does not exist`,
      );
    }
    const server = createServer();
    const cs = new ControlServer(server, path);
    server.maxConnections = opts.maxConnections ?? 16;
    server.on('connection', (s) => cs.serve(s, opts));
    // The socket is created 0600 (umask during bind), never briefly open to others.
    const umask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      throw new AoegwError('ERR_CONTROL', `control socket ${path}: ${(e as Error).message}`);
    } finally {
      process.umask(umask);
    }
    // lstat: never follow a link someone put there since bind.
    const st = lstatSync(path);
    if (!st.isSocket() || (st.mode & 0o077) !== 0) {
      server.close();
      throw new AoegwError(
        'ERR_CONTROL',
        `control socket ${path} is not the private socket just created: refusing it`,
      );
    }
    cs.ino = st.ino;
    server.on('error', (e) => opts.log?.warn(`control socket: ${e.message}`));
    return cs;
  }

  private serve(s: Socket, opts: ControlServerOptions): void {
    this.sockets.add(s);
    s.setEncoding('utf8');
    s.setTimeout(opts.idleMs ?? 30_000, () => s.destroy());
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => s.destroy());
    let buf = '';
    // Requests of one connection are answered in order, one at a time; while some wait, the
    // connection is not read further (a client cannot queue an unbounded number of reloads).
    let chain: Promise<void> = Promise.resolve();
    let waiting = 0;
    s.on('data', (chunk: string) => {
      buf += chunk;
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        waiting++;
        if (waiting >= MAX_QUEUED_REQUESTS) s.pause();
        chain = chain.then(async () => {
          await this.answer(s, line, opts.handlers);
          waiting--;
          if (waiting < MAX_QUEUED_REQUESTS && !s.destroyed) s.resume();
        });
        nl = buf.indexOf('\n');
      }
      if (Buffer.byteLength(buf) > MAX_REQUEST_BYTES) {
        s.end(encodeResponse({ ok: false, errors: [`request longer than ${MAX_REQUEST_BYTES} bytes`] }));
        s.destroy();
      }
    });
  }

  private async answer(s: Socket, line: string, handlers: ControlServerOptions['handlers']): Promise<void> {
    if (line.trim() === '') return;
    let res: ControlResponse;
    const req = parseRequest(line);
    if (typeof req === 'string') {
      res = { ok: false, errors: [`bad request: ${req}`] };
    } else {
      const h = Object.hasOwn(handlers, req.cmd) ? handlers[req.cmd] : undefined;
      if (!h) {
        res = {
          ok: false,
          errors: [`unknown command "${req.cmd}" (known: ${Object.keys(handlers).join(', ')})`],
        };
      } else {
        try {
          res = await h(req);
        } catch (e) {
          res = { ok: false, errors: [(e as Error).message] };
        }
      }
    }
    if (!s.destroyed) s.write(encodeResponse(res));
  }

  /** Stops listening, closes every connection and removes the socket file (if it is still ours). */
  close(): void {
    this.server.close();
    for (const s of this.sockets) s.destroy();
    try {
      if (statSync(this.path).ino === this.ino) unlinkSync(this.path);
    } catch {
      /* already gone */
    }
  }
}

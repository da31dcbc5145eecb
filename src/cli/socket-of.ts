/**
 * Where the daemon running a config file listens, read as leniently as that allows: only
 * `controlSocket` and `stateFile` matter. A running daemon keeps the last config it accepted, so
 * an edit with a mistake elsewhere (one a reload would refuse) must not stop `status`, `top` or
 * `health` from asking it: that is exactly when an operator wants to look.
 */
import { readFileSync } from 'node:fs';
import { derivedPaths } from '../config/gateway-config.js';
import { AoegwError } from '../errors.js';

/** The control socket a config's text names; undefined when the text is not a JSON object. */
export function socketOfConfigText(text: string): string | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return undefined;
  return derivedPaths(doc as Record<string, unknown>).controlSocket;
}

/** The control socket of the daemon running `configFile`; a clear error naming the file if none can be known. */
export function socketOf(configFile: string): string {
  let text: string;
  try {
    text = readFileSync(configFile, 'utf8');
  } catch (e) {
    throw new AoegwError('ERR_CONFIG', `${configFile}: cannot read: ${(e as Error).message}`);
  }
  const socket = socketOfConfigText(text);
  if (socket === undefined)
    throw new AoegwError(
      'ERR_CONFIG',
      `${configFile}: not a JSON object, so the daemon's control socket is unknown (aoegw config check ${configFile} says why)`,
    );
  return socket;
}

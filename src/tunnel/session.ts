/**
 * One transport session: the keys of one completed handshake, our and the peer's 32-bit index, the
 * send counter and the receive replay window (docs/protocol.md, "Sessions").
 */
import { AoegwError } from '../errors.js';
import { REJECT_AFTER_TIME } from './constants.js';
import { type CryptoBackend, KEY_LEN } from './crypto.js';
import type { TransportKeys } from './noise.js';
import type { Peer } from './peer.js';
import { REJECT_AFTER_MESSAGES, ReplayWindow } from './replay.js';

/** Kinds of entries in the endpoint's index table. */
export const ENTRY_SESSION = 1;
export const ENTRY_HANDSHAKE = 2;

export class Session {
  readonly kind = ENTRY_SESSION;
  readonly sendKey = new Uint8Array(KEY_LEN);
  readonly recvKey = new Uint8Array(KEY_LEN);
  /** Counter of the next message we send; never reused with sendKey. */
  sendCounter = 0n;
  readonly replay = new ReplayWindow();
  destroyed = false;

  /** Copies the keys out of `keys` and destroys its cipher states. */
  constructor(
    readonly peer: Peer,
    readonly localIndex: number,
    readonly remoteIndex: number,
    keys: TransportKeys,
    readonly createdAt: number,
    /** Did we initiate the handshake that made this session? Only that side rekeys on time. */
    readonly initiator: boolean,
  ) {
    const send = keys.send.key;
    const recv = keys.recv.key;
    if (send === null || recv === null) throw new AoegwError('ERR_HANDSHAKE', 'transport keys missing');
    this.sendKey.set(send);
    this.recvKey.set(recv);
    keys.send.destroy();
    keys.recv.destroy();
  }

  /** Too old to send or receive with (REJECT_AFTER_TIME). */
  expired(now: number): boolean {
    return now - this.createdAt >= REJECT_AFTER_TIME;
  }

  /** May we seal another message with this session now? */
  canSend(now: number): boolean {
    return !this.destroyed && !this.expired(now) && this.sendCounter < REJECT_AFTER_MESSAGES;
  }

  /** Zero both keys; the session then refuses everything. Idempotent. */
  destroy(crypto: CryptoBackend): void {
    crypto.memzero(this.sendKey);
    crypto.memzero(this.recvKey);
    this.destroyed = true;
  }
}

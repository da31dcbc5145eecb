/**
 * The tunnel handshake: Noise_IKpsk2 messages framed in the wire layouts of messages.ts
 * (docs/protocol.md, "Handshake"). These functions place the Noise bytes, indices and header; mac1
 * and mac2 are the caller's (CookieMaker.stamp), as are all checks that must come before any
 * Diffie-Hellman. Reading functions never throw: they return null and leave no secrets behind.
 */
import { AoegwError } from '../errors.js';
import { NOISE_PROTOCOL, PROLOGUE } from './constants.js';
import type { CryptoBackend, X25519KeyPair } from './crypto.js';
import {
  ENROLL_LEN,
  ENROLL_MAC1,
  ENROLL_NOISE_LEN,
  INIT_LEN,
  INIT_MAC1,
  INIT_NOISE,
  INIT_NOISE_LEN,
  INIT_SENDER,
  INVITE_ID_LEN,
  MSG_ENROLL,
  MSG_INITIATION,
  MSG_RESPONSE,
  RESP_LEN,
  RESP_MAC1,
  RESP_NOISE,
  RESP_NOISE_LEN,
  RESP_RECEIVER,
  RESP_SENDER,
  TIMESTAMP_LEN,
  writeHeader,
  writeU32,
} from './messages.js';
import { HandshakeState, PSK_LEN, type TransportKeys } from './noise.js';

const EMPTY = new Uint8Array(0);

/** The PSK used when a peer has none: 32 zero bytes (IKpsk2 then behaves like IK). */
export const ZERO_PSK: Uint8Array = new Uint8Array(PSK_LEN);

/**
 * Writes an initiation's header, sender index and Noise message 1 into out[0, INIT_MAC1) — or, when
 * `inviteId` is given, an enrollment initiation (MSG_ENROLL) whose encrypted payload is the
 * timestamp followed by the invite id, into out[0, ENROLL_MAC1). Returns the initiator's state
 * awaiting the response.
 */
export function writeInitiation(
  crypto: CryptoBackend,
  ours: X25519KeyPair,
  peerPublic: Uint8Array,
  psk: Uint8Array,
  senderIndex: number,
  timestamp: Uint8Array,
  out: Uint8Array,
  inviteId: Uint8Array | null = null,
): HandshakeState {
  const state = new HandshakeState({
    crypto,
    protocolName: NOISE_PROTOCOL,
    initiator: true,
    prologue: PROLOGUE,
    staticKeyPair: ours,
    remoteStatic: peerPublic,
    psks: [psk],
  });
  try {
    let payload = timestamp;
    if (inviteId !== null) {
      if (inviteId.length !== INVITE_ID_LEN)
        throw new AoegwError('ERR_HANDSHAKE', 'invite id must be 16 bytes');
      payload = new Uint8Array(TIMESTAMP_LEN + INVITE_ID_LEN);
      payload.set(timestamp, 0);
      payload.set(inviteId, TIMESTAMP_LEN);
    }
    const m1 = state.writeMessage(payload);
    if (m1.length !== (inviteId === null ? INIT_NOISE_LEN : ENROLL_NOISE_LEN))
      throw new AoegwError('ERR_HANDSHAKE', 'unexpected Noise message 1 length');
    writeHeader(out, 0, inviteId === null ? MSG_INITIATION : MSG_ENROLL);
    writeU32(out, INIT_SENDER, senderIndex);
    out.set(m1, INIT_NOISE);
    return state;
  } catch (err) {
    state.destroy();
    throw err;
  }
}

export interface ReadInitiation {
  /** The responder's state, ready for setPsk() and writeResponse(). */
  readonly state: HandshakeState;
  readonly remoteStatic: Uint8Array;
  readonly timestamp: Uint8Array;
  /** The invite id of an enrollment initiation (MSG_ENROLL); null for a plain initiation. */
  readonly inviteId: Uint8Array | null;
}

/**
 * Runs Noise message 1 of an initiation (INIT_LEN bytes) or enrollment initiation (ENROLL_LEN
 * bytes, by its type byte), mac1 already checked: two DH operations. Null when it does not
 * authenticate or the payload has the wrong size for its type.
 */
export function readInitiation(
  crypto: CryptoBackend,
  ours: X25519KeyPair,
  msg: Uint8Array,
): ReadInitiation | null {
  let state: HandshakeState | null = null;
  try {
    const enroll = msg[0] === MSG_ENROLL;
    const mac1 = enroll ? ENROLL_MAC1 : INIT_MAC1;
    if (msg.length < (enroll ? ENROLL_LEN : INIT_LEN)) return null;
    state = new HandshakeState({
      crypto,
      protocolName: NOISE_PROTOCOL,
      initiator: false,
      prologue: PROLOGUE,
      staticKeyPair: ours,
    });
    const payload = state.readMessage(msg.subarray(INIT_NOISE, mac1));
    const remoteStatic = state.remoteStatic;
    if (payload.length !== TIMESTAMP_LEN + (enroll ? INVITE_ID_LEN : 0) || remoteStatic === null) {
      state.destroy();
      return null;
    }
    return {
      state,
      remoteStatic,
      timestamp: payload.subarray(0, TIMESTAMP_LEN),
      inviteId: enroll ? payload.subarray(TIMESTAMP_LEN) : null,
    };
  } catch {
    // readMessage() has already wiped the failed state.
    state?.destroy();
    return null;
  }
}

/**
 * Writes the response (header, indices, Noise message 2 with an empty payload) into
 * out[0, RESP_MAC1) and splits: the responder's transport keys. Consumes `state`.
 */
export function writeResponse(
  state: HandshakeState,
  psk: Uint8Array,
  senderIndex: number,
  receiverIndex: number,
  out: Uint8Array,
): TransportKeys {
  try {
    state.setPsk(psk);
    const m2 = state.writeMessage(EMPTY);
    if (m2.length !== RESP_NOISE_LEN)
      throw new AoegwError('ERR_HANDSHAKE', 'unexpected Noise message 2 length');
    writeHeader(out, 0, MSG_RESPONSE);
    writeU32(out, RESP_SENDER, senderIndex);
    writeU32(out, RESP_RECEIVER, receiverIndex);
    out.set(m2, RESP_NOISE);
    return state.split();
  } finally {
    state.destroy();
  }
}

/**
 * Reads a response (RESP_LEN bytes, mac1 checked, receiver index matched) into a fork of the
 * initiator's pending state. On success the pending state is destroyed and the transport keys are
 * returned; on failure (forgery, wrong PSK) the pending state is untouched and null is returned.
 */
export function readResponse(pending: HandshakeState, msg: Uint8Array): TransportKeys | null {
  if (msg.length < RESP_LEN) return null;
  let fork: HandshakeState;
  try {
    fork = pending.fork();
  } catch {
    return null;
  }
  try {
    const payload = fork.readMessage(msg.subarray(RESP_NOISE, RESP_MAC1));
    if (payload.length !== 0) return null;
    const keys = fork.split();
    pending.destroy();
    return keys;
  } catch {
    return null;
  } finally {
    fork.destroy();
  }
}

/**
 * Noise handshake patterns (spec rev 34, sections 7 and 9) and protocol-name parsing. Only the
 * patterns the tunnel uses (IK, IKpsk2) and the two the cacophony vectors also cover cheaply (NN, XX)
 * are defined; only the 25519_ChaChaPoly_BLAKE2b suite is accepted.
 */
import { AoegwError } from '../errors.js';

export type Token = 'e' | 's' | 'ee' | 'es' | 'se' | 'ss' | 'psk';

export interface HandshakePattern {
  /** e.g. 'IKpsk2'. */
  readonly name: string;
  /** Pre-message keys known before the handshake (only static keys in the patterns used here). */
  readonly initiatorPre: readonly 's'[];
  readonly responderPre: readonly 's'[];
  /** Message i is sent by the initiator when i is even, by the responder when odd. */
  readonly messages: readonly (readonly Token[])[];
  /** Any psk modifier: every "e" token then also does MixKey(e.public_key). */
  readonly psk: boolean;
}

type BasePattern = Omit<HandshakePattern, 'name' | 'psk'>;

const BASE_PATTERNS: Readonly<Record<string, BasePattern>> = {
  NN: { initiatorPre: [], responderPre: [], messages: [['e'], ['e', 'ee']] },
  IK: {
    initiatorPre: [],
    responderPre: ['s'],
    messages: [
      ['e', 'es', 's', 'ss'],
      ['e', 'ee', 'se'],
    ],
  },
  XX: {
    initiatorPre: [],
    responderPre: [],
    messages: [['e'], ['e', 'ee', 's', 'es'], ['s', 'se']],
  },
};

export const SUITE = '25519_ChaChaPoly_BLAKE2b';

/** 'IKpsk2' → IK with a psk token at the end of message 2; 'XXpsk0+psk3' etc. (section 9.2). */
export function handshakePattern(name: string): HandshakePattern {
  const m = /^([A-Z]+)((?:psk\d+)(?:\+psk\d+)*)?$/.exec(name);
  const base = m?.[1] === undefined ? undefined : BASE_PATTERNS[m[1]];
  if (m === null || base === undefined) {
    throw new AoegwError('ERR_HANDSHAKE', `unsupported Noise handshake pattern ${name}`);
  }
  const messages = base.messages.map((msg) => [...msg]);
  const modifiers = m[2] === undefined ? [] : m[2].split('+');
  for (const mod of modifiers) {
    const n = Number(mod.slice(3));
    if (n === 0) messages[0]!.unshift('psk');
    else if (n <= messages.length) messages[n - 1]!.push('psk');
    else throw new AoegwError('ERR_HANDSHAKE', `psk modifier ${mod} beyond the last message of ${name}`);
  }
  return { ...base, name, messages, psk: modifiers.length > 0 };
}

/** 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2b' → the IKpsk2 pattern; other suites are refused. */
export function parseProtocolName(protocolName: string): HandshakePattern {
  const parts = protocolName.split('_');
  if (parts.length !== 5 || parts[0] !== 'Noise' || parts.slice(2).join('_') !== SUITE) {
    throw new AoegwError('ERR_HANDSHAKE', `unsupported Noise protocol ${protocolName}`);
  }
  return handshakePattern(parts[1]!);
}

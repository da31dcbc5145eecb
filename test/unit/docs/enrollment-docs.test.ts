/**
 * docs/enrollment.md says what the code does: its example token decodes to the fields the text
 * gives, and its field table numbers the fields as token.ts encodes them.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeToken, encodeToken, TOKEN_PREFIX } from '../../../src/enroll/token.js';

const root = join(import.meta.dirname, '..', '..', '..');
const md = readFileSync(join(root, 'docs', 'enrollment.md'), 'utf8');

describe('docs/enrollment.md', () => {
  const example = md.match(new RegExp(`^${TOKEN_PREFIX.replace('.', '\\.')}[A-Za-z0-9_-]+$`, 'm'))?.[0];

  it('has an example token that decodes to what the text says', () => {
    expect(example).toBeDefined();
    const t = decodeToken(example!, Date.parse('2026-12-06T00:00:00Z'));
    const pub = readFileSync(join(root, 'keys-example', 'gateway-a.pub'), 'utf8').trim();
    expect(Buffer.from(t.inviterPublicKey).toString('base64')).toBe(pub);
    expect(t.endpoints).toEqual(['192.0.2.1:51820']);
    expect([...t.inviteId]).toEqual([...Array(16).keys()]);
    expect([...t.psk]).toEqual(Array(32).fill(0x11));
    expect(new Date(t.expiresUnixSec * 1000).toISOString()).toBe('2026-12-06T01:00:00.000Z');
    expect([t.inviterName, t.peerName]).toEqual(['gateway-a', 'site-b']);
    // And the encoder writes exactly it (one encoding per token).
    expect(encodeToken(t)).toBe(example);
  });

  it('lists the field numbers and wire types the code uses', () => {
    const rows = [...md.matchAll(/^\| (\d+) \| (\d)[^|]*\|/gm)].map((m) => [Number(m[1]), Number(m[2])]);
    expect(rows).toEqual([
      [1, 2],
      [2, 2],
      [3, 2],
      [4, 2],
      [5, 0],
      [6, 2],
      [7, 2],
      [15, 2],
    ]);
  });
});

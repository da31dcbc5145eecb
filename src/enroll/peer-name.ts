/**
 * A peer's name: the config's rule for peers[].name (config/gateway-config.ts checks the same),
 * here so the token and the enrollment file, below the config layer, can check it too.
 */
export const PEER_NAME_RULE = 'letters, digits, ".", "_" or "-" (1..64, starting with a letter or digit)';

export function isPeerName(s: unknown): s is string {
  return typeof s === 'string' && /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(s);
}

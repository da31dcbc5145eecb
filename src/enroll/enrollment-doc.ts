/**
 * The enrollment file's content as values, and the operations on it (pure: time is an argument,
 * each operation returns a new document). The file's format (version 1):
 *   {"version": 1,
 *    "invites": [{"id": BASE64URL(16), "psk": BASE64(32), "name": PEER, "allow": [GRANT...],
 *                 "expires": ISO, "created": ISO}],
 *    "peers": [objects with the schema of the config file's peers[] entries]}
 * Peers are validated by the config layer together with the config's own peers; here only the
 * list's shape is checked. Messages name the key, never the value of an id or a PSK.
 */
import { timingSafeEqual } from 'node:crypto';
import { AoegwError } from '../errors.js';
import { isPeerName, PEER_NAME_RULE } from './peer-name.js';
import { INVITE_ID_BYTES, PSK_BYTES } from './token.js';

export const ENROLLMENT_VERSION = 1;
export const MAX_PENDING_INVITES = 32;
/** Characters of the base64url id shown to operators and accepted by `invite cancel` (48 bits). */
export const ID_PREFIX_CHARS = 8;
export const MIN_CANCEL_PREFIX_CHARS = 4;

export interface InviteGrant {
  /** Targets as the config's peers[].allow[].targets spell them: "S.L" or an export name. */
  readonly targets: readonly string[];
  readonly access: 'ro' | 'rw';
}

export interface PendingInvite {
  readonly id: Uint8Array;
  /** Secret. */
  readonly psk: Uint8Array;
  /** The name the new peer gets. */
  readonly name: string;
  readonly allow: readonly InviteGrant[];
  readonly expiresAtMs: number;
  readonly createdAtMs: number;
}

export interface EnrollmentDoc {
  readonly invites: readonly PendingInvite[];
  /** Enrolled peers, raw: the config layer validates them. */
  readonly peers: readonly unknown[];
}

export const EMPTY_ENROLLMENT: EnrollmentDoc = { invites: [], peers: [] };

/** Thrown by parseEnrollment; the file layer adds the file name. */
export class EnrollmentFormatError extends Error {}

function bad(path: string, expected: string): never {
  throw new EnrollmentFormatError(`${path}: expected ${expected}`);
}

function record(v: unknown, path: string, keys: readonly string[]): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(path, 'an object');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!keys.includes(k)) bad(`${path}.${k}`, `one of the known keys (${keys.join(', ')})`);
  return o;
}

function bytesOf(v: unknown, path: string, encoding: 'base64' | 'base64url', len: number): Uint8Array {
  if (typeof v !== 'string') bad(path, `the ${encoding} of ${len} bytes`);
  const b = Buffer.alloc(len);
  // Canonical only: decoding is lenient (stray characters are skipped), so re-encode and compare.
  if (b.write(v, encoding) !== len || b.toString(encoding) !== v) {
    b.fill(0);
    bad(path, `the ${encoding} of ${len} bytes`);
  }
  return new Uint8Array(b.buffer, b.byteOffset, len);
}

function timeOf(v: unknown, path: string): number {
  const t = typeof v === 'string' ? Date.parse(v) : Number.NaN;
  if (!Number.isFinite(t)) bad(path, 'an ISO 8601 time such as "2026-12-06T01:00:00.000Z"');
  return t;
}

const TARGET_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function parseGrants(v: unknown, path: string): InviteGrant[] {
  if (!Array.isArray(v) || v.length === 0) bad(path, 'a non-empty list of grants');
  return v.map((g, i) => {
    const gp = `${path}[${i}]`;
    const o = record(g, gp, ['targets', 'access']);
    if (o.access !== 'ro' && o.access !== 'rw') bad(`${gp}.access`, '"ro" or "rw"');
    if (!Array.isArray(o.targets) || o.targets.length === 0)
      bad(`${gp}.targets`, 'a non-empty list of targets');
    const targets = o.targets.map((t, j) => {
      if (typeof t !== 'string' || !TARGET_RE.test(t))
        bad(`${gp}.targets[${j}]`, 'a target as "SHELF.SLOT" or an export name');
      return t;
    });
    return { targets, access: o.access };
  });
}

/** The document from the file's parsed JSON. Throws EnrollmentFormatError naming the key. */
export function parseEnrollment(json: unknown): EnrollmentDoc {
  const top = record(json, '(top level)', ['version', 'invites', 'peers']);
  if (top.version !== ENROLLMENT_VERSION)
    bad('version', `${ENROLLMENT_VERSION} (this aoegw reads version 1 only)`);
  const rawInvites = top.invites ?? [];
  const rawPeers = top.peers ?? [];
  if (!Array.isArray(rawInvites)) bad('invites', 'a list of invites');
  if (!Array.isArray(rawPeers)) bad('peers', 'a list of peers');
  rawPeers.forEach((p, i) => {
    if (typeof p !== 'object' || p === null || Array.isArray(p)) bad(`peers[${i}]`, 'an object (a peer)');
  });
  const ids = new Set<string>();
  const invites = rawInvites.map((raw, i): PendingInvite => {
    const path = `invites[${i}]`;
    const o = record(raw, path, ['id', 'psk', 'name', 'allow', 'expires', 'created']);
    const id = bytesOf(o.id, `${path}.id`, 'base64url', INVITE_ID_BYTES);
    const idText = o.id as string;
    if (ids.has(idText)) bad(`${path}.id`, 'an id no other invite has');
    ids.add(idText);
    if (!isPeerName(o.name)) bad(`${path}.name`, PEER_NAME_RULE);
    return {
      id,
      psk: bytesOf(o.psk, `${path}.psk`, 'base64', PSK_BYTES),
      name: o.name,
      allow: parseGrants(o.allow, `${path}.allow`),
      expiresAtMs: timeOf(o.expires, `${path}.expires`),
      createdAtMs: timeOf(o.created, `${path}.created`),
    };
  });
  return { invites, peers: rawPeers };
}

/** The JSON the file holds (version 1). */
export function enrollmentJson(doc: EnrollmentDoc): unknown {
  return {
    version: ENROLLMENT_VERSION,
    invites: doc.invites.map((inv) => ({
      id: inviteIdText(inv.id),
      psk: Buffer.from(inv.psk.buffer, inv.psk.byteOffset, inv.psk.length).toString('base64'),
      name: inv.name,
      allow: inv.allow.map((g) => ({ targets: [...g.targets], access: g.access })),
      expires: new Date(inv.expiresAtMs).toISOString(),
      created: new Date(inv.createdAtMs).toISOString(),
    })),
    peers: doc.peers,
  };
}

export function inviteIdText(id: Uint8Array): string {
  return Buffer.from(id.buffer, id.byteOffset, id.length).toString('base64url');
}

/** What operators see of an id: enough to tell invites apart and to cancel one. */
export function inviteIdPrefix(id: Uint8Array): string {
  return inviteIdText(id).slice(0, ID_PREFIX_CHARS);
}

/** Names of the enrolled peers (entries without a string name are the config layer's to report). */
export function enrolledPeerNames(doc: EnrollmentDoc): string[] {
  return doc.peers.flatMap((p) => {
    const name = (p as { name?: unknown }).name;
    return typeof name === 'string' ? [name] : [];
  });
}

export function pruneExpired(doc: EnrollmentDoc, nowMs: number): EnrollmentDoc {
  const invites = doc.invites.filter((inv) => inv.expiresAtMs > nowMs);
  return invites.length === doc.invites.length ? doc : { ...doc, invites };
}

function inviteError(why: string): AoegwError {
  return new AoegwError('ERR_INVITE', why);
}

/**
 * Adds a pending invite, first dropping the expired ones. Refuses (ERR_INVITE) an invite already
 * expired, a name that a pending invite or an enrolled peer has, and more than
 * MAX_PENDING_INVITES pending.
 */
export function addInvite(doc: EnrollmentDoc, invite: PendingInvite, nowMs: number): EnrollmentDoc {
  const live = pruneExpired(doc, nowMs);
  if (invite.expiresAtMs <= nowMs)
    throw inviteError(`the invite for ${invite.name} would be expired already`);
  if (invite.id.length !== INVITE_ID_BYTES || invite.psk.length !== PSK_BYTES) {
    throw inviteError(`an invite needs a ${INVITE_ID_BYTES}-byte id and a ${PSK_BYTES}-byte PSK`);
  }
  const same = live.invites.find((inv) => inv.name === invite.name);
  if (same) {
    throw inviteError(
      `an invite for ${invite.name} is already pending (id ${inviteIdPrefix(same.id)}, expires ${new Date(same.expiresAtMs).toISOString()}): cancel it first (aoegw invite cancel)`,
    );
  }
  if (enrolledPeerNames(live).includes(invite.name)) {
    throw inviteError(
      `${invite.name} is already an enrolled peer: pick another name or remove that peer first`,
    );
  }
  if (live.invites.some((inv) => timingSafeEqual(inv.id, invite.id))) {
    throw inviteError('an invite with this id is already pending');
  }
  if (live.invites.length >= MAX_PENDING_INVITES) {
    const next = Math.min(...live.invites.map((inv) => inv.expiresAtMs));
    throw inviteError(
      `${live.invites.length} invites are pending, the most allowed (${MAX_PENDING_INVITES}): cancel some (aoegw invite cancel) or wait for the first to expire at ${new Date(next).toISOString()}`,
    );
  }
  return { ...live, invites: [...live.invites, invite] };
}

/**
 * The pending, unexpired invite with this id, or null. Compares the id with every invite's in
 * constant time (no early exit), so timing tells a prober nothing about which bytes matched.
 */
export function findInvite(doc: EnrollmentDoc, id: Uint8Array, nowMs: number): PendingInvite | null {
  if (id.length !== INVITE_ID_BYTES) return null;
  let found: PendingInvite | null = null;
  for (const inv of doc.invites) {
    const same = inv.id.length === INVITE_ID_BYTES && timingSafeEqual(inv.id, id);
    if (same) found = inv;
  }
  return found !== null && found.expiresAtMs > nowMs ? found : null;
}

/** The document without the invite of this id (used up by an enrollment). ERR_INVITE if absent. */
export function burnInvite(doc: EnrollmentDoc, id: Uint8Array): EnrollmentDoc {
  const invites = doc.invites.filter((inv) => !(inv.id.length === id.length && timingSafeEqual(inv.id, id)));
  if (invites.length === doc.invites.length)
    throw inviteError('no pending invite has this id (cancelled or used already?)');
  return { ...doc, invites };
}

/**
 * What the daemon writes when an enrollment is confirmed: the invite burnt and the new peer
 * (a config peers[] object, with the invite's grants) added, in one document. ERR_INVITE when the
 * invite is no longer pending or the name is already an enrolled peer's.
 */
export function enrollPeer(
  doc: EnrollmentDoc,
  inviteId: Uint8Array,
  peer: { readonly name: string; readonly [key: string]: unknown },
): EnrollmentDoc {
  const burnt = burnInvite(doc, inviteId);
  if (enrolledPeerNames(burnt).includes(peer.name))
    throw inviteError(`${peer.name} is already an enrolled peer`);
  return { ...burnt, peers: [...burnt.peers, peer] };
}

/** Removes the one pending invite whose id starts with `prefix` (base64url, ≥ 4 characters). */
export function cancelInvite(
  doc: EnrollmentDoc,
  prefix: string,
): { doc: EnrollmentDoc; cancelled: PendingInvite } {
  if (prefix.length < MIN_CANCEL_PREFIX_CHARS || !/^[A-Za-z0-9_-]+$/.test(prefix)) {
    throw new AoegwError(
      'ERR_USAGE',
      `an invite id prefix is at least ${MIN_CANCEL_PREFIX_CHARS} base64url characters, as \`aoegw invite list\` shows it`,
    );
  }
  const hits = doc.invites.filter((inv) => inviteIdText(inv.id).startsWith(prefix));
  if (hits.length === 0) throw inviteError(`no pending invite has an id starting with ${prefix}`);
  if (hits.length > 1) {
    throw inviteError(
      `${hits.length} pending invites have an id starting with ${prefix}: give more characters`,
    );
  }
  const cancelled = hits[0]!;
  return { doc: { ...doc, invites: doc.invites.filter((inv) => inv !== cancelled) }, cancelled };
}

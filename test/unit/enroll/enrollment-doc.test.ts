import { describe, expect, it } from 'vitest';
import {
  addInvite,
  burnInvite,
  cancelInvite,
  EMPTY_ENROLLMENT,
  type EnrollmentDoc,
  enrollmentJson,
  enrollPeer,
  findInvite,
  inviteIdPrefix,
  inviteIdText,
  MAX_PENDING_INVITES,
  type PendingInvite,
  parseEnrollment,
  pruneExpired,
} from '../../../src/enroll/enrollment-doc.js';

const NOW = Date.parse('2026-12-06T00:00:00.000Z');
const HOUR = 3_600_000;

function invite(n: number, patch: Partial<PendingInvite> = {}): PendingInvite {
  const id = new Uint8Array(16);
  id[0] = n >> 8;
  id[1] = n & 0xff;
  id[15] = 0x5a;
  return {
    id,
    psk: new Uint8Array(32).fill(0xc0 + (n % 16)),
    name: `site-${n}`,
    allow: [{ targets: ['1.1', 'disk-b1'], access: 'rw' }],
    expiresAtMs: NOW + HOUR,
    createdAtMs: NOW,
    ...patch,
  };
}

describe('enrollment document', () => {
  it('round-trips through its JSON form', () => {
    const doc: EnrollmentDoc = {
      invites: [invite(1), invite(2, { allow: [{ targets: ['e3.4'], access: 'ro' }] })],
      peers: [{ name: 'old', publicKey: 'x', allow: [] }],
    };
    const json = JSON.parse(JSON.stringify(enrollmentJson(doc)));
    expect(json.version).toBe(1);
    expect(json.invites[0]).toEqual({
      id: inviteIdText(doc.invites[0]!.id),
      psk: Buffer.alloc(32, 0xc1).toString('base64'),
      name: 'site-1',
      allow: [{ targets: ['1.1', 'disk-b1'], access: 'rw' }],
      expires: '2026-12-06T01:00:00.000Z',
      created: '2026-12-06T00:00:00.000Z',
    });
    expect(parseEnrollment(json)).toEqual(doc);
  });

  it('names the key of each fault and never quotes an id or a PSK', () => {
    const good = JSON.parse(JSON.stringify(enrollmentJson({ invites: [invite(1)], peers: [] })));
    const psk = good.invites[0].psk as string;
    // biome-ignore lint/suspicious/noExplicitAny: the tests break the JSON in every way
    const cases: [(j: any) => void, RegExp][] = [
      [
        (j) => {
          j.version = 2;
        },
        /^version: expected 1/,
      ],
      [
        (j) => {
          j.extra = 1;
        },
        /^\(top level\)\.extra: expected one of the known keys/,
      ],
      [
        (j) => {
          j.invites = {};
        },
        /^invites: expected a list/,
      ],
      [
        (j) => {
          j.peers = 'x';
        },
        /^peers: expected a list/,
      ],
      [
        (j) => {
          j.peers = [1];
        },
        /^peers\[0\]: expected an object/,
      ],
      [
        (j) => {
          j.invites[0].psk = psk.slice(1);
        },
        /^invites\[0\]\.psk: expected the base64 of 32 bytes$/,
      ],
      [
        (j) => {
          j.invites[0].psk = `${psk.slice(0, -2)}!=`;
        },
        /^invites\[0\]\.psk: expected the base64/,
      ],
      [
        (j) => {
          j.invites[0].id = 'AAAA';
        },
        /^invites\[0\]\.id: expected the base64url of 16 bytes/,
      ],
      [(j) => j.invites.push({ ...j.invites[0] }), /^invites\[1\]\.id: expected an id no other invite has/],
      [
        (j) => {
          j.invites[0].name = 'a b';
        },
        /^invites\[0\]\.name: expected letters/,
      ],
      [
        (j) => {
          j.invites[0].allow = [];
        },
        /^invites\[0\]\.allow: expected a non-empty list/,
      ],
      [
        (j) => {
          j.invites[0].allow[0].access = 'wo';
        },
        /^invites\[0\]\.allow\[0\]\.access: expected "ro" or "rw"/,
      ],
      [
        (j) => {
          j.invites[0].allow[0].targets = ['a b'];
        },
        /^invites\[0\]\.allow\[0\]\.targets\[0\]: expected a target/,
      ],
      [
        (j) => {
          j.invites[0].expires = 'soon';
        },
        /^invites\[0\]\.expires: expected an ISO 8601 time/,
      ],
      [
        (j) => {
          j.invites[0].secret = 'x';
        },
        /^invites\[0\]\.secret: expected one of the known keys/,
      ],
    ];
    for (const [mutate, re] of cases) {
      const j = structuredClone(good);
      mutate(j);
      let msg = '';
      try {
        parseEnrollment(j);
      } catch (e) {
        msg = (e as Error).message;
      }
      expect(msg).toMatch(re);
      expect(msg).not.toContain(psk.slice(0, 10));
      expect(msg).not.toContain(good.invites[0].id);
    }
  });

  it('addInvite appends, prunes the expired, and refuses a taken name or an expired invite', () => {
    const expired = invite(1, { expiresAtMs: NOW - 1 });
    let doc: EnrollmentDoc = { invites: [expired], peers: [{ name: 'site-9' }] };
    doc = addInvite(doc, invite(2), NOW);
    expect(doc.invites.map((i) => i.name)).toEqual(['site-2']);
    expect(() => addInvite(doc, invite(3, { name: 'site-2' }), NOW)).toThrow(
      expect.objectContaining({
        code: 'ERR_INVITE',
        message: expect.stringMatching(/invite for site-2 is already pending \(id \S{8},/),
      }),
    );
    expect(() => addInvite(doc, invite(9), NOW)).toThrow(/site-9 is already an enrolled peer/);
    expect(() => addInvite(doc, invite(4, { expiresAtMs: NOW }), NOW)).toThrow(/would be expired already/);
    expect(() => addInvite(doc, invite(2, { name: 'other' }), NOW)).toThrow(
      /an invite with this id is already pending/,
    );
  });

  it(`addInvite caps pending invites at ${MAX_PENDING_INVITES}, counting only unexpired ones`, () => {
    let doc: EnrollmentDoc = EMPTY_ENROLLMENT;
    for (let i = 0; i < MAX_PENDING_INVITES; i++)
      doc = addInvite(doc, invite(i, { expiresAtMs: NOW + HOUR + i }), NOW);
    expect(() => addInvite(doc, invite(100), NOW)).toThrow(
      expect.objectContaining({
        code: 'ERR_INVITE',
        message: expect.stringMatching(
          /32 invites are pending, the most allowed \(32\): cancel some .* at 2026-12-06T01:00:00\.000Z/,
        ),
      }),
    );
    // Once the first has expired there is room again.
    const later = addInvite(doc, invite(100, { expiresAtMs: NOW + 2 * HOUR }), NOW + HOUR);
    expect(later.invites).toHaveLength(MAX_PENDING_INVITES);
    expect(later.invites.some((i) => i.name === 'site-0')).toBe(false);
  });

  it('findInvite matches the whole id among all invites, and not once expired', () => {
    const doc: EnrollmentDoc = {
      invites: [invite(1), invite(2), invite(3, { expiresAtMs: NOW - 1 })],
      peers: [],
    };
    expect(findInvite(doc, invite(2).id, NOW)?.name).toBe('site-2');
    expect(findInvite(doc, invite(3).id, NOW)).toBeNull();
    const near = Uint8Array.from(invite(2).id);
    near[15]! ^= 1;
    expect(findInvite(doc, near, NOW)).toBeNull();
    expect(findInvite(doc, invite(2).id.subarray(0, 15), NOW)).toBeNull();
    expect(findInvite(doc, invite(2).id, NOW + HOUR)).toBeNull();
  });

  it('burnInvite removes exactly that invite, and says when there is none', () => {
    const doc: EnrollmentDoc = { invites: [invite(1), invite(2)], peers: [] };
    expect(burnInvite(doc, invite(1).id).invites.map((i) => i.name)).toEqual(['site-2']);
    expect(() => burnInvite(burnInvite(doc, invite(1).id), invite(1).id)).toThrow(
      expect.objectContaining({
        code: 'ERR_INVITE',
        message: expect.stringMatching(/no pending invite has this id/),
      }),
    );
  });

  it('enrollPeer burns the invite and adds the peer in one step', () => {
    const doc: EnrollmentDoc = { invites: [invite(1), invite(2)], peers: [{ name: 'old' }] };
    const peer = { name: 'site-1', publicKey: 'k', allow: [{ targets: ['1.1'], access: 'rw' }] };
    const next = enrollPeer(doc, invite(1).id, peer);
    expect(next.invites.map((i) => i.name)).toEqual(['site-2']);
    expect(next.peers).toEqual([{ name: 'old' }, peer]);
    expect(() => enrollPeer(next, invite(1).id, peer)).toThrow(/no pending invite has this id/);
    expect(() => enrollPeer(doc, invite(2).id, { name: 'old' })).toThrow(/old is already an enrolled peer/);
  });

  it('cancelInvite takes a unique id prefix of at least 4 characters', () => {
    const a = invite(1);
    const b = invite(2);
    const doc: EnrollmentDoc = { invites: [a, b], peers: [] };
    const r = cancelInvite(doc, inviteIdPrefix(b.id));
    expect(r.cancelled.name).toBe('site-2');
    expect(r.doc.invites).toEqual([a]);
    // Too short, not base64url, unknown, ambiguous.
    expect(() => cancelInvite(doc, 'AAA')).toThrow(expect.objectContaining({ code: 'ERR_USAGE' }));
    expect(() => cancelInvite(doc, 'AA==AA')).toThrow(expect.objectContaining({ code: 'ERR_USAGE' }));
    expect(() => cancelInvite(doc, 'zzzzzz')).toThrow(/no pending invite has an id starting with zzzzzz/);
    const twins: EnrollmentDoc = {
      invites: [invite(1), invite(1, { id: Uint8Array.from([...invite(1).id.subarray(0, 15), 0]) })],
      peers: [],
    };
    expect(() => cancelInvite(twins, inviteIdPrefix(a.id))).toThrow(
      /2 pending invites have an id starting with/,
    );
  });

  it('pruneExpired keeps the document when nothing expired', () => {
    const doc: EnrollmentDoc = { invites: [invite(1)], peers: [] };
    expect(pruneExpired(doc, NOW)).toBe(doc);
    expect(pruneExpired(doc, NOW + HOUR).invites).toEqual([]);
  });
});

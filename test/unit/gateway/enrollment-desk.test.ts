import { describe, expect, it } from 'vitest';
import {
  EnrollmentDesk,
  type InviteStore,
  type PendingInvite,
} from '../../../src/gateway/enrollment-desk.js';
import { lineLog } from '../../../src/log.js';

const id = (n: number) => new Uint8Array(16).fill(n);
const psk = (n: number) => new Uint8Array(32).fill(n);
const KEY = new Uint8Array(32).fill(9);

function store(invites: PendingInvite[], fail?: string) {
  const pins: { id: Uint8Array; key: Uint8Array }[] = [];
  const unpins: string[] = [];
  const s: InviteStore = {
    unpin: (invite) => {
      unpins.push(invite.name);
    },
    load: () => invites.map((i) => ({ ...i, psk: Uint8Array.from(i.psk) })),
    pin: (i, key) => {
      if (fail) throw new Error(fail);
      pins.push({ id: Uint8Array.from(i), key: Uint8Array.from(key) });
    },
  };
  return { s, pins, unpins };
}

describe('EnrollmentDesk', () => {
  const T = 1_800_000_000_000;
  const invites = [
    { id: id(1), psk: psk(1), name: 'one', expiresAtMs: T + 1000 },
    { id: id(2), psk: psk(2), name: 'two', expiresAtMs: T - 1 },
  ];

  it('admits a live invite, not an expired or unknown one', () => {
    const { s } = store(invites);
    const desk = new EnrollmentDesk({ store: s, now: () => T });
    expect(desk.admit(id(1), KEY)).toEqual({ psk: psk(1), name: 'one' });
    expect(desk.admit(id(2), KEY)).toBeNull();
    expect(desk.admit(id(3), KEY)).toBeNull();
    expect(desk.admit(new Uint8Array(15), KEY)).toBeNull();
    expect(desk.pending).toBe(1);
  });

  it('pins once through the store, zeroes the PSK and burns the invite', () => {
    const { s, pins } = store(invites);
    const desk = new EnrollmentDesk({ store: s, now: () => T });
    const admitted = desk.admit(id(1), KEY)!;
    expect(desk.pin(KEY, id(1))).toBe(true);
    expect(pins).toEqual([{ id: id(1), key: KEY }]);
    expect(admitted.psk.every((b) => b === 0)).toBe(true);
    expect(desk.admit(id(1), KEY)).toBeNull();
    expect(desk.pin(KEY, id(1))).toBe(false);
    expect([desk.pinned, desk.refused]).toEqual([1, 1]);
  });

  it('an invite that expired during the handshake, or a store that fails, pins nothing', () => {
    let now = T;
    const { s, pins } = store(invites);
    const desk = new EnrollmentDesk({ store: s, now: () => now });
    expect(desk.admit(id(1), KEY)).not.toBeNull();
    now = T + 1000;
    expect(desk.pin(KEY, id(1))).toBe(false);
    expect(pins).toHaveLength(0);
    const failing = new EnrollmentDesk({ store: store(invites, 'disk full').s, now: () => T });
    const lines: string[] = [];
    const logged = new EnrollmentDesk({
      store: store(invites, 'disk full').s,
      now: () => T,
      log: lineLog((l) => lines.push(l)),
    });
    expect(failing.pin(KEY, id(1))).toBe(false);
    expect(logged.pin(KEY, id(1))).toBe(false);
    expect(lines[0]).toMatch(/enrollment of one refused: disk full/);
    // Still live: the operator can fix the disk and the enrollee retry.
    expect(logged.admit(id(1), KEY)).not.toBeNull();
  });

  it('a pin the running gateway cannot apply is undone; the invite stays live', () => {
    const { s, pins, unpins } = store(invites);
    const desk = new EnrollmentDesk({ store: s, now: () => T });
    expect(desk.pin(KEY, id(1), () => false)).toBe(false);
    expect(pins).toHaveLength(1);
    expect(unpins).toEqual(['one']);
    expect(desk.admit(id(1), KEY)?.psk).toEqual(psk(1));
    expect(desk.pin(KEY, id(1), () => true)).toBe(true);
    expect([desk.pinned, desk.refused]).toEqual([1, 1]);
  });

  it('reload replaces the invites and zeroes the old PSKs', () => {
    const { s } = store(invites);
    const desk = new EnrollmentDesk({ store: s, now: () => T });
    const old = desk.admit(id(1), KEY)!;
    desk.reload();
    expect(old.psk.every((b) => b === 0)).toBe(true);
    expect(desk.admit(id(1), KEY)?.psk).toEqual(psk(1));
  });
});

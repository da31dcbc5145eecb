/**
 * The inviter's side of enrollment (docs/protocol.md 5.7), between the tunnel's hooks and the
 * enrollment file: which invites are live, whether an enrollment initiation names one (compared in
 * constant time), and pinning the peer once it proved the PSK. The file itself is the store's
 * business (config/enrollment-file.ts through cli/cmd-run.ts): this class holds only the live
 * invites in memory, zeroing each PSK when it is replaced or burned.
 */
import { timingSafeEqual } from 'node:crypto';
import { type Log, silentLog } from '../log.js';
import type { EnrollmentAdmission } from '../tunnel/endpoint.js';

export interface PendingInvite {
  readonly id: Uint8Array;
  readonly psk: Uint8Array;
  /** The name the new peer gets. */
  readonly name: string;
  /** Wall-clock expiry (Unix ms). */
  readonly expiresAtMs: number;
}

export interface InviteStore<I extends PendingInvite = PendingInvite> {
  /** The pending invites as the file holds them now. */
  load(): I[];
  /**
   * Durably burn invite `id` and pin `publicKey` as the peer it names, with its grants. Throws
   * (saying why) when it cannot; then nothing changed.
   */
  pin(id: Uint8Array, publicKey: Uint8Array): void;
  /** Undo pin(): the invite pending again, the peer gone. Throws when it cannot. */
  unpin(invite: I, publicKey: Uint8Array): void;
}

export interface EnrollmentDeskOptions<I extends PendingInvite = PendingInvite> {
  readonly store: InviteStore<I>;
  /** Wall clock, Unix ms (invites expire in real time, not in the monotonic one). */
  readonly now?: () => number;
  readonly log?: Log;
}

export class EnrollmentDesk<I extends PendingInvite = PendingInvite> {
  private invites: I[] = [];
  private readonly now: () => number;
  private readonly log: Log;
  /** Enrollments pinned and refused since start (status). */
  pinned = 0;
  refused = 0;

  constructor(private readonly opts: EnrollmentDeskOptions<I>) {
    this.now = opts.now ?? Date.now;
    this.log = opts.log ?? silentLog;
    this.reload();
  }

  /** Re-reads the invites (after `aoegw invite`, a cancel, or SIGHUP). Keeps the old ones if it fails. */
  reload(): void {
    const fresh = this.opts.store.load();
    this.forget();
    this.invites = fresh;
  }

  get pending(): number {
    return this.invites.filter((i) => i.expiresAtMs > this.now()).length;
  }

  /**
   * The tunnel's admitEnrollment hook: the live invite named by `id`, or null. Every invite is
   * compared, whatever matched, so the time taken says nothing about which (or whether) one did.
   */
  admit(id: Uint8Array, _publicKey: Uint8Array): EnrollmentAdmission | null {
    const found = this.find(id);
    return found === null ? null : { psk: found.psk, name: found.name };
  }

  /**
   * The tunnel's enrolled hook: the peer proved the PSK of invite `id`. Burns the invite and pins
   * the peer through the store, then `apply` makes it live; false (the tunnel then drops the peer)
   * when the invite is gone, the store fails, or apply fails — then the pin is undone and the
   * invite stays live: a failed enrollment changes nothing.
   */
  pin(publicKey: Uint8Array, id: Uint8Array, apply: () => boolean = () => true): boolean {
    const invite = this.find(id);
    if (invite === null) {
      // Expired or cancelled between the initiation and the proof.
      this.refused++;
      this.log.warn(`enrollment refused: the invite expired or was cancelled during the handshake`);
      return false;
    }
    try {
      this.opts.store.pin(invite.id, publicKey);
    } catch (e) {
      this.refused++;
      this.log.warn(`enrollment of ${invite.name} refused: ${(e as Error).message}`, { invite: invite.name });
      return false;
    }
    let applied = false;
    try {
      applied = apply();
    } catch (e) {
      this.log.error(`enrollment of ${invite.name}: ${(e as Error).message}`, { invite: invite.name });
    }
    if (!applied) {
      this.refused++;
      try {
        this.opts.store.unpin(invite, publicKey);
        this.log.warn(
          `enrollment of ${invite.name} not applied to the running gateway: undone, the invite stays pending`,
        );
      } catch (e) {
        this.log.error(
          `enrollment of ${invite.name} not applied, and undoing it failed (${(e as Error).message}): check the enrollment file`,
        );
      }
      return false;
    }
    this.pinned++;
    this.invites = this.invites.filter((i) => i !== invite);
    invite.psk.fill(0);
    this.log.info(`enrolled ${invite.name} (${Buffer.from(publicKey).toString('base64')}); invite burned`, {
      invite: invite.name,
    });
    return true;
  }

  /** Zeroes every PSK held. */
  forget(): void {
    for (const i of this.invites) i.psk.fill(0);
    this.invites = [];
  }

  private find(id: Uint8Array): I | null {
    const now = this.now();
    let found: I | null = null;
    for (const inv of this.invites) {
      const same = inv.id.length === id.length && timingSafeEqual(inv.id, id);
      if (same && inv.expiresAtMs > now && found === null) found = inv;
    }
    return found;
  }
}

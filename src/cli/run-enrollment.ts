/**
 * The running daemon's half of enrollment, wired from the files (docs/protocol.md 5.7): invites
 * come from the enrollment file; a peer that proved an invite's PSK is written into that file
 * (invite burned, peer added with the invite's grants, validated with the config, under the file's
 * lock) and then made live by adding that one peer to the running gateway (adopting its tunnel
 * session); if that fails the file is put back as it was.
 */
import { editEnrollmentFile } from '../config/config-edit.js';
import { loadGatewayConfig } from '../config/gateway-config.js';
import { formatPublicKey } from '../config/key-file.js';
import { enrollPeer, findInvite, type PendingInvite } from '../enroll/enrollment-doc.js';
import { loadEnrollment } from '../enroll/enrollment-file.js';
import { AoegwError } from '../errors.js';
import type { Gateway } from '../gateway/daemon.js';
import { EnrollmentDesk } from '../gateway/enrollment-desk.js';
import type { Log } from '../log.js';

export function openEnrollmentDesk(
  configFile: string,
  enrollmentFile: string,
  log: Log,
): EnrollmentDesk<PendingInvite> {
  return new EnrollmentDesk({
    log,
    store: {
      load: () => [...loadEnrollment(enrollmentFile).invites],
      pin: (id, publicKey) => {
        editEnrollmentFile(configFile, (doc) => {
          const invite = findInvite(doc, id, Date.now());
          if (!invite) throw new AoegwError('ERR_INVITE', 'the invite is no longer in the enrollment file');
          return enrollPeer(doc, id, {
            name: invite.name,
            publicKey: formatPublicKey(publicKey),
            allow: invite.allow.map((g) => ({ targets: [...g.targets], access: g.access })),
          });
        });
      },
      unpin: (invite, publicKey) => {
        const key = formatPublicKey(publicKey);
        editEnrollmentFile(configFile, (doc) => ({
          invites: [...doc.invites, invite],
          peers: doc.peers.filter((p) => (p as { publicKey?: unknown }).publicKey !== key),
        }));
      },
    },
  });
}

/**
 * Makes the peer just pinned in the enrollment file (found by its key) live in the running
 * gateway: the running spec plus that peer, so edits of the config waiting for their own reload
 * are not applied behind the operator's back. False (logged) when it cannot.
 */
export function addEnrolledPeer(gw: Gateway, configFile: string, publicKey: Uint8Array, log: Log): boolean {
  const key = formatPublicKey(publicKey);
  const onDisk = loadGatewayConfig(configFile).peers.find((p) => formatPublicKey(p.publicKey) === key);
  if (!onDisk) {
    log.error('enrollment: the pinned peer is not in the enrollment file after writing it');
    return false;
  }
  const running = gw.currentSpec;
  const r = gw.reload({ ...running, peers: [...running.peers, onDisk] });
  if (!r.ok) log.error(`enrollment: the running gateway refused the new peer: ${r.errors.join('; ')}`);
  else log.info(`reload: ${r.summary}`);
  return r.ok;
}

/**
 * The running daemon's half of enrollment, wired from the files (docs/protocol.md 5.7): invites
 * come from the enrollment file; a peer that proved an invite's PSK is written into that file
 * (invite burned, peer added with the invite's grants, validated with the config, under the file's
 * lock) and then made live by a reload of the whole config, which adopts its tunnel session.
 */
import { editEnrollmentFile } from '../config/config-edit.js';
import { formatPublicKey } from '../config/key-file.js';
import { enrollPeer, findInvite } from '../enroll/enrollment-doc.js';
import { loadEnrollment } from '../enroll/enrollment-file.js';
import { AoegwError } from '../errors.js';
import { EnrollmentDesk } from '../gateway/enrollment-desk.js';

export function openEnrollmentDesk(
  configFile: string,
  enrollmentFile: string,
  log: (line: string) => void,
): EnrollmentDesk {
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
    },
  });
}

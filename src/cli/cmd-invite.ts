/**
 * `aoegw invite`: records a pending invite in the enrollment file and prints its token (stdout:
 * the token alone, for scripts and copy-paste; stderr: what it grants, for the operator).
 * `invite list` and `invite cancel` manage the pending ones. After a change the running daemon is
 * asked to reload (control/notify.ts), so that it knows the invites. The PSK goes only into the
 * token and the 0600 enrollment file: never stderr, argv, or an error message.
 */
import { randomFillSync } from 'node:crypto';
import type { Command } from 'commander';
import { loadGatewayConfig } from '../config/gateway-config.js';
import { loadKeyFile } from '../config/key-file.js';
import { parseShelfSlot } from '../config/validate.js';
import { type NotifyResult, notifyDaemon } from '../control/notify.js';
import { formatEndpoint, isWildcardAddress, parseEndpoint } from '../enroll/endpoint.js';
import {
  addInvite,
  cancelInvite,
  type InviteGrant,
  inviteIdPrefix,
  type PendingInvite,
  pruneExpired,
} from '../enroll/enrollment-doc.js';
import { enrollmentPathOf, loadEnrollment, updateEnrollment } from '../enroll/enrollment-file.js';
import { isPeerName, PEER_NAME_RULE } from '../enroll/peer-name.js';
import { encodeToken, INVITE_ID_BYTES, MAX_ENDPOINTS, PSK_BYTES } from '../enroll/token.js';
import { AoegwError } from '../errors.js';
import type { GatewaySpec } from '../gateway/gateway-spec.js';
import { loadCrypto } from '../tunnel/crypto.js';
import { printTable } from './table.js';

export const DEFAULT_EXPIRY_MS = 3_600_000;
export const MAX_EXPIRY_MS = 7 * 86_400_000;
const MIN_EXPIRY_MS = 60_000;

function usage(why: string): AoegwError {
  return new AoegwError('ERR_USAGE', why);
}

/** "30m", "1h", "2d", "90s" → ms, within 1 minute .. 7 days. */
export function parseExpiry(s: string): number {
  const m = /^(\d{1,6})([smhd])$/.exec(s);
  const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  const ms = m ? Number(m[1]) * unit[m[2] as keyof typeof unit] : Number.NaN;
  if (!(ms >= MIN_EXPIRY_MS && ms <= MAX_EXPIRY_MS)) {
    throw usage(`--expires '${s}': expected a duration from 1m to 7d such as 30m, 1h or 2d`);
  }
  return ms;
}

/**
 * One --allow: "TARGET[,TARGET...][:ro|:rw]" (default ro, as the config's peers[].allow), each
 * TARGET a built-in export by "S.L" or name, or a forwarded "S.L" (the config's rule for grants).
 */
export function parseAllow(s: string, spec: GatewaySpec): InviteGrant {
  const m = /^([^:]+?)(?::(ro|rw))?$/.exec(s);
  if (!m) throw usage(`--allow '${s}': expected TARGET[,TARGET...][:ro|:rw], e.g. 1.1,disk-b1:rw`);
  const targets = m[1]!.split(',').map((t) => {
    const ss = parseShelfSlot(t);
    if (ss) {
      const ok =
        spec.exports.some((e) => e.shelf === ss.shelf && e.slot === ss.slot) ||
        spec.forwards.some((f) => f.targets.some((x) => x.shelf === ss.shelf && x.slot === ss.slot));
      if (!ok)
        throw usage(`--allow '${s}': ${t} is not a built-in export or a forwarded target of this gateway`);
      return `${ss.shelf}.${ss.slot}`;
    }
    if (!spec.exports.some((e) => e.name === t)) {
      throw usage(
        `--allow '${s}': '${t}' is neither "SHELF.SLOT" of a built-in export or forwarded target, nor a built-in export's name`,
      );
    }
    return t;
  });
  return { targets, access: m[2] === 'rw' ? 'rw' : 'ro' };
}

/** --endpoint values, or the config's listen address when it is one a peer can send to. */
export function inviteEndpoints(given: readonly string[], spec: GatewaySpec): string[] {
  if (given.length > MAX_ENDPOINTS) throw usage(`at most ${MAX_ENDPOINTS} --endpoint`);
  for (const e of given) {
    if (parseEndpoint(e) === null) {
      throw usage(`--endpoint '${e}': expected IPv4:PORT or [IPv6]:PORT (a literal address, not a wildcard)`);
    }
  }
  if (given.length > 0) return [...given];
  const l = spec.listen;
  if (l === undefined)
    throw usage('the config has no listen address, so no peer can reach this gateway: set listen');
  if (isWildcardAddress(l.address) || l.port === 0) {
    throw usage(
      `the config listens on ${formatEndpoint(l)}, which a peer cannot send to: give the address peers reach this gateway at with --endpoint HOST:PORT`,
    );
  }
  return [formatEndpoint(l)];
}

function grantsText(allow: readonly InviteGrant[]): string {
  return allow.map((g) => `${g.targets.join(',')}:${g.access}`).join(' ');
}

function untilText(expiresAtMs: number, nowMs: number): string {
  const min = Math.round((expiresAtMs - nowMs) / 60_000);
  const rel = min < 120 ? `${min} min` : `${Math.round(min / 60)} h`;
  return `${new Date(expiresAtMs).toISOString()} (in ${rel})`;
}

/** The daemon's answer to the reload: a refusal leaves the change on disk but not in effect, so exit 1. */
function reportNotice(n: NotifyResult): void {
  process.stderr.write(`${n.summary}\n`);
  if (n.state === 'failed') {
    for (const e of n.errors) process.stderr.write(`  ${e}\n`);
    process.stderr.write('the change is saved; fix the config and run `aoegw reload`\n');
    process.exitCode = 1;
  }
}

interface CreateOptions {
  config: string;
  name: string;
  allow: string[];
  expires: string;
  endpoint: string[];
}

async function createInvite(o: CreateOptions): Promise<void> {
  const spec = loadGatewayConfig(o.config);
  if (!isPeerName(o.name)) throw usage(`--name '${o.name}': expected ${PEER_NAME_RULE}`);
  if (spec.peers.some((p) => p.name === o.name)) {
    throw usage(`--name '${o.name}': the config already has a peer of that name`);
  }
  if (o.allow.length === 0) throw usage('give at least one --allow TARGET[,TARGET...][:ro|:rw]');
  const allow = o.allow.map((a) => parseAllow(a, spec));
  const lifeMs = parseExpiry(o.expires);
  const endpoints = inviteEndpoints(o.endpoint, spec);
  if (spec.privateKeyFile === undefined) {
    throw new AoegwError(
      'ERR_CONFIG',
      `config ${o.config}: privateKeyFile is not set: an invite carries this gateway's public key (create a key with aoegw keygen)`,
    );
  }
  const crypto = await loadCrypto();
  const pair = loadKeyFile(spec.privateKeyFile, crypto);
  crypto.memzero(pair.secretKey);

  const nowMs = Date.now();
  // Whole seconds, so the token (seconds) and the file (ms) say the same instant.
  const expiresUnixSec = Math.floor((nowMs + lifeMs) / 1000);
  const invite: PendingInvite = {
    id: randomFillSync(new Uint8Array(INVITE_ID_BYTES)),
    psk: randomFillSync(new Uint8Array(PSK_BYTES)),
    name: o.name,
    allow,
    expiresAtMs: expiresUnixSec * 1000,
    createdAtMs: nowMs,
  };
  try {
    // Encoded first: a token that cannot be made must not leave an invite behind.
    const token = encodeToken({
      inviterPublicKey: pair.publicKey,
      endpoints,
      inviteId: invite.id,
      psk: invite.psk,
      expiresUnixSec,
      inviterName: spec.name,
      peerName: o.name,
    });
    const path = enrollmentPathOf(spec);
    updateEnrollment(path, (doc) => addInvite(doc, invite, nowMs), nowMs);
    process.stdout.write(`${token}\n`);
    process.stderr.write(
      `invite ${inviteIdPrefix(invite.id)} for ${o.name}: ${grantsText(allow)}, via ${endpoints.join(' ')}, ` +
        `expires ${untilText(invite.expiresAtMs, nowMs)}; recorded in ${path}\n` +
        `give the token (stdout) to ${o.name} over a private channel: it is a secret until used or expired\n`,
    );
  } finally {
    invite.psk.fill(0);
  }
  reportNotice(await notifyDaemon(o.config));
}

function listInvites(o: { config: string }): void {
  const spec = loadGatewayConfig(o.config);
  const path = enrollmentPathOf(spec);
  const nowMs = Date.now();
  const doc = pruneExpired(loadEnrollment(path), nowMs);
  if (doc.invites.length === 0) {
    process.stderr.write(`no pending invites in ${path}\n`);
    return;
  }
  const rows = [['ID', 'NAME', 'GRANTS', 'EXPIRES']];
  for (const inv of doc.invites) {
    rows.push([inviteIdPrefix(inv.id), inv.name, grantsText(inv.allow), untilText(inv.expiresAtMs, nowMs)]);
  }
  process.stdout.write(`${printTable(rows)}\n`);
}

async function cancel(prefix: string, o: { config: string }): Promise<void> {
  const spec = loadGatewayConfig(o.config);
  const path = enrollmentPathOf(spec);
  let cancelled: PendingInvite | undefined;
  updateEnrollment(path, (doc) => {
    const r = cancelInvite(doc, prefix);
    cancelled = r.cancelled;
    return r.doc;
  });
  process.stderr.write(`cancelled invite ${inviteIdPrefix(cancelled!.id)} for ${cancelled!.name}\n`);
  reportNotice(await notifyDaemon(o.config));
}

const collect = (v: string, prev: string[]): string[] => [...prev, v];

export function registerInvite(program: Command): void {
  const invite = program
    .command('invite')
    .description(
      'invite a new peer: records a pending invite in the enrollment file and prints its one-line token (stdout); the new site runs `aoegw enroll TOKEN`',
    )
    .option('--config <file>', 'JSON gateway config')
    .option('--name <peer>', `the name the new peer gets here (${PEER_NAME_RULE})`)
    .option(
      '--allow <grant>',
      'what the peer may use: TARGET[,TARGET...][:ro|:rw] (default ro); TARGET is a built-in export as SHELF.SLOT or by name, or a forwarded SHELF.SLOT; repeatable, e.g. --allow 1.1,disk-b1:rw --allow 2.0',
      collect,
      [],
    )
    .option('--expires <duration>', 'how long the token is valid: 1m..7d, e.g. 30m, 1h, 2d', '1h')
    .option(
      '--endpoint <host:port>',
      `where the peer reaches this gateway (IPv4:PORT or [IPv6]:PORT; repeatable, at most ${MAX_ENDPOINTS}); default: the config's listen address unless it is a wildcard`,
      collect,
      [],
    )
    .action(async (o: Partial<CreateOptions>) => {
      if (o.config === undefined) throw usage("required option '--config <file>' not specified");
      if (o.name === undefined) throw usage("required option '--name <peer>' not specified");
      await createInvite(o as CreateOptions);
    });
  invite
    .command('list')
    .description('list the pending invites (id prefix, name, grants, expiry)')
    .requiredOption('--config <file>', 'JSON gateway config')
    .action((o: { config: string }) => listInvites(o));
  invite
    .command('cancel')
    .description('cancel a pending invite; its token stops working')
    .argument('<id-prefix>', 'the start of the invite id (at least 4 characters), as `invite list` shows it')
    .requiredOption('--config <file>', 'JSON gateway config')
    .action((prefix: string, o: { config: string }) => cancel(prefix, o));
}

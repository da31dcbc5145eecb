/**
 * `aoegw enroll TOKEN`: the new host's half of an invite (docs/operations.md, "Enrollment"). Checks
 * the token, handshakes with the inviter using the token's PSK (gateway/enroll-session.ts), and
 * only once the inviter confirmed (its hello and advertisement arrive, sent after it pinned us)
 * pins the inviter in our enrollment file, with imports of what it granted; then asks our daemon
 * to reload. A token that fails at any step changes nothing here.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { editEnrollmentFile } from '../config/config-edit.js';
import { loadGatewayConfig } from '../config/gateway-config.js';
import { formatPublicKey, loadKeyFile } from '../config/key-file.js';
import { parseShelfSlot } from '../config/validate.js';
import { notifyDaemon } from '../control/notify.js';
import { formatEndpoint, parseEndpoint } from '../enroll/endpoint.js';
import { isPeerName, PEER_NAME_RULE } from '../enroll/peer-name.js';
import { decodeToken } from '../enroll/token.js';
import { AoegwError } from '../errors.js';
import { enrollWithInviter, printable } from '../gateway/enroll-session.js';
import type { GatewaySpec } from '../gateway/gateway-spec.js';
import type { TargetAdvert } from '../gateway/peer-messages.js';
import { loadCrypto } from '../tunnel/crypto.js';
import { openCommandLog } from './daemon-log.js';

const MAX_TOKEN_INPUT = 4096;

function usage(why: string): AoegwError {
  return new AoegwError('ERR_USAGE', why);
}

/** The token from the argument, or from stdin for "-" (keeps its PSK out of argv and shell history). */
function tokenText(arg: string): string {
  if (arg !== '-') return arg.trim();
  const text = readFileSync(0, 'utf8');
  if (text.length > MAX_TOKEN_INPUT)
    throw new AoegwError('ERR_TOKEN', 'more than 4 KiB on stdin: not a token');
  return text.trim();
}

interface ImportChoice {
  remote: string;
  local: string;
}

/** Local addresses already in use by this gateway (exports, forwards, imports), as "S.L". */
function takenAddresses(spec: GatewaySpec): Set<string> {
  const taken = new Set<string>();
  for (const e of spec.exports) taken.add(`${e.shelf}.${e.slot}`);
  for (const f of spec.forwards) for (const t of f.targets) taken.add(`${t.shelf}.${t.slot}`);
  for (const p of spec.peers) for (const im of p.imports) taken.add(`${im.localShelf}.${im.localSlot}`);
  return taken;
}

/** --import REMOTE=LOCAL[,…] parsed and checked against this gateway before any handshake. */
function parseImportPairs(how: string, spec: GatewaySpec): ImportChoice[] {
  const taken = takenAddresses(spec);
  const seen = new Set<string>();
  return how.split(',').map((pair) => {
    const m = /^([^=]+)=([^=]+)$/.exec(pair);
    const local = m ? parseShelfSlot(m[2]) : null;
    if (!m || !local) throw usage(`--import '${pair}': expected REMOTE=LOCAL, e.g. disk-b1=7.1 or 1.1=7.1`);
    const at = `${local.shelf}.${local.slot}`;
    if (taken.has(at) || seen.has(at))
      throw usage(`--import '${pair}': e${at} is already used here; choose a free SHELF.SLOT`);
    seen.add(at);
    const ss = parseShelfSlot(m[1]);
    return { remote: ss ? `${ss.shelf}.${ss.slot}` : m[1]!, local: at };
  });
}

/**
 * The imports to write once the inviter has pinned us: "auto" presents each granted target at its
 * own address where that address is free here, "none" nothing, or the pairs given. The inviter is
 * committed by now, so nothing here fails: what cannot be imported is reported and skipped.
 */
function chooseImports(
  how: string,
  pairs: readonly ImportChoice[],
  granted: readonly TargetAdvert[],
  spec: GatewaySpec,
  warn: (line: string) => void,
): ImportChoice[] {
  const remoteOf = (t: TargetAdvert) => printable(t.name !== '' ? t.name : `${t.shelf}.${t.slot}`);
  if (how === 'none') return [];
  if (how !== 'auto') {
    return pairs.filter((p) => {
      const ss = parseShelfSlot(p.remote);
      const ok = granted.some((t) => (ss ? t.shelf === ss.shelf && t.slot === ss.slot : t.name === p.remote));
      if (!ok)
        warn(
          `not importing ${p.remote}: the inviter did not grant it (granted: ${granted.map(remoteOf).join(', ') || 'nothing'})`,
        );
      return ok;
    });
  }
  const taken = takenAddresses(spec);
  const out: ImportChoice[] = [];
  for (const t of granted) {
    const local = `${t.shelf}.${t.slot}`;
    if (taken.has(local)) {
      warn(
        `not importing ${remoteOf(t)}: e${local} is already used here (add it with \`aoegw peer\` or the config)`,
      );
      continue;
    }
    taken.add(local);
    out.push({ remote: t.name !== '' ? t.name : local, local });
  }
  return out;
}

export function registerEnroll(program: Command): void {
  program
    .command('enroll')
    .description(
      "enroll this gateway with the gateway that made TOKEN (`aoegw invite` there): handshake with the token's PSK, pin it as a peer, import what it granted",
    )
    .argument(
      '<token>',
      'the invite token, or "-" to read it on stdin (keeps it out of argv and shell history)',
    )
    .requiredOption('--config <file>', 'this gateway config (needs privateKeyFile and listen)')
    .option('--name <name>', "the name the inviter gets here (default: the inviter's own name)")
    .option(
      '--import <how>',
      'auto (granted targets at their own addresses), none, or REMOTE=LOCAL[,…]',
      'auto',
    )
    .option('--timeout <seconds>', 'seconds to wait for each endpoint of the token', '10')
    .action(async (arg: string, o: { config: string; name?: string; import: string; timeout: string }) => {
      const timeoutS = Number(o.timeout);
      if (!(Number.isInteger(timeoutS) && timeoutS >= 1 && timeoutS <= 300))
        throw usage(`--timeout '${o.timeout}': expected whole seconds from 1 to 300`);
      const token = decodeToken(tokenText(arg), Date.now());
      const crypto = await loadCrypto();
      try {
        const spec = loadGatewayConfig(o.config);
        if (!spec.privateKeyFile) {
          throw new AoegwError(
            'ERR_ENROLL',
            `config ${o.config} has no privateKeyFile: make a key with \`aoegw keygen FILE\` and set privateKeyFile`,
          );
        }
        if (!spec.listen) {
          throw new AoegwError(
            'ERR_ENROLL',
            `config ${o.config} has no listen address: set listen (e.g. "0.0.0.0:51880") so the daemon runs the tunnel`,
          );
        }
        const name = o.name ?? token.inviterName;
        if (!isPeerName(name)) throw usage(`--name '${name}': expected ${PEER_NAME_RULE}`);
        const inviterKey = formatPublicKey(token.inviterPublicKey);
        const already = spec.peers.find((p) => formatPublicKey(p.publicKey) === inviterKey);
        if (already) {
          throw new AoegwError(
            'ERR_ENROLL',
            `already enrolled: ${token.inviterName}'s key is peer ${already.name} here (\`aoegw peer show ${already.name}\`); nothing changed`,
          );
        }
        if (spec.peers.some((p) => p.name === name))
          throw usage(`a peer named ${name} exists already: choose another with --name`);
        if (o.import !== 'auto' && o.import !== 'none' && !o.import.includes('='))
          throw usage(`--import '${o.import}': expected auto, none or REMOTE=LOCAL[,…]`);
        // Checked now: once the inviter pinned us, the token is spent.
        const pairs = o.import === 'auto' || o.import === 'none' ? [] : parseImportPairs(o.import, spec);
        const endpoints = token.endpoints.map((e) => parseEndpoint(e)!);
        const keyPair = loadKeyFile(spec.privateKeyFile, crypto);
        const log = openCommandLog().child({ component: 'enroll' });
        let outcome: Awaited<ReturnType<typeof enrollWithInviter>>;
        try {
          outcome = await enrollWithInviter({
            crypto,
            keyPair,
            invite: {
              inviterPublicKey: token.inviterPublicKey,
              endpoints,
              inviteId: token.inviteId,
              psk: token.psk,
            },
            name: spec.name,
            perEndpointMs: timeoutS * 1000,
            log,
          });
        } finally {
          crypto.memzero(keyPair.secretKey);
        }
        let imports = chooseImports(o.import, pairs, outcome.targets, spec, (line) => log.warn(line));
        const peer = (imp: ImportChoice[]) => ({
          name,
          publicKey: inviterKey,
          endpoint: formatEndpoint(outcome.endpoint),
          ...(imp.length ? { imports: imp } : {}),
        });
        let written: ReturnType<typeof editEnrollmentFile>;
        try {
          written = editEnrollmentFile(o.config, (doc) => ({ ...doc, peers: [...doc.peers, peer(imports)] }));
        } catch (e) {
          if (imports.length === 0) {
            throw new AoegwError(
              'ERR_ENROLL',
              `${printable(outcome.gatewayName)} pinned this gateway, but writing it here failed: ${(e as Error).message}. ` +
                `Fix that and add the peer (name ${name}, publicKey ${inviterKey}, endpoint ${formatEndpoint(outcome.endpoint)}) with the config`,
            );
          }
          // The inviter is committed: keep the peer, drop the imports that did not validate.
          log.warn(`imports not written (${(e as Error).message}); the peer is pinned without them`);
          imports = [];
          written = editEnrollmentFile(o.config, (doc) => ({ ...doc, peers: [...doc.peers, peer(imports)] }));
        }
        const granted = outcome.targets
          .map((t) => `${printable(t.name || `${t.shelf}.${t.slot}`)} (${t.readOnly ? 'ro' : 'rw'})`)
          .join(', ');
        process.stdout.write(
          `enrolled with ${printable(outcome.gatewayName)} at ${formatEndpoint(outcome.endpoint)}; it is peer ${name} here (${written.file})\n` +
            `granted: ${granted || 'nothing yet'}\n` +
            (imports.length
              ? `imports: ${imports.map((i) => `${i.remote} as e${i.local}`).join(', ')}\n`
              : 'imports: none\n'),
        );
        const r = await notifyDaemon(o.config);
        process.stderr.write(
          `aoegw: ${r.summary}${r.state === 'failed' ? r.errors.map((e) => `\n  ${e}`).join('') : ''}\n`,
        );
        if (r.state === 'failed') process.exitCode = 1;
      } finally {
        crypto.memzero(token.psk);
      }
    });
}

/**
 * `aoegw peer list|show|remove|grant|revoke`: the peers of a gateway, from its config file and its
 * enrollment file. An edit goes to the file that holds the peer, through config-edit (validated
 * as a whole, atomic, the previous version kept).
 */
import type { Command } from 'commander';
import { editEnrollmentFile, editGatewayConfig, readGatewayConfigDoc } from '../config/config-edit.js';
import { readEnrolledPeers } from '../config/enrollment-peers.js';
import { loadGatewayConfig } from '../config/gateway-config.js';
import { Problems } from '../config/validate.js';
import { AoegwError } from '../errors.js';
import type { GatewaySpec, PeerSpec } from '../gateway/gateway-spec.js';
import {
  type ConfigOpts,
  canonicalizer,
  endpointLabel,
  parseTargetList,
  refLabel,
  reportEdit,
  withConfig,
} from './edit-common.js';
import { printTable } from './table.js';

type Access = 'ro' | 'rw';
interface RawGrant {
  targets?: unknown[];
  access?: Access;
}

/** A peer as the CLI shows it (--json): the config file's own form, plus where it is defined. */
export function peerJson(p: PeerSpec, spec: GatewaySpec, configFile: string) {
  return {
    name: p.name,
    source: p.source,
    file: p.source === 'enrolled' ? spec.enrollmentFile : configFile,
    publicKey: Buffer.from(p.publicKey).toString('base64'),
    endpoint: endpointLabel(p.endpoint),
    allow: p.allow.map((g) => ({ targets: g.targets.map(refLabel), access: g.access })),
    imports: p.imports.map((i) => ({
      remote: refLabel(i.remote),
      local: `${i.localShelf}.${i.localSlot}`,
      links: [...i.links],
    })),
    persistentKeepaliveMs: p.persistentKeepaliveMs,
  };
}

const grantsLabel = (p: PeerSpec) =>
  p.allow.map((g) => `${g.targets.map(refLabel).join(',')}:${g.access}`).join(' ') || '-';
const importsLabel = (p: PeerSpec) =>
  p.imports.map((i) => `${refLabel(i.remote)}->${i.localShelf}.${i.localSlot}`).join(' ') || '-';

function findSpec(spec: GatewaySpec, name: string): PeerSpec {
  const p = spec.peers.find((x) => x.name === name);
  if (!p)
    throw noSuchPeer(
      name,
      spec.peers.map((x) => x.name),
    );
  return p;
}

function noSuchPeer(name: string, names: string[]): AoegwError {
  return new AoegwError('ERR_USAGE', `no peer named "${name}" (peers: ${names.join(', ') || 'none'})`);
}

/** Where a peer is defined, from the files as they are (not validated: an edit may fix them). */
function locatePeer(
  configFile: string,
  name: string,
): { source: 'config' | 'enrolled'; doc: Record<string, unknown> } {
  const { doc, enrollmentFile } = readGatewayConfigDoc(configFile);
  const inConfig = Array.isArray(doc.peers) ? doc.peers : [];
  if (inConfig.some((p) => (p as { name?: unknown })?.name === name)) return { source: 'config', doc };
  const p = new Problems(`enrollment file ${enrollmentFile}`);
  const enrolled = readEnrolledPeers(p, enrollmentFile);
  if (p.count > 0) throw new AoegwError('ERR_CONFIG', p.lines().join('\n'));
  if (enrolled.some((e) => (e as { name?: unknown })?.name === name)) return { source: 'enrolled', doc };
  const names = [...inConfig, ...enrolled].map((e) => String((e as { name?: unknown })?.name));
  throw noSuchPeer(name, names);
}

/** Applies `change` to the peer's object in the file that holds it. */
function editPeer(
  configFile: string,
  name: string,
  change: (peers: Record<string, unknown>[], i: number) => void,
) {
  const { source } = locatePeer(configFile, name);
  const edit = (doc: unknown) => {
    const d = doc as { peers?: Record<string, unknown>[] };
    const peers = Array.isArray(d.peers) ? d.peers : [];
    const i = peers.findIndex((p) => p?.name === name);
    if (i < 0)
      throw noSuchPeer(
        name,
        peers.map((p) => String(p?.name)),
      );
    // Grants we cannot read are not guessed at: the file needs fixing by hand first.
    if (peers[i]!.allow !== undefined && !Array.isArray(peers[i]!.allow))
      throw new AoegwError('ERR_CONFIG', `peer ${name}: its allow is not a list; see aoegw config check`);
    change(peers, i);
    return d;
  };
  const r =
    source === 'config'
      ? editGatewayConfig(configFile, edit)
      : editEnrollmentFile(configFile, (doc) => {
          const d = edit({ peers: structuredClone([...doc.peers]) });
          return { ...doc, peers: d.peers ?? [] };
        });
  return { r, source };
}

/** "1.0,disk-a:rw" → targets and access (default ro). */
function parseGrant(s: string): { targets: string[]; access: Access } {
  const m = /^(.*):(ro|rw)$/.exec(s);
  return { targets: parseTargetList(m ? m[1]! : s, 'TARGETS'), access: (m?.[2] as Access) ?? 'ro' };
}

export function registerPeer(program: Command): void {
  const peer = program
    .command('peer')
    .description('list and edit the peers of a gateway (config and enrollment file)');

  withConfig(
    peer.command('list').description('list every peer: key, endpoint, grants, imports, where it is defined'),
  )
    .option('--json', 'print JSON')
    .action((o: ConfigOpts & { json?: boolean }) => {
      const spec = loadGatewayConfig(o.config);
      if (o.json) {
        const list = spec.peers.map((p) => peerJson(p, spec, o.config));
        process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
        return;
      }
      if (spec.peers.length === 0) {
        process.stdout.write(`no peers in ${o.config} or ${spec.enrollmentFile}\n`);
        return;
      }
      const rows = [['NAME', 'SOURCE', 'ENDPOINT', 'GRANTS', 'IMPORTS', 'PUBLIC KEY']];
      for (const p of spec.peers) {
        rows.push([
          p.name,
          p.source,
          endpointLabel(p.endpoint) ?? '-',
          grantsLabel(p),
          importsLabel(p),
          Buffer.from(p.publicKey).toString('base64'),
        ]);
      }
      process.stdout.write(`${printTable(rows)}\n`);
    });

  withConfig(peer.command('show').description('one peer in detail').argument('<name>'))
    .option('--json', 'print JSON')
    .action((name: string, o: ConfigOpts & { json?: boolean }) => {
      const spec = loadGatewayConfig(o.config);
      const p = findSpec(spec, name);
      const j = peerJson(p, spec, o.config);
      if (o.json) {
        process.stdout.write(`${JSON.stringify(j, null, 2)}\n`);
        return;
      }
      const lines = [
        `peer ${p.name} (${p.source === 'enrolled' ? 'enrolled, in' : 'in'} ${j.file})`,
        `  public key  ${j.publicKey}`,
        `  endpoint    ${j.endpoint ?? 'none (waits for the peer to connect)'}`,
        `  keepalive   ${p.persistentKeepaliveMs ? `${p.persistentKeepaliveMs} ms` : 'off'}`,
        `  grants      ${p.allow.length ? '' : 'none'}`.trimEnd(),
        ...j.allow.map(
          (g) => `    ${g.targets.join(', ')}: ${g.access === 'rw' ? 'read-write' : 'read-only'}`,
        ),
        `  imports     ${p.imports.length ? '' : 'none'}`.trimEnd(),
        ...j.imports.map(
          (i) => `    ${i.remote} as ${i.local} on ${i.links.length ? i.links.join(', ') : 'every link'}`,
        ),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });

  withConfig(
    peer.command('remove').description('remove a peer (from the file that defines it)').argument('<name>'),
  ).action(async (name: string, o: ConfigOpts) => {
    let had = '';
    const { r } = editPeer(o.config, name, (peers, i) => {
      const p = peers[i] as { allow?: RawGrant[]; imports?: { local?: unknown }[] };
      const grants = (p.allow ?? []).map((g) => `${(g.targets ?? []).join(',')}:${g.access ?? 'ro'}`);
      const imports = (p.imports ?? []).map((im) => String(im.local));
      had = ` (grants: ${grants.join(' ') || 'none'}; imports no longer presented: ${imports.join(', ') || 'none'})`;
      peers.splice(i, 1);
    });
    await reportEdit(o.config, r, `removed peer ${name}${had}`);
  });

  withConfig(
    peer
      .command('grant')
      .description(
        'let a peer use targets here: TARGETS is "S.L" or export names, comma-separated, then :ro or :rw (default ro)',
      )
      .argument('<name>')
      .argument('<targets>', 'e.g. 1.0,disk-b1:rw'),
  ).action(async (name: string, targetsArg: string, o: ConfigOpts) => {
    const { targets, access } = parseGrant(targetsArg);
    const canon = canonicalizer(readGatewayConfigDoc(o.config).doc.exports);
    const said: string[] = [];
    const { r } = editPeer(o.config, name, (peers, i) => {
      said.length = 0;
      const p = peers[i] as { allow?: RawGrant[] };
      const allow: RawGrant[] = p.allow ?? [];
      for (const t of targets) {
        const c = canon(t);
        const holding = allow.filter((g) => (g.targets ?? []).some((x) => canon(x) === c));
        const was = holding.some((g) => (g.access ?? 'ro') === 'rw') ? 'rw' : holding.length ? 'ro' : null;
        if (holding.length > 0 && holding.every((g) => (g.access ?? 'ro') === access)) {
          said.push(`${t} already ${access}`);
          continue;
        }
        for (const g of holding) {
          if ((g.access ?? 'ro') !== access) g.targets = (g.targets ?? []).filter((x) => canon(x) !== c);
        }
        if (!holding.some((g) => (g.access ?? 'ro') === access)) {
          const same = allow.find((g) => (g.access ?? 'ro') === access && (g.targets ?? []).length > 0);
          if (same) same.targets = [...(same.targets ?? []), t];
          else allow.push({ targets: [t], access });
        }
        said.push(was ? `${t} ${access} (was ${was})` : `${t} ${access}`);
      }
      p.allow = allow.filter((g) => (g.targets ?? []).length > 0);
    });
    await reportEdit(o.config, r, `peer ${name}: granted ${said.join(', ')}`);
  });

  withConfig(
    peer
      .command('revoke')
      .description('take targets away from a peer (every grant naming them, by "S.L" or by name)')
      .argument('<name>')
      .argument('<targets>', 'e.g. 1.0,disk-b1'),
  ).action(async (name: string, targetsArg: string, o: ConfigOpts) => {
    if (/:(ro|rw)$/.test(targetsArg))
      throw new AoegwError('ERR_USAGE', 'revoke takes targets only; to lower rw to ro, grant them :ro');
    const targets = parseTargetList(targetsArg, 'TARGETS');
    const canon = canonicalizer(readGatewayConfigDoc(o.config).doc.exports);
    const { r } = editPeer(o.config, name, (peers, i) => {
      const p = peers[i] as { allow?: RawGrant[] };
      const allow: RawGrant[] = p.allow ?? [];
      const missing = targets.filter(
        (t) => !allow.some((g) => (g.targets ?? []).some((x) => canon(x) === canon(t))),
      );
      if (missing.length > 0) {
        const has =
          allow.map((g) => `${(g.targets ?? []).join(',')}:${g.access ?? 'ro'}`).join(' ') || 'none';
        throw new AoegwError(
          'ERR_USAGE',
          `peer ${name} has no grant of ${missing.join(', ')} (its grants: ${has}); nothing written`,
        );
      }
      const drop = new Set(targets.map(canon));
      for (const g of allow) g.targets = (g.targets ?? []).filter((x) => !drop.has(canon(x)));
      p.allow = allow.filter((g) => (g.targets ?? []).length > 0);
    });
    await reportEdit(o.config, r, `peer ${name}: revoked ${targets.join(', ')}`);
  });
}

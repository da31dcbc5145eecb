/**
 * Configuration of `aoegw run`: a JSON file validated with convict plus cross-checks, and the
 * peers of the enrollment file, validated with the config's own. The target's file format
 * (stateFile, links, exports) stays valid as it is; the gateway adds privateKeyFile, listen,
 * enrollmentFile, controlSocket, forwards, peers and tunnel. Every problem names the key path,
 * the value and what is expected; unknown keys are problems; all of them are reported at once.
 */

import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { AoegwError } from '../errors.js';
import type { ForwardSpec } from '../gateway/forward-side.js';
import type {
  GatewaySpec,
  PeerGrantSpec,
  PeerImportSpec,
  PeerSpec,
  TargetRef,
} from '../gateway/gateway-spec.js';
import { BLOCK_IO_MODES, type BlockIoMode, type ExportSpec, type LinkSpec } from '../target/spec.js';
import { readEnrolledPeers } from './enrollment-peers.js';
import { readConfigDoc, validateExports, validateLinks } from './target-config.js';
import {
  bool,
  checkKeys,
  convictLoad,
  int,
  list,
  obj,
  Problems,
  parseHostPort,
  parseShelfSlot,
  str,
} from './validate.js';

export const DEFAULT_TUNNEL_MTU = 1452;
/** Where /metrics is served when the config has a `metrics` object without `listen`: this host only. */
export const DEFAULT_METRICS_LISTEN = '127.0.0.1:9588';
/**
 * Off by default: measured on the 2-core test machine, a gateway pair with 30 µs of busy-poll on
 * the tunnel socket lost 20-30 % of its throughput (the spinning gateways take CPU from each other,
 * the initiator and the target). Worth trying on hosts with cores to spare.
 */
export const DEFAULT_TUNNEL_BUSY_POLL_US = 0;

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function targetRef(p: Problems, v: unknown, path: string): TargetRef | undefined {
  const ss = parseShelfSlot(v);
  if (ss) return ss;
  if (typeof v === 'string' && NAME_RE.test(v)) return { name: v };
  p.add(path, v, 'a target as "SHELF.SLOT" (e.g. "1.2") or an export name');
  return undefined;
}

function refLabel(r: TargetRef): string {
  return 'name' in r ? r.name : `${r.shelf}.${r.slot}`;
}

function validateForwards(
  p: Problems,
  value: unknown,
  links: readonly LinkSpec[],
  exports: readonly ExportSpec[],
): ForwardSpec[] {
  const seen = new Set<number>();
  const linkNames = links.map((l) => l.name);
  const out: ForwardSpec[] = [];
  for (const [i, raw] of list(p, value, 'forwards', 'forwards').entries()) {
    const path = `forwards[${i}]`;
    const o = obj(p, raw, path);
    if (!o) continue;
    checkKeys(p, o, path, ['link', 'targets']);
    const link = str(p, o, 'link', path);
    if (link !== undefined && !linkNames.includes(link))
      p.add(`${path}.link`, link, `one of the configured links (${linkNames.join(', ')})`);
    const targets: { shelf: number; slot: number }[] = [];
    for (const [j, t] of list(p, o.targets, `${path}.targets`, 'targets').entries()) {
      const ss = parseShelfSlot(t);
      if (!ss) {
        p.add(`${path}.targets[${j}]`, t, 'a target as "SHELF.SLOT", e.g. "1.0"');
        continue;
      }
      const key = ss.shelf * 256 + ss.slot;
      if (seen.has(key)) p.add(`${path}.targets[${j}]`, t, 'a target not forwarded twice');
      else if (exports.some((e) => e.shelf === ss.shelf && e.slot === ss.slot)) {
        p.add(`${path}.targets[${j}]`, t, 'a target that is not also a built-in export of this gateway');
      }
      seen.add(key);
      targets.push(ss);
    }
    if (Array.isArray(o.targets) && o.targets.length === 0)
      p.add(`${path}.targets`, o.targets, 'a non-empty list of targets');
    out.push({ link: link ?? '', targets });
  }
  return out;
}

function validatePublicKey(p: Problems, v: unknown, path: string): Uint8Array | undefined {
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/]{43}=$/.test(v.trim())) {
    p.add(
      path,
      v,
      'the base64 of a 32-byte X25519 public key (44 characters ending in "="), as `aoegw pubkey` prints it',
    );
    return undefined;
  }
  const key = Buffer.from(v.trim(), 'base64');
  if (key.every((b) => b === 0)) {
    p.add(path, v, 'a public key that is not all zeros');
    return undefined;
  }
  return new Uint8Array(key);
}

export const PEER_KEYS = [
  'name',
  'publicKey',
  'endpoint',
  'allow',
  'imports',
  'persistentKeepaliveMs',
] as const;

/** One peer object to validate: from the config file or the enrollment file (its own Problems view). */
interface PeerInput {
  readonly raw: unknown;
  readonly index: number;
  readonly source: PeerSpec['source'];
  readonly p: Problems;
}

function validatePeers(
  inputs: readonly PeerInput[],
  links: readonly LinkSpec[],
  exports: readonly ExportSpec[],
  forwards: readonly ForwardSpec[],
  listen: GatewaySpec['listen'],
  listenText: unknown,
  /** Sections that were not lists: references into them are not checked (no second problem). */
  unknown: { links: boolean; exports: boolean; forwards: boolean },
): PeerSpec[] {
  // Who uses a name or key, for the message of a duplicate (names and keys are unique across files).
  const names = new Map<string, string>();
  const keys = new Map<string, string>();
  const linkNames = links.map((l) => l.name);
  const localTargets = (r: TargetRef): boolean =>
    'name' in r
      ? unknown.exports || exports.some((e) => e.name === r.name)
      : unknown.exports ||
        unknown.forwards ||
        exports.some((e) => e.shelf === r.shelf && e.slot === r.slot) ||
        forwards.some((f) => f.targets.some((t) => t.shelf === r.shelf && t.slot === r.slot));
  // Local addresses taken per link: exports (on their links, or all) and imports so far.
  const taken = new Map<string, string>();
  for (const f of forwards) {
    for (const t of f.targets)
      taken.set(`${f.link}/${t.shelf}.${t.slot}`, `forwards (native target e${t.shelf}.${t.slot})`);
  }
  for (const e of exports) {
    for (const l of e.links.length ? e.links : linkNames)
      taken.set(`${l}/${e.shelf}.${e.slot}`, `exports (e${e.shelf}.${e.slot})`);
  }
  const out: PeerSpec[] = [];
  for (const { raw, index, source, p } of inputs) {
    const path = `peers[${index}]`;
    const label = source === 'enrolled' ? `enrolled ${path}` : path;
    const o = obj(p, raw, path);
    if (!o) continue;
    checkKeys(p, o, path, PEER_KEYS);
    const name = str(p, o, 'name', path);
    if (name !== undefined) {
      if (!NAME_RE.test(name)) p.add(`${path}.name`, name, 'letters, digits, ".", "_" or "-" (1..64)');
      const other = names.get(name);
      if (other !== undefined)
        p.add(`${path}.name`, name, `a name not used by another peer (${other} has it)`);
      else names.set(name, label);
    }
    const publicKey = validatePublicKey(p, o.publicKey, `${path}.publicKey`);
    if (publicKey) {
      const hex = Buffer.from(publicKey).toString('hex');
      const other = keys.get(hex);
      if (other !== undefined)
        p.add(`${path}.publicKey`, o.publicKey, `a key not used by another peer (${other} has it)`);
      else keys.set(hex, label);
    }
    let endpoint: PeerSpec['endpoint'];
    if (o.endpoint !== undefined) {
      endpoint = parseHostPort(o.endpoint) ?? undefined;
      if (!endpoint) p.add(`${path}.endpoint`, o.endpoint, '"IPv4:PORT" or "[IPv6]:PORT"');
      else if (listen && endpoint.address.includes(':') !== listen.address.includes(':')) {
        p.add(
          `${path}.endpoint`,
          `${endpoint.address}:${endpoint.port}`,
          `an address of the same IP family as listen (${listenText})`,
        );
      }
    }
    const allow: PeerGrantSpec[] = [];
    for (const [j, g] of list(p, o.allow ?? [], `${path}.allow`, 'grants').entries()) {
      const gp = `${path}.allow[${j}]`;
      const go = obj(p, g, gp);
      if (!go) continue;
      checkKeys(p, go, gp, ['targets', 'access']);
      let access = go.access ?? 'ro';
      if (access !== 'ro' && access !== 'rw') {
        p.add(`${gp}.access`, go.access, '"ro" or "rw"');
        access = 'ro';
      }
      const targets: TargetRef[] = [];
      for (const [k, t] of list(p, go.targets, `${gp}.targets`, 'targets').entries()) {
        const ref = targetRef(p, t, `${gp}.targets[${k}]`);
        if (!ref) continue;
        if (!localTargets(ref)) {
          p.add(
            `${gp}.targets[${k}]`,
            t,
            'a built-in export (by "S.L" or name) or a forwarded target of this gateway',
          );
          continue;
        }
        targets.push(ref);
      }
      allow.push({ targets, access: access as 'ro' | 'rw' });
    }
    const imports: PeerImportSpec[] = [];
    for (const [j, im] of list(p, o.imports ?? [], `${path}.imports`, 'imports').entries()) {
      const ip = `${path}.imports[${j}]`;
      const io = obj(p, im, ip);
      if (!io) continue;
      checkKeys(p, io, ip, ['remote', 'local', 'links']);
      const remote = targetRef(p, io.remote, `${ip}.remote`);
      const local = parseShelfSlot(io.local);
      if (!local) p.add(`${ip}.local`, io.local, 'a local address as "SHELF.SLOT", e.g. "7.0"');
      const ls = io.links === undefined ? [] : list(p, io.links, `${ip}.links`, 'link names');
      for (const [k, l] of ls.entries()) {
        if (typeof l !== 'string' || (!unknown.links && !linkNames.includes(l))) {
          p.add(`${ip}.links[${k}]`, l, `one of the configured links (${linkNames.join(', ')})`);
        }
      }
      const on = (ls.length ? ls : linkNames) as string[];
      if (on.length === 0 && !unknown.links)
        p.add(`${ip}`, im, 'at least one configured link to present the import on');
      if (!remote || !local) continue;
      for (const l of on) {
        const key = `${l}/${local.shelf}.${local.slot}`;
        const other = taken.get(key);
        if (other) p.add(`${ip}.local`, io.local, `an address not already used on link ${l} by ${other}`);
        else taken.set(key, `${source === 'enrolled' ? 'enrolled ' : ''}${ip} (${name}:${refLabel(remote)})`);
      }
      imports.push({ remote, localShelf: local.shelf, localSlot: local.slot, links: ls as string[] });
    }
    out.push({
      name: name ?? (typeof o.name === 'string' ? o.name : ''),
      publicKey: publicKey ?? new Uint8Array(32),
      ...(endpoint ? { endpoint } : {}),
      allow,
      imports,
      persistentKeepaliveMs: int(p, o, 'persistentKeepaliveMs', path, 0, 3_600_000, 0),
      source,
    });
  }
  return out;
}

const schema = {
  name: { doc: 'Gateway name for logs and peers.', format: String, default: hostname() },
  privateKeyFile: { doc: 'Private key file (aoegw keygen), mode 0600.', format: String, default: '' },
  listen: { doc: 'UDP "address:port" of the tunnel.', format: String, default: '' },
  stateFile: {
    doc: 'Where config strings, mask lists and reservations are persisted (written atomically).',
    format: String,
    default: '/var/lib/aoegw/state.json',
  },
  enrollmentFile: {
    doc: 'Invites and enrolled peers (mode 0600); default enrollment.json beside stateFile.',
    format: String,
    default: '',
  },
  controlSocket: {
    doc: 'UNIX socket of the control plane (mode 0600); default control.sock beside stateFile.',
    format: String,
    default: '',
  },
  links: { doc: 'Network interfaces.', format: 'aoegw-any', default: [] as unknown[] },
  exports: { doc: 'Built-in exports.', format: 'aoegw-any', default: [] as unknown[] },
  forwards: {
    doc: 'Native targets on a link, offered to peers.',
    format: 'aoegw-any',
    default: [] as unknown[],
  },
  peers: { doc: 'Peer gateways.', format: 'aoegw-any', default: [] as unknown[] },
  tunnel: { doc: 'Tunnel settings.', format: 'aoegw-any', default: {} as Record<string, unknown> },
  blockIo: {
    doc: 'How block I/O of the built-in exports reaches the kernel: auto (io_uring when available), ring, or sync.',
    format: 'aoegw-any',
    default: 'auto',
  },
  metrics: {
    doc: 'Prometheus metrics: {"listen": "ADDRESS:PORT" (default 127.0.0.1:9588), "initiatorLatency": false}; absent = none.',
    format: 'aoegw-any',
    default: null as Record<string, unknown> | null,
  },
};

const LIST_KEYS = ['links', 'exports', 'forwards', 'peers'] as const;

/** Requests unanswered this long are failed with an ATA error (tunnel.failAfterMs). */
export const DEFAULT_FAIL_AFTER_MS = 120_000;

const strOr = (v: unknown, dflt: string): string => (typeof v === 'string' ? v : dflt);

/** enrollmentFile and controlSocket of a parsed config, with their defaults beside stateFile. */
export function derivedPaths(doc: Record<string, unknown>): {
  enrollmentFile: string;
  controlSocket: string;
} {
  const stateDir = dirname(strOr(doc.stateFile, schema.stateFile.default));
  return {
    enrollmentFile: strOr(doc.enrollmentFile, '') || join(stateDir, 'enrollment.json'),
    controlSocket: strOr(doc.controlSocket, '') || join(stateDir, 'control.sock'),
  };
}

/**
 * The enrolled peers to validate with the config: read from the enrollment file (the default), or
 * given (an edit's result, not written yet).
 */
export type EnrolledPeers = { readonly peers: readonly unknown[] } | 'read';

/**
 * Validates a gateway config's parsed content with the enrolled peers, recording every problem in
 * `p` (problems of enrolled peers are labelled with the enrollment file). The spec returned is
 * meaningful only when no problem was recorded.
 */
export function checkGatewayDoc(
  p: Problems,
  doc: Record<string, unknown>,
  enrolled: EnrolledPeers = 'read',
): GatewaySpec {
  // An object where a list belongs: recorded here (convict would take it for the empty default).
  const shaped: Record<string, unknown> = { ...doc };
  const unknown = { links: false, exports: false, forwards: false };
  for (const k of LIST_KEYS) {
    if (shaped[k] !== undefined && !Array.isArray(shaped[k])) {
      p.add(k, shaped[k], `a list of ${k}`);
      delete shaped[k];
      if (k !== 'peers') unknown[k] = true;
    }
  }
  if (shaped.tunnel !== undefined && obj(p, shaped.tunnel, 'tunnel') === undefined) delete shaped.tunnel;
  const metrics = shaped.metrics === undefined ? undefined : validateMetrics(p, shaped.metrics);
  const raw = convictLoad(p, schema, shaped);
  const { enrollmentFile, controlSocket } = derivedPaths(raw);
  const rawLinks = raw.links as unknown[];
  const rawExports = raw.exports as unknown[];
  const links = rawLinks.length ? validateLinks(p, rawLinks) : [];
  const exports = rawExports.length
    ? validateExports(
        p,
        rawExports,
        links.map((l) => l.name),
      )
    : [];
  const forwards = validateForwards(p, raw.forwards, links, exports);

  let listen: GatewaySpec['listen'];
  if (raw.listen !== '' && typeof raw.listen === 'string') {
    listen = parseHostPort(raw.listen, true) ?? undefined;
    if (!listen) p.add('listen', raw.listen, '"IPv4:PORT" or "[IPv6]:PORT"');
  }
  const inFile = p.in(`enrollment file ${enrollmentFile}`);
  const enrolledRaw = enrolled === 'read' ? readEnrolledPeers(inFile, enrollmentFile) : enrolled.peers;
  const inputs: PeerInput[] = [
    ...(raw.peers as unknown[]).map((r, index) => ({ raw: r, index, source: 'config' as const, p })),
    ...enrolledRaw.map((r, index) => ({ raw: r, index, source: 'enrolled' as const, p: inFile })),
  ];
  const peers = validatePeers(inputs, links, exports, forwards, listen, raw.listen, unknown);

  const t = (raw.tunnel ?? {}) as Record<string, unknown>;
  checkKeys(p, t, 'tunnel', ['mtu', 'busyPollUs', 'failAfterMs', 'gso', 'gro']);
  const tunnel = {
    // 1280 (IPv6's minimum) carries the largest advertisement of one target (1 KiB config string).
    mtu: int(p, t, 'mtu', 'tunnel', 1280, 65507, DEFAULT_TUNNEL_MTU),
    busyPollUs: int(p, t, 'busyPollUs', 'tunnel', 0, 1000, DEFAULT_TUNNEL_BUSY_POLL_US),
    // Below the Linux initiator's aoe_deadsecs (180 s), after which an open device stays failed.
    failAfterMs: int(p, t, 'failAfterMs', 'tunnel', 1000, 170_000, DEFAULT_FAIL_AFTER_MS),
    gso: bool(p, t, 'gso', 'tunnel', true),
    gro: bool(p, t, 'gro', 'tunnel', true),
  };
  const keyFile = strOr(raw.privateKeyFile, '');
  if (peers.length > 0) {
    if (keyFile === '')
      p.add(
        'privateKeyFile',
        raw.privateKeyFile,
        'the path of a private key file (aoegw keygen) when peers are configured',
      );
    if (raw.listen === '')
      p.add('listen', raw.listen, '"IPv4:PORT" or "[IPv6]:PORT" when peers are configured');
  }
  if (
    rawLinks.length === 0 &&
    rawExports.length === 0 &&
    peers.length === 0 &&
    !unknown.links &&
    !unknown.exports
  ) {
    p.add('links', raw.links, 'at least one link, export or peer');
  }
  if (
    rawExports.length > 0 &&
    rawLinks.length === 0 &&
    !unknown.links &&
    !peers.some((x) => x.allow.length > 0)
  ) {
    p.add('exports', raw.exports, 'links to serve on, or peers allowed to use the exports');
  }
  let blockIo: BlockIoMode = 'auto';
  if (typeof raw.blockIo === 'string' && (BLOCK_IO_MODES as readonly string[]).includes(raw.blockIo))
    blockIo = raw.blockIo as BlockIoMode;
  else p.add('blockIo', raw.blockIo, BLOCK_IO_MODES.join(', '));
  return {
    name: strOr(raw.name, hostname()),
    ...(keyFile !== '' ? { privateKeyFile: keyFile } : {}),
    ...(listen ? { listen } : {}),
    stateFile: strOr(raw.stateFile, schema.stateFile.default),
    enrollmentFile,
    controlSocket,
    links,
    exports,
    forwards,
    peers,
    tunnel,
    blockIo,
    ...(metrics ? { metrics } : {}),
  };
}

/** The `metrics` object: where /metrics is served (loopback unless `listen` says otherwise; port 0 = any). */
function validateMetrics(p: Problems, v: unknown): GatewaySpec['metrics'] {
  const o = obj(p, v, 'metrics');
  if (!o) return undefined;
  checkKeys(p, o, 'metrics', ['listen', 'initiatorLatency']);
  const listen = parseHostPort(o.listen ?? DEFAULT_METRICS_LISTEN, true);
  if (!listen) p.add('metrics.listen', o.listen, '"IPv4:PORT" or "[IPv6]:PORT" (TCP, for Prometheus)');
  if (o.initiatorLatency !== undefined && typeof o.initiatorLatency !== 'boolean')
    p.add('metrics.initiatorLatency', o.initiatorLatency, 'true or false');
  if (!listen) return undefined;
  return o.initiatorLatency === true ? { ...listen, initiatorLatency: true } : listen;
}

/**
 * Validates a gateway config file with the peers of its enrollment file without throwing: the
 * spec when there is no problem, and every problem, one line each (for `config check` and reload).
 */
export function checkGatewayConfig(file: string): { spec?: GatewaySpec; problems: Problems } {
  const p = new Problems();
  const doc = readConfigDoc(p, file);
  const spec = doc ? checkGatewayDoc(p, doc) : undefined;
  return p.count === 0 && spec ? { spec, problems: p } : { problems: p };
}

/**
 * Loads and validates a gateway config file with the peers of its enrollment file. Throws
 * ERR_CONFIG naming the file and every problem (key, value and expectation; one per line).
 */
export function loadGatewayConfig(file: string): GatewaySpec {
  const { spec, problems } = checkGatewayConfig(file);
  if (!spec) throw new AoegwError('ERR_CONFIG', problems.message(file));
  return spec;
}

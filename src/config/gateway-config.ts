/**
 * Configuration of `aoegw run`: a JSON file validated with convict plus cross-checks. The
 * target's file format (stateFile, links, exports) stays valid as it is; the gateway adds
 * privateKeyFile, listen, forwards, peers and tunnel. Every error names the key path, the value
 * and what is expected; unknown keys are errors.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import convict from 'convict';
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
import { validateExports, validateLinks } from './target-config.js';
import {
  bool,
  ConfigError,
  checkKeys,
  fail,
  int,
  list,
  obj,
  parseHostPort,
  parseShelfSlot,
  str,
} from './validate.js';

export const DEFAULT_TUNNEL_MTU = 1452;
/**
 * Off by default: measured on the 2-core test machine, a gateway pair with 30 µs of busy-poll on
 * the tunnel socket lost 20-30 % of its throughput (the spinning gateways take CPU from each other,
 * the initiator and the target). Worth trying on hosts with cores to spare.
 */
export const DEFAULT_TUNNEL_BUSY_POLL_US = 0;

function targetRef(v: unknown, path: string): TargetRef {
  const ss = parseShelfSlot(v);
  if (ss) return ss;
  if (typeof v === 'string' && /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(v)) return { name: v };
  fail(path, v, 'a target as "SHELF.SLOT" (e.g. "1.2") or an export name');
}

function refLabel(r: TargetRef): string {
  return 'name' in r ? r.name : `${r.shelf}.${r.slot}`;
}

function validateForwards(
  value: unknown,
  links: readonly LinkSpec[],
  exports: readonly ExportSpec[],
): ForwardSpec[] {
  const seen = new Set<number>();
  const linkNames = links.map((l) => l.name);
  return list(value, 'forwards', 'forwards').map((raw, i) => {
    const path = `forwards[${i}]`;
    const o = obj(raw, path);
    checkKeys(o, path, ['link', 'targets']);
    const link = str(o, 'link', path);
    if (!linkNames.includes(link))
      fail(`${path}.link`, link, `one of the configured links (${linkNames.join(', ')})`);
    const targets = list(o.targets, `${path}.targets`, 'targets').map((t, j) => {
      const ss = parseShelfSlot(t);
      if (!ss) fail(`${path}.targets[${j}]`, t, 'a target as "SHELF.SLOT", e.g. "1.0"');
      const key = ss.shelf * 256 + ss.slot;
      if (seen.has(key)) fail(`${path}.targets[${j}]`, t, 'a target not forwarded twice');
      if (exports.some((e) => e.shelf === ss.shelf && e.slot === ss.slot)) {
        fail(`${path}.targets[${j}]`, t, 'a target that is not also a built-in export of this gateway');
      }
      seen.add(key);
      return ss;
    });
    if (targets.length === 0) fail(`${path}.targets`, o.targets, 'a non-empty list of targets');
    return { link, targets };
  });
}

function validatePublicKey(v: unknown, path: string): Uint8Array {
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/]{43}=$/.test(v.trim())) {
    fail(
      path,
      v,
      'the base64 of a 32-byte X25519 public key (44 characters ending in "="), as `aoegw pubkey` prints it',
    );
  }
  const key = Buffer.from(v.trim(), 'base64');
  if (key.every((b) => b === 0)) fail(path, v, 'a public key that is not all zeros');
  return new Uint8Array(key);
}

function validatePeers(
  value: unknown,
  links: readonly LinkSpec[],
  exports: readonly ExportSpec[],
  forwards: readonly ForwardSpec[],
): PeerSpec[] {
  const names = new Set<string>();
  const keys = new Set<string>();
  const linkNames = links.map((l) => l.name);
  const localTargets = (r: TargetRef): boolean =>
    'name' in r
      ? exports.some((e) => e.name === r.name)
      : exports.some((e) => e.shelf === r.shelf && e.slot === r.slot) ||
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
  return list(value, 'peers', 'peers').map((raw, i) => {
    const path = `peers[${i}]`;
    const o = obj(raw, path);
    checkKeys(o, path, ['name', 'publicKey', 'endpoint', 'allow', 'imports', 'persistentKeepaliveMs']);
    const name = str(o, 'name', path);
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name))
      fail(`${path}.name`, name, 'letters, digits, ".", "_" or "-" (1..64)');
    if (names.has(name)) fail(`${path}.name`, name, 'a name not used by another peer');
    names.add(name);
    const publicKey = validatePublicKey(o.publicKey, `${path}.publicKey`);
    const hex = Buffer.from(publicKey).toString('hex');
    if (keys.has(hex)) fail(`${path}.publicKey`, o.publicKey, 'a key not used by another peer');
    keys.add(hex);
    let endpoint: PeerSpec['endpoint'];
    if (o.endpoint !== undefined) {
      endpoint =
        parseHostPort(o.endpoint) ?? fail(`${path}.endpoint`, o.endpoint, '"IPv4:PORT" or "[IPv6]:PORT"');
    }
    const allow: PeerGrantSpec[] = list(o.allow ?? [], `${path}.allow`, 'grants').map((g, j) => {
      const gp = `${path}.allow[${j}]`;
      const go = obj(g, gp);
      checkKeys(go, gp, ['targets', 'access']);
      const access = go.access ?? 'ro';
      if (access !== 'ro' && access !== 'rw') fail(`${gp}.access`, go.access, '"ro" or "rw"');
      const targets = list(go.targets, `${gp}.targets`, 'targets').map((t, k) => {
        const ref = targetRef(t, `${gp}.targets[${k}]`);
        if (!localTargets(ref)) {
          fail(
            `${gp}.targets[${k}]`,
            t,
            'a built-in export (by "S.L" or name) or a forwarded target of this gateway',
          );
        }
        return ref;
      });
      return { targets, access };
    });
    const imports: PeerImportSpec[] = list(o.imports ?? [], `${path}.imports`, 'imports').map((im, j) => {
      const ip = `${path}.imports[${j}]`;
      const io = obj(im, ip);
      checkKeys(io, ip, ['remote', 'local', 'links']);
      const remote = targetRef(io.remote, `${ip}.remote`);
      const local =
        parseShelfSlot(io.local) ??
        fail(`${ip}.local`, io.local, 'a local address as "SHELF.SLOT", e.g. "7.0"');
      const ls = io.links === undefined ? [] : list(io.links, `${ip}.links`, 'link names');
      for (const [k, l] of ls.entries()) {
        if (typeof l !== 'string' || !linkNames.includes(l)) {
          fail(`${ip}.links[${k}]`, l, `one of the configured links (${linkNames.join(', ')})`);
        }
      }
      const on = (ls.length ? ls : linkNames) as string[];
      if (on.length === 0) fail(`${ip}`, im, 'at least one configured link to present the import on');
      for (const l of on) {
        const key = `${l}/${local.shelf}.${local.slot}`;
        const other = taken.get(key);
        if (other) fail(`${ip}.local`, io.local, `an address not already used on link ${l} by ${other}`);
        taken.set(key, `${ip} (${name}:${refLabel(remote)})`);
      }
      return { remote, localShelf: local.shelf, localSlot: local.slot, links: ls as string[] };
    });
    return {
      name,
      publicKey,
      ...(endpoint ? { endpoint } : {}),
      allow,
      imports,
      persistentKeepaliveMs: int(o, 'persistentKeepaliveMs', path, 0, 3_600_000, 0),
    };
  });
}

convict.addFormat({ name: 'aoegw-any', validate: () => {} });

const schema = {
  name: { doc: 'Gateway name for logs and peers.', format: String, default: hostname() },
  privateKeyFile: { doc: 'Private key file (aoegw keygen), mode 0600.', format: String, default: '' },
  listen: { doc: 'UDP "address:port" of the tunnel.', format: String, default: '' },
  stateFile: {
    doc: 'Where config strings, mask lists and reservations are persisted (written atomically).',
    format: String,
    default: '/var/lib/aoegw/state.json',
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
};

type Raw = { [K in keyof typeof schema]: unknown };

const LIST_KEYS = ['links', 'exports', 'forwards', 'peers'] as const;

/**
 * The file's top-level shape, before convict merges it with the defaults (which would take an
 * object where a list belongs as an empty list, or fail without naming the key).
 */
function checkShapes(file: string): void {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ConfigError(`cannot read it as JSON: ${(e as Error).message}`);
  }
  const o = obj(doc, '(top level)');
  for (const k of LIST_KEYS) if (o[k] !== undefined) list(o[k], k, k);
  if (o.tunnel !== undefined) obj(o.tunnel, 'tunnel');
}

/** Loads and validates a gateway config file. Throws ERR_CONFIG naming the file, key, value and expectation. */
export function loadGatewayConfig(file: string): GatewaySpec {
  let conf: convict.Config<Raw>;
  try {
    checkShapes(file);
    conf = convict(schema) as unknown as convict.Config<Raw>;
    conf.loadFile(file);
    conf.validate({ allowed: 'strict' });
  } catch (e) {
    if (e instanceof ConfigError)
      throw new AoegwError('ERR_CONFIG', `config ${file}: ${e.message}`, { cause: e });
    const msg = (e as Error).message.replace(/\n/g, '; ');
    throw new AoegwError('ERR_CONFIG', `config ${file}: ${msg}`, { cause: e });
  }
  try {
    return validateGateway(conf.getProperties() as Raw);
  } catch (e) {
    // Validation failures (ours and the target loader's) name key, value and expectation.
    if (e instanceof ConfigError || !(e instanceof AoegwError) || e.code === 'ERR_USAGE') {
      throw new AoegwError('ERR_CONFIG', `config ${file}: ${(e as Error).message}`, { cause: e });
    }
    throw e;
  }
}

/** Requests unanswered this long are failed with an ATA error (tunnel.failAfterMs). */
export const DEFAULT_FAIL_AFTER_MS = 120_000;

/** The cross-checked spec from a parsed config object (throws ConfigError). */
export function validateGateway(raw: Raw): GatewaySpec {
  const links = (raw.links as unknown[]).length ? validateLinks(raw.links) : [];
  const exports = (raw.exports as unknown[]).length
    ? validateExports(
        raw.exports,
        links.map((l) => l.name),
      )
    : [];
  const forwards = validateForwards(raw.forwards, links, exports);
  const peers = validatePeers(raw.peers, links, exports, forwards);
  const t = obj(raw.tunnel, 'tunnel');
  checkKeys(t, 'tunnel', ['mtu', 'busyPollUs', 'failAfterMs', 'gso', 'gro']);
  const tunnel = {
    // 1280 (IPv6's minimum) carries the largest advertisement of one target (1 KiB config string).
    mtu: int(t, 'mtu', 'tunnel', 1280, 65507, DEFAULT_TUNNEL_MTU),
    busyPollUs: int(t, 'busyPollUs', 'tunnel', 0, 1000, DEFAULT_TUNNEL_BUSY_POLL_US),
    // Below the Linux initiator's aoe_deadsecs (180 s), after which an open device stays failed.
    failAfterMs: int(t, 'failAfterMs', 'tunnel', 1000, 170_000, DEFAULT_FAIL_AFTER_MS),
    gso: bool(t, 'gso', 'tunnel', true),
    gro: bool(t, 'gro', 'tunnel', true),
  };
  let listen: GatewaySpec['listen'];
  if (raw.listen !== '') {
    listen = parseHostPort(raw.listen, true) ?? fail('listen', raw.listen, '"IPv4:PORT" or "[IPv6]:PORT"');
  }
  const keyFile = raw.privateKeyFile as string;
  for (const [i, p] of peers.entries()) {
    if (listen && p.endpoint && p.endpoint.address.includes(':') !== listen.address.includes(':')) {
      fail(
        `peers[${i}].endpoint`,
        `${p.endpoint.address}:${p.endpoint.port}`,
        `an address of the same IP family as listen (${raw.listen})`,
      );
    }
  }
  if (peers.length > 0) {
    if (keyFile === '')
      fail(
        'privateKeyFile',
        raw.privateKeyFile,
        'the path of a private key file (aoegw keygen) when peers are configured',
      );
    if (!listen) fail('listen', raw.listen, '"IPv4:PORT" or "[IPv6]:PORT" when peers are configured');
  }
  if (links.length === 0 && exports.length === 0 && peers.length === 0) {
    fail('links', raw.links, 'at least one link, export or peer');
  }
  if (exports.length > 0 && links.length === 0 && !peers.some((p) => p.allow.length > 0)) {
    fail('exports', raw.exports, 'links to serve on, or peers allowed to use the exports');
  }
  return {
    name: raw.name as string,
    ...(keyFile !== '' ? { privateKeyFile: keyFile } : {}),
    ...(listen ? { listen } : {}),
    stateFile: raw.stateFile as string,
    links,
    exports,
    forwards,
    peers,
    tunnel,
    blockIo: blockIoOf(raw.blockIo),
  };
}

function blockIoOf(v: unknown): BlockIoMode {
  if (typeof v === 'string' && (BLOCK_IO_MODES as readonly string[]).includes(v)) return v as BlockIoMode;
  return fail('blockIo', v, BLOCK_IO_MODES.join(', '));
}

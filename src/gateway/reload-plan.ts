/**
 * What a reload changes (pure): the running spec and the new one in, a plan out. Everything the
 * running daemon cannot change in place (links, the listen address, the key, the state file, block
 * I/O, tunnel settings, anything else outside exports, forwards and peers) is refused, every such
 * key at once, and then nothing is applied. The rest is a diff, so that what did not change is not
 * touched: peers by name (a new key is a new peer), exports by shelf.slot, imports by local
 * shelf.slot, forwards by link and shelf.slot. A changed export or import is removed and added.
 */
import type { ExportSpec } from '../target/spec.js';
import type { GatewaySpec, PeerImportSpec, PeerSpec } from './gateway-spec.js';

/** Top-level keys a reload applies; every other key needs a restart. */
const RELOADABLE = new Set(['exports', 'forwards', 'peers']);

export interface ForwardTarget {
  readonly link: string;
  readonly shelf: number;
  readonly slot: number;
}

export interface ImportChange {
  readonly peer: string;
  readonly spec: PeerImportSpec;
}

export interface PeerChange {
  readonly old: PeerSpec;
  readonly next: PeerSpec;
  readonly endpoint: boolean;
  readonly keepalive: boolean;
  readonly grants: boolean;
}

export interface ReloadPlan {
  /** "restart to change X", one per key; when any, nothing is applied. */
  readonly refusals: string[];
  readonly peersAdded: PeerSpec[];
  readonly peersRemoved: PeerSpec[];
  /** Same name and key, something else changed (the session is kept). */
  readonly peersChanged: PeerChange[];
  /** Removed or changed (old spec), and added or changed (new spec). */
  readonly exportsRemoved: ExportSpec[];
  readonly exportsAdded: ExportSpec[];
  /** Imports of peers that stay (a removed or added peer's imports go and come with it). */
  readonly importsRemoved: ImportChange[];
  readonly importsAdded: ImportChange[];
  readonly forwardsRemoved: ForwardTarget[];
  readonly forwardsAdded: ForwardTarget[];
}

export interface ReloadContext {
  /** The tunnel is open (listen and a key): peers can be added. */
  readonly tunnelOpen: boolean;
}

export function planReload(old: GatewaySpec, next: GatewaySpec, ctx: ReloadContext): ReloadPlan {
  const refusals: string[] = [];
  const keys = new Set([...Object.keys(old), ...Object.keys(next)]);
  for (const k of [...keys].sort()) {
    if (RELOADABLE.has(k)) continue;
    const a = (old as unknown as Record<string, unknown>)[k];
    const b = (next as unknown as Record<string, unknown>)[k];
    if (k === 'tunnel' && isObject(a) && isObject(b)) {
      for (const t of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort())
        if (!same(a[t], b[t])) refusals.push(`restart to change tunnel.${t}`);
    } else if (!same(a, b)) refusals.push(`restart to change ${k}`);
  }

  const oldPeers = new Map(old.peers.map((p) => [p.name, p]));
  const newPeers = new Map(next.peers.map((p) => [p.name, p]));
  const peersAdded: PeerSpec[] = [];
  const peersRemoved: PeerSpec[] = [];
  const peersChanged: PeerChange[] = [];
  const importsRemoved: ImportChange[] = [];
  const importsAdded: ImportChange[] = [];
  for (const p of old.peers) {
    const n = newPeers.get(p.name);
    if (!n || !same(p.publicKey, n.publicKey)) peersRemoved.push(p);
  }
  for (const n of next.peers) {
    const p = oldPeers.get(n.name);
    if (!p || !same(p.publicKey, n.publicKey)) {
      peersAdded.push(n);
      continue;
    }
    const change: PeerChange = {
      old: p,
      next: n,
      endpoint: !same(p.endpoint, n.endpoint),
      keepalive: p.persistentKeepaliveMs !== n.persistentKeepaliveMs,
      grants: !same(p.allow, n.allow),
    };
    const oldImports = new Map(p.imports.map((i) => [importKey(i), i]));
    const newImports = new Map(n.imports.map((i) => [importKey(i), i]));
    let importsChanged = false;
    for (const [k, i] of oldImports) {
      const m = newImports.get(k);
      if (!m || !same(i, m)) {
        importsRemoved.push({ peer: p.name, spec: i });
        importsChanged = true;
      }
    }
    for (const [k, i] of newImports) {
      const m = oldImports.get(k);
      if (!m || !same(i, m)) {
        importsAdded.push({ peer: n.name, spec: i });
        importsChanged = true;
      }
    }
    if (change.endpoint || change.keepalive || change.grants || importsChanged) peersChanged.push(change);
  }
  if (peersAdded.length > 0 && !ctx.tunnelOpen)
    refusals.push('restart to add peers: the tunnel is not open (it needs listen and privateKeyFile)');

  const oldExports = new Map(old.exports.map((e) => [exportKey(e), e]));
  const newExports = new Map(next.exports.map((e) => [exportKey(e), e]));
  const exportsRemoved = old.exports.filter((e) => {
    const n = newExports.get(exportKey(e));
    return !n || !same(e, n);
  });
  const exportsAdded = next.exports.filter((e) => {
    const o = oldExports.get(exportKey(e));
    return !o || !same(e, o);
  });

  const oldForwards = forwardTargets(old);
  const newForwards = forwardTargets(next);
  const forwardsRemoved = [...oldForwards].filter(([k]) => !newForwards.has(k)).map(([, t]) => t);
  const forwardsAdded = [...newForwards].filter(([k]) => !oldForwards.has(k)).map(([, t]) => t);

  return {
    refusals,
    peersAdded,
    peersRemoved,
    peersChanged,
    exportsRemoved,
    exportsAdded,
    importsRemoved,
    importsAdded,
    forwardsRemoved,
    forwardsAdded,
  };
}

/** One line for the log: `+1 peer, -0 peers, 2 grants changed, +1 export, …` (zero counts left out but peers'). */
export function summarizePlan(plan: ReloadPlan, grantsChanged: number): string {
  const n = (count: number, sign: string, word: string) => `${sign}${count} ${word}${count === 1 ? '' : 's'}`;
  const exportsChanged = plan.exportsAdded.filter((a) =>
    plan.exportsRemoved.some((r) => r.shelf === a.shelf && r.slot === a.slot),
  ).length;
  const parts = [n(plan.peersAdded.length, '+', 'peer'), n(plan.peersRemoved.length, '-', 'peer')];
  const peersChanged = plan.peersChanged.length;
  if (peersChanged > 0) parts.push(`${peersChanged} peer${peersChanged === 1 ? '' : 's'} changed`);
  if (grantsChanged > 0) parts.push(`${grantsChanged} grant${grantsChanged === 1 ? '' : 's'} changed`);
  const added = plan.exportsAdded.length - exportsChanged;
  const removed = plan.exportsRemoved.length - exportsChanged;
  if (added > 0) parts.push(n(added, '+', 'export'));
  if (removed > 0) parts.push(n(removed, '-', 'export'));
  if (exportsChanged > 0) parts.push(`${exportsChanged} export${exportsChanged === 1 ? '' : 's'} changed`);
  if (plan.importsAdded.length > 0) parts.push(n(plan.importsAdded.length, '+', 'import'));
  if (plan.importsRemoved.length > 0) parts.push(n(plan.importsRemoved.length, '-', 'import'));
  if (plan.forwardsAdded.length > 0) parts.push(n(plan.forwardsAdded.length, '+', 'forward'));
  if (plan.forwardsRemoved.length > 0) parts.push(n(plan.forwardsRemoved.length, '-', 'forward'));
  return parts.join(', ');
}

export function exportKey(e: { shelf: number; slot: number }): string {
  return `e${e.shelf}.${e.slot}`;
}

function importKey(i: PeerImportSpec): string {
  return `e${i.localShelf}.${i.localSlot}`;
}

function forwardTargets(spec: GatewaySpec): Map<string, ForwardTarget> {
  const out = new Map<string, ForwardTarget>();
  for (const f of spec.forwards)
    for (const t of f.targets) out.set(`${f.link}/e${t.shelf}.${t.slot}`, { link: f.link, ...t });
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** Structural equality of config values (a key set to undefined equals a missing one). */
export function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    if (!(a instanceof Uint8Array && b instanceof Uint8Array) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!(Array.isArray(a) && Array.isArray(b)) || a.length !== b.length) return false;
    return a.every((x, i) => same(x, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) if (!same(a[k], b[k])) return false;
    return true;
  }
  return false;
}

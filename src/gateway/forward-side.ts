/**
 * Forwards (sans-I/O): native AoE targets on this gateway's segment (vblade and the like), found
 * by Query Config and restricted to the configured list, used by peers through the tunnel.
 *
 * A peer's request gets this gateway's own tag (from a bounded table, bit 31 clear) and leaves
 * from this gateway's MAC; the target's reply gets the peer's request id back and returns as an
 * AOE_RESPONSE record. At most the target's buffer count of requests is outstanding per target,
 * so a target never sees more than it said it can take. Discovery repeats periodically; a target
 * that stops answering it is withdrawn from the advertisements.
 */
import {
  BROADCAST_MAJOR,
  BROADCAST_MINOR,
  Command,
  ETH_HEADER_SIZE,
  Flag,
  MAC_SIZE,
  Off,
} from '../aoe/constants.js';
import { DecodeError } from '../aoe/decode-error.js';
import { formatMac } from '../aoe/mac.js';
import {
  decodeQueryConfig,
  encodeQueryConfig,
  QueryConfigArg,
  type QueryConfigFields,
} from '../aoe/query-config.js';
import { AoegwError } from '../errors.js';
import type { FrameLink } from '../io/frame-link.js';
import { type Log, silentLog } from '../log.js';
import {
  isErrorPdu,
  isResponsePdu,
  macEquals,
  PDU,
  PDU_ATA_HEADER,
  PDU_COMMON_HEADER,
  pduMajor,
  pduMinor,
  pduTag,
  setPduTag,
  writeFrame,
} from './pdu.js';
import { RECORD_AOE_RESPONSE, type TargetAdvert } from './peer-messages.js';
import type { PeerPort } from './peer-port.js';
import { NO_SLOT, TagMap } from './tag-map.js';

export interface ForwardSpec {
  /** Local link the targets are on. */
  readonly link: string;
  readonly targets: readonly { readonly shelf: number; readonly slot: number }[];
}

export interface ForwardSideOptions {
  readonly forwards: readonly ForwardSpec[];
  readonly pendingCapacity?: number;
  /** Forget a relayed request after this (the importer's initiator retransmits). Default 10 s. */
  readonly pendingTimeoutMs?: number;
  /** Discovery period. Default 10 s; a target unseen for 3 periods is withdrawn. */
  readonly discoverEveryMs?: number;
  readonly log?: Log;
}

export interface ForwardStats {
  framesIn: number;
  discovered: number;
  relayed: number;
  replies: number;
  staleReplies: number;
  noTarget: number;
  malformed: number;
  bufferFull: number;
  tableFull: number;
  tooLarge: number;
  sendFailed: number;
  expired: number;
}

/** Linux-style discovery: the whole argument zero. */
const DISCOVERY_ARG: QueryConfigFields = {
  bufferCount: 0,
  firmwareVersion: 0,
  sectorCount: 0,
  aoeVersion: 0,
  ccmd: 0,
};

/** Most requests relayed to one native target at once, whatever it advertises. */
const MAX_NATIVE_BUFFER_COUNT = 256;

/** Tag of our discovery queries; the table never hands it out. */
const DISCOVERY_TAG = 0x7fffffff;

class NativeTarget {
  mac: Buffer | null = null;
  bufferCount = 0;
  maxSectors = 2;
  firmware = 0;
  config: Uint8Array = new Uint8Array(0);
  seenAt = Number.NEGATIVE_INFINITY;
  outstanding = 0;
  /** Taken out of the configuration by a reload (its late replies are dropped). */
  removed = false;
  constructor(
    readonly index: number,
    readonly linkId: number,
    readonly shelf: number,
    readonly slot: number,
  ) {}
}

export class ForwardSide {
  readonly stats: ForwardStats = {
    framesIn: 0,
    discovered: 0,
    relayed: 0,
    replies: 0,
    staleReplies: 0,
    noTarget: 0,
    malformed: 0,
    bufferFull: 0,
    tableFull: 0,
    tooLarge: 0,
    sendFailed: 0,
    expired: 0,
  };
  private readonly specs: readonly ForwardSpec[];
  private readonly links: FrameLink[] = [];
  private readonly linkNames: string[] = [];
  private readonly targets: NativeTarget[] = [];
  private readonly byAddress = new Map<number, NativeTarget>();
  private readonly ports = new Map<string, PeerPort>();
  private readonly portList: (PeerPort | undefined)[] = [];
  private readonly table: TagMap;
  private readonly timeoutMs: number;
  private readonly everyMs: number;
  private readonly log: Log;
  private lastDiscovery = Number.NEGATIVE_INFINITY;
  private readonly pTarget: Int32Array;
  private readonly pPort: Int32Array;
  private readonly pRequest: Uint32Array;
  /** Bumped whenever what we can advertise changes (a target appeared, vanished or changed). */
  generation = 0;
  private readonly qc = new QueryConfigArg();
  /** Our broadcast discovery query (its source is set per link). */
  private readonly query = {
    dst: BROADCAST as Uint8Array,
    src: BROADCAST as Uint8Array,
    flags: 0,
    error: 0,
    major: BROADCAST_MAJOR,
    minor: BROADCAST_MINOR,
    command: Command.QUERY_CONFIG as number,
    tag: DISCOVERY_TAG,
  };

  constructor(opts: ForwardSideOptions) {
    this.specs = opts.forwards;
    this.table = new TagMap(opts.pendingCapacity ?? 4096);
    this.timeoutMs = opts.pendingTimeoutMs ?? 10_000;
    this.everyMs = opts.discoverEveryMs ?? 10_000;
    this.log = opts.log ?? silentLog;
    const cap = this.table.capacity;
    this.pTarget = new Int32Array(cap);
    this.pPort = new Int32Array(cap);
    this.pRequest = new Uint32Array(cap);
  }

  addLink(name: string, link: FrameLink): number {
    const id = this.links.length;
    this.links.push(link);
    this.linkNames.push(name);
    for (const spec of this.specs) {
      if (spec.link !== name) continue;
      for (const t of spec.targets) this.addTarget(name, t.shelf, t.slot);
    }
    return id;
  }

  /** Is `name` registered (addLink)? */
  hasLink(name: string): boolean {
    return this.linkNames.includes(name);
  }

  /** Forwards one more native target on a registered link (a reload); discovered at the next tick. */
  addTarget(link: string, shelf: number, slot: number): void {
    const id = this.linkNames.indexOf(link);
    if (id < 0) throw new AoegwError('ERR_GATEWAY_CONFIG', `forward link ${link} is not registered`);
    const nt = new NativeTarget(this.targets.length, id, shelf, slot);
    this.targets.push(nt);
    this.byAddress.set(shelf * 256 + slot, nt);
    this.lastDiscovery = Number.NEGATIVE_INFINITY;
  }

  /**
   * Stops forwarding a target (a reload): it is no longer advertised, and replies to requests
   * relayed to it are dropped (the importer's requests fail at the export side).
   */
  removeTarget(shelf: number, slot: number): void {
    const t = this.byAddress.get(shelf * 256 + slot);
    if (!t) return;
    this.byAddress.delete(shelf * 256 + slot);
    t.removed = true;
    if (t.mac !== null) this.generation++;
    t.mac = null;
  }

  /** Forgets a peer (a reload removed it): replies for its requests are dropped. */
  removePeer(name: string): void {
    const old = this.ports.get(name);
    if (old === undefined) return;
    this.ports.delete(name);
    this.portList[this.portList.indexOf(old)] = undefined;
  }

  /** A peer to relay for; a port of the same name replaces the earlier one (the export side's completion port). */
  addPeer(port: PeerPort): void {
    const old = this.ports.get(port.name);
    this.ports.set(port.name, port);
    if (old === undefined) this.portList.push(port);
    else this.portList[this.portList.indexOf(old)] = port;
  }

  /** Is shelf.slot one of the configured forwards? */
  has(shelf: number, slot: number): boolean {
    return this.byAddress.has(shelf * 256 + slot);
  }

  /** Discovered targets, as advertisements (capacity unknown: 0). */
  adverts(): TargetAdvert[] {
    const out: TargetAdvert[] = [];
    for (const t of this.targets) {
      if (t.mac === null || t.removed) continue;
      out.push({
        shelf: t.shelf,
        slot: t.slot,
        bufferCount: t.bufferCount,
        sectors: 0n,
        configString: t.config,
        maxSectors: t.maxSectors,
        name: '',
        readOnly: false,
        firmware: t.firmware,
      });
    }
    return out;
  }

  status(): { target: string; link: string; mac: string | null; bufferCount: number; outstanding: number }[] {
    return this.targets
      .filter((t) => !t.removed)
      .map((t) => ({
        target: `e${t.shelf}.${t.slot}`,
        link: this.linkNames[t.linkId]!,
        mac: t.mac ? formatMac(t.mac) : null,
        bufferCount: t.bufferCount,
        outstanding: t.outstanding,
      }));
  }

  /** Periodic work: discovery, expiry, withdrawal of silent targets. */
  tick(now: number): void {
    this.stats.expired += this.table.expire(now - this.timeoutMs, (s) => {
      const t = this.targets[this.pTarget[s]!];
      if (t && t.outstanding > 0) t.outstanding--;
    });
    if (now - this.lastDiscovery < this.everyMs) return;
    this.lastDiscovery = now;
    for (const t of this.targets) {
      if (t.mac !== null && now - t.seenAt > 3 * this.everyMs) {
        this.log.warn(`forward e${t.shelf}.${t.slot}: no answer to discovery, withdrawn`, {
          forward: `e${t.shelf}.${t.slot}`,
        });
        t.mac = null;
        this.generation++;
      }
    }
    for (const [id, link] of this.links.entries()) {
      if (!this.targets.some((t) => t.linkId === id && !t.removed)) continue;
      const f = link.txSlot();
      this.query.src = link.mac;
      const n = encodeQueryConfig(f, this.query, DISCOVERY_ARG);
      link.txCommit(n);
    }
  }

  /**
   * A peer's request for a forwarded target: buf[off, off + len) is the PDU (tag = its request id).
   * False when it was not sent (no target, no room, malformed): nothing reached the target.
   */
  relay(peer: string, buf: Uint8Array, off: number, len: number, now: number): boolean {
    const st = this.stats;
    const t = this.byAddress.get(pduMajor(buf, off) * 256 + pduMinor(buf, off));
    const port = this.ports.get(peer);
    if (t === undefined || t.mac === null || port === undefined) {
      st.noTarget++;
      return false;
    }
    if (t.outstanding >= Math.max(1, t.bufferCount)) {
      st.bufferFull++;
      return false;
    }
    // A native target may read a short write's missing data from an earlier frame (another
    // peer's): only whole requests are relayed.
    if (buf[off + PDU.COMMAND] === Command.ATA) {
      const write = (buf[off + PDU.ATA_AFLAGS]! & 0x01) !== 0;
      if (len < PDU_ATA_HEADER || (write && len !== PDU_ATA_HEADER + buf[off + PDU.ATA_SECTORS]! * 512)) {
        st.malformed++;
        return false;
      }
    }
    const link = this.links[t.linkId]!;
    if (ETH_HEADER_SIZE + len > link.maxFrame) {
      st.tooLarge++;
      return false;
    }
    let s = this.table.take(now);
    if (s !== NO_SLOT && this.table.tagOf(s) === DISCOVERY_TAG) {
      const again = this.table.take(now);
      this.table.release(s);
      s = again;
    }
    if (s === NO_SLOT) {
      st.tableFull++;
      return false;
    }
    this.pTarget[s] = t.index;
    this.pPort[s] = this.portList.indexOf(port);
    this.pRequest[s] = pduTag(buf, off);
    t.outstanding++;
    const f = link.txSlot();
    const n = writeFrame(f, t.mac, 0, link.mac, 0, buf, off, len);
    setPduTag(f, ETH_HEADER_SIZE, this.table.tagOf(s));
    link.txCommit(n);
    st.relayed++;
    return true;
  }

  /** One receive batch of forward link `linkId`: replies from native targets. */
  handleFrames(
    linkId: number,
    frames: readonly Buffer[],
    lengths: Int32Array | readonly number[],
    count: number,
    now: number,
  ): void {
    const link = this.links[linkId];
    if (link === undefined) return;
    const st = this.stats;
    for (let i = 0; i < count; i++) {
      const f = frames[i]!;
      const len = lengths[i]!;
      st.framesIn++;
      if (len < ETH_HEADER_SIZE + PDU_COMMON_HEADER || f[12] !== 0x88 || f[13] !== 0xa2) continue;
      const p = ETH_HEADER_SIZE;
      if (!isResponsePdu(f, p)) continue;
      if ((f[Off.DST]! & 1) === 0 && !macEquals(f, Off.DST, link.mac)) continue;
      const tag = pduTag(f, p);
      const s = this.table.find(tag);
      if (s !== NO_SLOT) {
        this.reply(s, f, len);
        continue;
      }
      // Discovery: answers to our query, or a target's unsolicited announcement (tag 0). Any
      // other tag is not ours to learn from.
      if (
        f[p + PDU.COMMAND] === Command.QUERY_CONFIG &&
        !isErrorPdu(f, p) &&
        (tag === DISCOVERY_TAG || tag === 0)
      )
        this.discoveredFrom(linkId, f, len, now);
      else st.staleReplies++;
    }
  }

  private reply(s: number, f: Buffer, len: number): void {
    const t = this.targets[this.pTarget[s]!]!;
    const p = ETH_HEADER_SIZE;
    // The reply must come from the target we sent to, for the address we sent to. Checked before
    // the slot is freed: a forged reply (tags are guessable) must neither cancel the real one nor
    // free the target's buffer while the request is still there.
    if (
      t.mac === null ||
      !macEquals(f, Off.SRC, t.mac) ||
      pduMajor(f, p) !== t.shelf ||
      pduMinor(f, p) !== t.slot
    ) {
      this.stats.staleReplies++;
      return;
    }
    const port = this.portList[this.pPort[s]!];
    this.table.release(s);
    if (t.outstanding > 0) t.outstanding--;
    if (port === undefined) return;
    if (f[p + PDU.COMMAND] === Command.QUERY_CONFIG && this.learnConfig(t, f, len)) this.generation++;
    setPduTag(f, p, this.pRequest[s]!);
    // The frame's Ethernet header is spent: the send may reuse those bytes.
    if (port.send(RECORD_AOE_RESPONSE, f, p, len - p)) this.stats.replies++;
    else this.stats.sendFailed++;
  }

  private discoveredFrom(linkId: number, f: Buffer, len: number, now: number): void {
    const p = ETH_HEADER_SIZE;
    const t = this.byAddress.get(pduMajor(f, p) * 256 + pduMinor(f, p));
    if (t === undefined || t.removed || t.linkId !== linkId || len < p + PDU_COMMON_HEADER + 8) return;
    const isNew = t.mac === null;
    if (isNew) {
      t.mac = Buffer.from(f.subarray(Off.SRC, Off.SRC + MAC_SIZE));
      this.stats.discovered++;
    } else if (!macEquals(f, Off.SRC, t.mac!)) {
      // One path per target: the first MAC that answered keeps it while it keeps answering.
      return;
    }
    t.seenAt = now;
    const changed = this.learnConfig(t, f, len);
    if (isNew || changed) {
      if (isNew)
        this.log.info(
          `forward e${t.shelf}.${t.slot}: found at ${formatMac(t.mac!)}, buffer count ${t.bufferCount}`,
          { forward: `e${t.shelf}.${t.slot}` },
        );
      this.generation++;
    }
  }

  /** Takes buffer count, sectors, firmware and config string from a config response; true if any changed. */
  private learnConfig(t: NativeTarget, f: Buffer, len: number): boolean {
    const q = this.qc;
    if ((f[ETH_HEADER_SIZE]! & Flag.ERROR) !== 0 || decodeQueryConfig(f, len, q) !== DecodeError.OK)
      return false;
    // Bounded: a forged count must not lift the per-target limit on outstanding requests.
    const bufcnt = Math.min(q.bufferCount, MAX_NATIVE_BUFFER_COUNT);
    const scnt = q.sectorCount || 2;
    const cfg = f.subarray(q.configOffset, q.configOffset + q.configLength);
    const changed =
      bufcnt !== t.bufferCount ||
      scnt !== t.maxSectors ||
      q.firmwareVersion !== t.firmware ||
      !Buffer.from(t.config).equals(cfg);
    if (changed) {
      t.bufferCount = bufcnt;
      t.maxSectors = scnt;
      t.firmware = q.firmwareVersion;
      t.config = Uint8Array.from(cfg);
    }
    return changed;
  }
}

const BROADCAST = Buffer.alloc(MAC_SIZE, 0xff);

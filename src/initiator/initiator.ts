/**
 * The initiator driver: one FrameLink, any number of TargetClients, discovery. Decodes each
 * received frame's header once (into a reused view) and hands ATA replies to the client of that
 * shelf/slot, Query Config replies to whoever is discovering. Runs the retransmission timer only
 * while something is outstanding.
 */

import { BROADCAST_MAJOR, BROADCAST_MINOR, Command, ConfigCmd, sectorsPerFrame } from '../aoe/constants.js';
import { AoeHeader, decodeHeader } from '../aoe/header.js';
import { decodeQueryConfig, encodeQueryConfig, QueryConfigArg } from '../aoe/query-config.js';
import { AoegwError } from '../errors.js';
import type { FrameLink } from '../io/frame-link.js';
import { targetKey } from './target-address.js';
import { TargetClient, type TargetClientOptions } from './target-client.js';

export interface ConfigAdvert {
  major: number;
  minor: number;
  mac: Buffer;
  bufferCount: number;
  firmwareVersion: number;
  /** Max sectors per ATA command the target accepts (0 on the wire means 2). */
  sectorCount: number;
  aoeVersion: number;
  config: Buffer;
}

export interface InitiatorStats {
  framesReceived: number;
  notForUs: number;
  malformed: number;
  unknownTarget: number;
}

const TICK_MS = 10;

export class Initiator {
  readonly link: FrameLink;
  readonly stats: InitiatorStats = { framesReceived: 0, notForUs: 0, malformed: 0, unknownTarget: 0 };
  private readonly clients = new Map<number, TargetClient>();
  private readonly hdr = new AoeHeader();
  private readonly qc = new QueryConfigArg();
  private advertListeners = new Set<(a: ConfigAdvert) => void>();
  private readonly exchanges = new Map<number, (frame: Buffer) => void>();
  private nextExchangeTag = 0x40000000;
  private timer: NodeJS.Timeout | undefined;
  private readonly clock: () => number;

  constructor(link: FrameLink, clock: () => number = () => performance.now()) {
    this.link = link;
    this.clock = clock;
    link.onBatch((frames, lens, count) => {
      const now = this.clock();
      for (let i = 0; i < count; i++) this.onFrame(frames[i]!, lens[i]!, now);
    });
  }

  private onFrame(buf: Buffer, len: number, now: number): void {
    this.stats.framesReceived++;
    if (len <= 0) {
      this.stats.malformed++;
      return;
    }
    const h = this.hdr;
    if (decodeHeader(buf, len, h) !== 0) {
      this.stats.malformed++;
      return;
    }
    // Only responses concern an initiator; requests from other initiators are ignored.
    if (!h.isResponse) {
      this.stats.notForUs++;
      return;
    }
    if (h.command === Command.ATA) {
      const c = this.clients.get(targetKey(h.major, h.minor));
      if (!c) {
        this.stats.unknownTarget++;
        return;
      }
      c.onReply(buf, len, h, now);
      return;
    }
    if (h.command !== Command.ATA && this.exchanges.size > 0) {
      const done = this.exchanges.get(h.tag >>> 0);
      if (done) {
        this.exchanges.delete(h.tag >>> 0);
        done(Buffer.from(buf.subarray(0, len)));
        return;
      }
    }
    if (h.command === Command.QUERY_CONFIG && this.advertListeners.size > 0 && !h.isError) {
      if (decodeQueryConfig(buf, len, this.qc) !== 0) {
        this.stats.malformed++;
        return;
      }
      const q = this.qc;
      const advert: ConfigAdvert = {
        major: h.major,
        minor: h.minor,
        mac: Buffer.from(h.src),
        bufferCount: q.bufferCount,
        firmwareVersion: q.firmwareVersion,
        sectorCount: q.sectorCount === 0 ? 2 : q.sectorCount,
        aoeVersion: q.aoeVersion,
        config: Buffer.from(buf.subarray(q.configOffset, q.configOffset + q.configLength)),
      };
      for (const l of this.advertListeners) l(advert);
    }
  }

  /** Broadcasts Query Config (read) and collects the answers for `waitMs`. */
  async queryConfig(waitMs = 1000, target?: { major: number; minor: number }): Promise<ConfigAdvert[]> {
    const found: ConfigAdvert[] = [];
    const seen = new Set<string>();
    const listener = (a: ConfigAdvert) => {
      if (target && (a.major !== target.major || a.minor !== target.minor)) return;
      const key = `${a.major}.${a.minor}@${a.mac.toString('hex')}`;
      if (seen.has(key)) return;
      seen.add(key);
      found.push(a);
    };
    this.advertListeners.add(listener);
    try {
      const h = {
        dst: Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        src: this.link.mac,
        flags: 0,
        error: 0,
        major: target?.major ?? BROADCAST_MAJOR,
        minor: target?.minor ?? BROADCAST_MINOR,
        command: Command.QUERY_CONFIG,
        tag: 0,
      };
      // Like Linux, the whole argument is zero: targets must answer a read with version nibble 0.
      const q = { bufferCount: 0, firmwareVersion: 0, sectorCount: 0, aoeVersion: 0, ccmd: ConfigCmd.READ };
      const slot = this.link.txSlot();
      this.link.txCommit(encodeQueryConfig(slot, h, q));
      this.link.flush();
      await new Promise((r) => setTimeout(r, waitMs));
    } finally {
      this.advertListeners.delete(listener);
    }
    return found;
  }

  /**
   * Sends one non-ATA request (Query Config, Mac Mask List, Reserve/Release) built by `build`
   * with a fresh tag, and resolves with the raw reply frame, or null after `waitMs`. For the rare
   * control commands; ATA goes through TargetClient.
   */
  async exchange(build: (tag: number) => Buffer, waitMs = 1000): Promise<Buffer | null> {
    const tag = this.nextExchangeTag;
    this.nextExchangeTag = this.nextExchangeTag >= 0x7ffffff0 ? 0x40000000 : this.nextExchangeTag + 1;
    const reply = new Promise<Buffer | null>((resolve) => {
      const timer = setTimeout(() => {
        this.exchanges.delete(tag);
        resolve(null);
      }, waitMs);
      this.exchanges.set(tag, (frame) => {
        clearTimeout(timer);
        resolve(frame);
      });
    });
    this.link.send(build(tag));
    this.link.flush();
    return reply;
  }

  /** Subscribes to every Query Config response (announcements included). */
  onAdvert(listener: (a: ConfigAdvert) => void): () => void {
    this.advertListeners.add(listener);
    return () => this.advertListeners.delete(listener);
  }

  /**
   * A client for one target as advertised. Window = min(buffer count, `maxWindow`); sectors per
   * frame = min(target's sector count, what our MTU carries).
   */
  client(
    advert: ConfigAdvert,
    opts: Partial<TargetClientOptions> & { maxWindow?: number } = {},
  ): TargetClient {
    const key = targetKey(advert.major, advert.minor);
    const existing = this.clients.get(key);
    if (existing) return existing;
    const spf = Math.min(advert.sectorCount, sectorsPerFrame(this.link.mtu));
    if (spf < 1) {
      throw new AoegwError('ERR_USAGE', `MTU ${this.link.mtu} of ${this.link.name} cannot carry one sector`);
    }
    const c = new TargetClient(
      { txSlot: () => this.link.txSlot(), txCommit: (n) => this.link.txCommit(n) },
      {
        major: advert.major,
        minor: advert.minor,
        targetMac: advert.mac,
        ownMac: this.link.mac,
        sectorsPerFrame: spf,
        window: Math.max(1, Math.min(advert.bufferCount || 1, opts.maxWindow ?? 64)),
        ...opts,
      },
    );
    this.clients.set(key, c);
    this.ensureTimer();
    return c;
  }

  /** Forgets the client of a target (its pending I/O fails with ERR_CLOSED). */
  dropClient(major: number, minor: number): void {
    const key = targetKey(major, minor);
    const c = this.clients.get(key);
    if (!c) return;
    this.clients.delete(key);
    c.abortAll(new AoegwError('ERR_CLOSED', `client of e${major}.${minor} dropped`));
  }

  private ensureTimer(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      const now = this.clock();
      for (const c of this.clients.values()) if (c.outstanding > 0) c.tick(now);
    }, TICK_MS);
  }

  now(): number {
    return this.clock();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const c of this.clients.values()) c.abortAll(new AoegwError('ERR_CLOSED', 'initiator closed'));
    this.clients.clear();
    this.link.close();
  }
}

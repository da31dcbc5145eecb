/**
 * The daemon's links, shared: one native link per interface, any number of consumers per link
 * (the built-in target, the import side, the forward side), each batch handed to every consumer
 * in the order they subscribed, then the after-batch hooks. A consumer sees the link through a
 * LinkView, which is a FrameLink whose onBatch subscribes instead of replacing the link's one
 * handler, and whose close() unsubscribes: code written against a link it owns (the target
 * server) runs unchanged on a shared one. Close order: every link stops receiving, then hooks
 * run one last time, then the links close (sending what is queued).
 */
import { AoegwError } from '../errors.js';
import type { BatchHandler, FrameLink, LinkStateHandler, LinkStats } from './frame-link.js';

interface Entry {
  readonly name: string;
  readonly link: FrameLink;
  consumers: BatchHandler[];
  errorHandlers: ((err: Error) => void)[];
  consumerErrors: number;
}

export class LinkSet {
  private readonly entries = new Map<string, Entry>();
  private readonly hooks: (() => void)[] = [];
  private closed = false;

  /** Takes ownership of `link` under `name` and starts receiving on it. */
  add(name: string, link: FrameLink): void {
    if (this.entries.has(name)) throw new AoegwError('ERR_USAGE', `link ${name} is added twice`);
    const entry: Entry = { name, link, consumers: [], errorHandlers: [], consumerErrors: 0 };
    this.entries.set(name, entry);
    link.onError((err) => {
      for (const h of entry.errorHandlers) h(err);
    });
    link.onBatch((frames, lengths, count) => {
      // A throwing consumer must not starve the ones after it.
      for (const c of entry.consumers) {
        try {
          c(frames, lengths, count);
        } catch (e) {
          entry.consumerErrors++;
          const err = e instanceof Error ? e : new Error(String(e));
          for (const h of entry.errorHandlers) h(err);
        }
      }
      this.runHooks();
    });
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  /** The shared link itself (transmit, stats). */
  link(name: string): FrameLink {
    return this.entry(name).link;
  }

  /** A consumer's view of the link. */
  view(name: string): FrameLink {
    return new LinkView(this.entry(name));
  }

  /** Runs after every batch of every link, after its consumers (state saves, tunnel flushes). */
  afterBatch(hook: () => void): void {
    this.hooks.push(hook);
  }

  stats(): Record<string, LinkStats & { consumerErrors: number }> {
    const out: Record<string, LinkStats & { consumerErrors: number }> = {};
    for (const e of this.entries.values())
      out[e.name] = { ...e.link.stats(), consumerErrors: e.consumerErrors };
    return out;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const e of this.entries.values()) e.link.pause();
    this.runHooks();
    for (const e of this.entries.values()) {
      try {
        e.link.close();
      } catch {
        // Closing: what cannot be sent any more is dropped (and counted by the link).
      }
    }
  }

  private runHooks(): void {
    for (const h of this.hooks) {
      try {
        h();
      } catch {
        // Hooks report their own failures; one must not stop the others.
      }
    }
  }

  private entry(name: string): Entry {
    const e = this.entries.get(name);
    if (!e) throw new AoegwError('ERR_USAGE', `no link named ${name}`);
    return e;
  }
}

/** A consumer's FrameLink over a shared link: receive subscribes, transmit goes to the link. */
class LinkView implements FrameLink {
  private handler: BatchHandler | null = null;
  private errorHandler: ((err: Error) => void) | null = null;
  private readonly stateSubscriptions: (() => void)[] = [];

  constructor(private readonly entry: Entry) {}

  get name(): string {
    return this.entry.link.name;
  }
  get mac(): Buffer {
    return this.entry.link.mac;
  }
  get mtu(): number {
    return this.entry.link.mtu;
  }
  get maxFrame(): number {
    return this.entry.link.maxFrame;
  }
  get state(): 'up' | 'down' {
    return this.entry.link.state;
  }

  onLinkState(handler: LinkStateHandler): () => void {
    const off = this.entry.link.onLinkState(handler);
    this.stateSubscriptions.push(off);
    return off;
  }

  onBatch(handler: BatchHandler): void {
    this.unsubscribe();
    this.handler = handler;
    this.entry.consumers.push(handler);
  }

  onError(handler: (err: Error) => void): void {
    if (this.errorHandler)
      this.entry.errorHandlers = this.entry.errorHandlers.filter((h) => h !== this.errorHandler);
    this.errorHandler = handler;
    this.entry.errorHandlers.push(handler);
  }

  txSlot(): Buffer {
    return this.entry.link.txSlot();
  }
  txCommit(length: number): void {
    this.entry.link.txCommit(length);
  }
  send(frame: Uint8Array, length?: number): void {
    this.entry.link.send(frame, length);
  }
  flush(): number {
    return this.entry.link.flush();
  }
  /** Stops this consumer only; the link keeps serving the others. */
  pause(): void {
    this.unsubscribe();
  }
  resume(): void {
    if (this.handler && !this.entry.consumers.includes(this.handler)) this.entry.consumers.push(this.handler);
  }
  stats(): LinkStats {
    return this.entry.link.stats();
  }
  /** Unsubscribes; the LinkSet closes the link itself. */
  close(): void {
    this.unsubscribe();
    for (const off of this.stateSubscriptions.splice(0)) off();
  }

  private unsubscribe(): void {
    if (this.handler) this.entry.consumers = this.entry.consumers.filter((h) => h !== this.handler);
  }
}

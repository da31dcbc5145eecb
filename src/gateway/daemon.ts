/**
 * The gateway daemon's driver: one process, one event loop, for every link, export, import,
 * forward and peer. It opens the links once (a LinkSet: each consumer sees every batch), runs the
 * built-in target over them plus one engine link per peer, runs the import and forward sides as
 * further consumers, and one UDP tunnel for all peers. All protocol behaviour is in the sans-I/O
 * sides; this file only wires them, runs the timers and sends advertisements.
 */

import { AoegwError } from '../errors.js';
import type { FrameLink, LinkStats } from '../io/frame-link.js';
import { LinkSet } from '../io/link-set.js';
import { PacketLink } from '../io/packet-link.js';
import { TapLink } from '../io/tap-link.js';
import { type Log, silentLog } from '../log.js';
import { type ServerStats, TargetServer } from '../target/server.js';
import { type ExportSpec, type LinkSpec, serviceMacOf, warnIfOwnMacUnknown } from '../target/spec.js';
import type { CryptoBackend, X25519KeyPair } from '../tunnel/crypto.js';
import { type EnrollmentAdmission, Send, type TunnelStats } from '../tunnel/endpoint.js';
import type { Peer } from '../tunnel/peer.js';
import { MAX_RECORD_VALUE } from '../tunnel/records.js';
import { UdpTunnel, type UdpTunnelDriverStats } from '../tunnel/udp-tunnel.js';
import { ExportSide, type ExportSideStats, type Grant } from './export-side.js';
import { ForwardSide, type ForwardStats } from './forward-side.js';
import type { GatewaySpec, PeerImportSpec, PeerSpec, TargetRef } from './gateway-spec.js';
import { ImportSide, type ImportSpec, type ImportStats } from './import-side.js';
import { PDU_ATA_HEADER } from './pdu.js';
import { PeerChannel } from './peer-channel.js';
import { TunnelPeerLink } from './peer-link.js';
import {
  advertChunks,
  decodePeerMessage,
  encodePeerMessage,
  GATEWAY_PROTOCOL_VERSION,
  type Hello,
  RECORD_AOE_IN_PROGRESS,
  RECORD_AOE_REQUEST,
  RECORD_AOE_RESPONSE,
  RECORD_CONTROL,
  REQUEST_PREFIX,
  type TargetAdvert,
} from './peer-messages.js';
import type { PeerPort } from './peer-port.js';
import { exportKey, planReload, summarizePlan } from './reload-plan.js';

export interface GatewayOptions {
  /** Our static key pair (needed when peers are configured); copied by the tunnel. */
  readonly keyPair?: X25519KeyPair;
  readonly crypto?: CryptoBackend;
  readonly log?: Log;
  /** Opens a link by config (tests inject fakes); default PacketLink. */
  readonly openLink?: (l: LinkSpec) => FrameLink;
  /** The config file (absolute) this daemon runs: it names the holder of a link's service MAC. */
  readonly configFile?: string;
  /** Period of the gateway's own timer (expiry, usability, reconnects). Default 100 ms. */
  readonly tickMs?: number;
  /** Advertisements are re-sent this often (and at once when they change). Default 10 s. */
  readonly advertEveryMs?: number;
  /**
   * Enrollment (docs/protocol.md 5.7): which invites are live, and pinning a peer that proved one.
   * `pinned` must make the peer one of this gateway's (a reload adding it) before returning true;
   * its session then comes up like any other peer's.
   */
  readonly enrollment?: {
    admit(inviteId: Uint8Array, publicKey: Uint8Array): EnrollmentAdmission | null;
    pinned(peer: Peer, inviteId: Uint8Array): boolean;
  };
}

/** What Gateway.reload() did, or why it did nothing. */
export interface ReloadResult {
  readonly ok: boolean;
  /** Every problem (refusals, a store that does not open); when any, nothing was applied. */
  readonly errors: string[];
  /** One line: `+1 peer, -0 peers, 2 grants changed, …` (empty when refused). */
  readonly summary: string;
  readonly changes: {
    peersAdded: number;
    peersRemoved: number;
    peersChanged: number;
    grantsChanged: number;
    exportsAdded: number;
    exportsRemoved: number;
    importsAdded: number;
    importsRemoved: number;
    forwardsAdded: number;
    forwardsRemoved: number;
  };
  /**
   * Settles when everything is in effect: a changed export is served again once the old one's
   * requests completed and its store closed.
   */
  readonly done: Promise<void>;
}

/** What Gateway.stats() returns (SIGUSR1, the control socket's status, the metrics). */
export interface GatewayStats {
  links: Record<string, LinkStats & { consumerErrors: number }>;
  target: ServerStats | null;
  imports:
    | (ImportStats & {
        pending: number;
        list: ReturnType<ImportSide['status']>;
        rtt: ReturnType<ImportSide['rttStatus']>;
      })
    | null;
  forwards: (ForwardStats & { list: ReturnType<ForwardSide['status']> }) | null;
  exportSide: ExportSideStats & { inFlight: number };
  peers: GatewayPeerStats[];
  tunnel: TunnelSummary | null;
  reloads: { applied: number; refused: number; last: string };
}

export interface GatewayPeerStats {
  name: string;
  /** Hex: how the target names this peer's initiators (`KEY/MAC`). */
  publicKey: string;
  connected: boolean;
  /** A session we can send with now (tunnel level; `connected` is the same seen from the gateway). */
  session: boolean;
  endpoint: ReturnType<UdpTunnel['peerEndpoint']> | null;
  /** Since the last completed handshake (monotonic ms); null before the first. */
  handshakeAgeMs: number | null;
  rxBytes: number;
  txBytes: number;
  rxRecords: number;
  txRecords: number;
  records: PeerRuntime['records'];
  grants: string[];
  /** The peer channel's counters (path MTU, fragments, probes). */
  [channel: string]: unknown;
}

/** The tunnel endpoint's counters (TunnelStats), its port and driver, rx as a plain array. */
export interface TunnelSummary extends Omit<TunnelStats, 'rx'> {
  localPort: number;
  driver: UdpTunnelDriverStats;
  /** Datagrams received by outcome, indexed as RX_NAMES. */
  rx: number[];
}

interface PeerRuntime {
  spec: PeerSpec;
  peer: Peer;
  port: PeerPort;
  grants: Grant[];
  lastAdvertAt: number;
  advertGeneration: number;
  lastConnectAt: number;
  lastErrorLogAt: number;
  /** Our last hello to the peer, and whether (and which version) it has sent us one. */
  helloSentAt: number;
  helloFromPeer: boolean;
  /** The newest request epoch of ours the peer's last hello said it accepted (an import side created later needs it). */
  requestEpochSeen: number;
  incompatible: boolean;
  /** Fragments and path MTU for this peer's records. */
  channel: PeerChannel;
  /** Whole records received (after reassembly), by kind: every one is counted once. */
  records: {
    requests: number;
    responses: number;
    responsesUnexpected: number;
    /** AOE_IN_PROGRESS notices (a resent request of ours is still running at the peer). */
    inProgress: number;
    /** AoE records of a peer whose hello names another protocol version: not used. */
    incompatible: number;
    control: number;
    controlMalformed: number;
    unknown: number;
  };
}

const HELLO_CAPABILITIES = ['aoe-request-v2', 'adverts-v1'];
/** A peer heard from within this is reachable (it sends advertisements every 10 s and keepalives). */
const REACHABLE_MS = 15_000;
/**
 * Largest AoE PDU carried through the tunnel (fragmented as needed): room for 31 sectors, more
 * than any Ethernet MTU gives (9000 → 17), while a peer's engine link keeps its buffers small.
 */
const PEER_PDU_MAX = 16384;

export class Gateway {
  readonly links = new LinkSet();
  readonly tunnel: UdpTunnel | null;
  readonly forwards: ForwardSide;
  readonly exportSide: ExportSide;
  private targetServer: TargetServer | null = null;
  private importSide: ImportSide | null = null;
  /** Links the import and forward sides consume (each subscribed once). */
  private readonly importLinks = new Set<string>();
  private readonly forwardLinks = new Set<string>();
  /** Makes each peer's engine-link MAC unique, across reloads too. */
  private nextPeerOrdinal = 0;
  /** Reloads applied and refused, and the last one's summary or first problem (status). */
  private readonly reloads = { applied: 0, refused: 0, last: '' };
  /** Exports a reload removed, until their store closed (by key). */
  private readonly exportRemovals = new Map<string, Promise<void>>();
  /** Exports a reload added that wait for the one at their address to drain (by key). */
  private readonly exportAdds = new Map<string, { cancelled: boolean }>();
  private readonly peers = new Map<string, PeerRuntime>();
  private readonly peerLinks = new Map<string, TunnelPeerLink>();
  /** The daemon's log, and this class's own lines (component gateway). */
  private readonly rootLog: Log;
  private readonly log: Log;
  private readonly timer: ReturnType<typeof setInterval>;
  private readonly advertEveryMs: number;
  /** Advertisement generation: bumped whenever what we offer changes (a config string, a forward). */
  private generation = 1;
  private lastConfigHash = 0;
  private lastForwardGeneration = 0;
  private stopped = false;
  private readonly openLink: (l: LinkSpec) => FrameLink;
  /** The import side's resend timer (ms precision), armed for its earliest due request. */
  private retransmitTimer: ReturnType<typeof setTimeout> | null = null;
  private retransmitAt = Number.POSITIVE_INFINITY;

  private constructor(
    private spec: GatewaySpec,
    opts: GatewayOptions,
  ) {
    this.rootLog = opts.log ?? silentLog;
    this.log = this.rootLog.child({ component: 'gateway' });
    this.advertEveryMs = opts.advertEveryMs ?? 10_000;
    this.openLink =
      opts.openLink ??
      ((l: LinkSpec) =>
        l.tap
          ? TapLink.open({
              name: l.iface,
              mtu: l.mtu ?? 1500,
              batch: l.batch,
              busyPollUs: l.busyPollUs,
              ...(l.netns ? { netns: l.netns } : {}),
            })
          : PacketLink.open({
              iface: l.iface,
              batch: l.batch,
              busyPollUs: l.busyPollUs,
              ...(l.netns ? { netns: l.netns } : {}),
              ...(l.mac ? { serviceMac: serviceMacOf(l, opts.configFile)! } : {}),
            }));
    // Everything opened so far is closed again if a later step fails. Links open on first use,
    // so the target's start-up checks (state file, stores, overlaps) run before any link does.
    try {
      // An inviter waiting for its first enrollment has no peers yet, but listens: peers are added
      // by a reload later.
      const listening = spec.listen !== undefined && opts.keyPair !== undefined && opts.crypto !== undefined;
      this.tunnel = spec.peers.length > 0 || listening ? this.openTunnel(opts) : null;
      this.forwards = new ForwardSide({ forwards: [], log: this.rootLog.child({ component: 'forwards' }) });
      for (const f of spec.forwards) for (const t of f.targets) this.addForward(f.link, t.shelf, t.slot);
      const exportBuffers = new Map(spec.exports.map((e) => [e.shelf * 256 + e.slot, e.bufferCount]));
      this.exportSide = new ExportSide(exportBuffers, this.forwards);
      for (const p of spec.peers) this.addPeer(p);
      this.targetServer = spec.exports.length > 0 ? this.startTarget() : null;
      this.startImports();
      // A configured link nobody uses yet is still opened: a missing interface is a start-up error.
      for (const l of spec.links) this.link(l.name);
    } catch (e) {
      (this as { tunnel: UdpTunnel | null }).tunnel?.close();
      this.links.close();
      throw e;
    }
    this.timer = setInterval(() => this.tick(), opts.tickMs ?? 100);
    // Links and the tunnel socket keep the process alive; a loop with only this timer left has
    // lost them all, and the CLI treats that as the failure it is.
    this.timer.unref();
    for (const p of this.peers.values()) if (p.spec.endpoint) this.connect(p, performance.now());
    this.tick();
  }

  /** The built-in target (null until there is an export to serve). */
  get target(): TargetServer | null {
    return this.targetServer;
  }

  /** The import side (null without a tunnel). */
  get imports(): ImportSide | null {
    return this.importSide;
  }

  /** The shared link `name`, opened on first use. */
  private link(name: string): FrameLink {
    if (!this.links.has(name)) {
      const spec = this.spec.links.find((l) => l.name === name);
      if (!spec) throw new AoegwError('ERR_GATEWAY_CONFIG', `no link named ${name}`);
      const link = this.openLink(spec);
      this.links.add(name, link);
      warnIfOwnMacUnknown(link, spec, this.log);
    }
    return this.links.link(name);
  }

  /** A consumer's view of the shared link `name` (opened on first use). */
  private view(name: string): FrameLink {
    this.link(name);
    return this.links.view(name);
  }

  /** Opens everything the spec names. Throws AoegwError (ERR_BIND, ERR_NO_SUCH_INTERFACE, ...) and leaves nothing open. */
  static start(spec: GatewaySpec, opts: GatewayOptions = {}): Gateway {
    return new Gateway(spec, opts);
  }

  // ---- construction ------------------------------------------------------------------------

  private openTunnel(opts: GatewayOptions): UdpTunnel {
    if (!opts.keyPair || !opts.crypto)
      throw new AoegwError('ERR_GATEWAY_CONFIG', 'peers need a key pair and a crypto backend');
    const listen = this.spec.listen;
    if (!listen) throw new AoegwError('ERR_GATEWAY_CONFIG', 'peers need a listen address');
    return UdpTunnel.open({
      crypto: opts.crypto,
      staticKeyPair: opts.keyPair,
      family: listen.address.includes(':') ? 6 : 4,
      address: listen.address,
      port: listen.port,
      mtu: this.spec.tunnel.mtu,
      // Spinning after a datagram saves a wakeup per reply, at the cost of CPU the other processes
      // on the path may need (see DEFAULT_TUNNEL_BUSY_POLL_US).
      busyPollUs: this.spec.tunnel.busyPollUs,
      ...(this.spec.tunnel.gso !== undefined ? { gso: this.spec.tunnel.gso } : {}),
      ...(this.spec.tunnel.gro !== undefined ? { gro: this.spec.tunnel.gro } : {}),
      onError: (e) => this.rootLog.child({ component: 'tunnel' }).warn(`tunnel: ${e.message}`),
      // Requests of one UDP receive batch reach the engine as one batch; their replies leave in
      // the same flush.
      onBatchEnd: () => this.exportSide.endBatch(),
      events: {
        record: (peer, type, buf, off, len) =>
          this.peerOf(peer)?.channel.receive(type, buf, off, len, performance.now()),
        handshakeComplete: (peer) => this.onSessionUp(peer),
        handshakeFailed: (peer) =>
          this.log.warn(`peer ${peer.name}: handshake failed, will retry`, { peer: peer.name }),
        endpointChanged: (peer) => {
          const ep = this.tunnel?.peerEndpoint(peer);
          this.log.info(`peer ${peer.name}: endpoint now ${JSON.stringify(ep)}`, {
            peer: peer.name,
            ...(ep ? { address: ep.address, port: ep.port } : {}),
          });
        },
        ...(opts.enrollment
          ? {
              admitEnrollment: (id: Uint8Array, pk: Uint8Array) => opts.enrollment!.admit(id, pk),
              enrolled: (peer: Peer, id: Uint8Array) => opts.enrollment!.pinned(peer, id),
            }
          : {}),
      },
    });
  }

  /** A peer: its tunnel peer, channel, grants at the export side, and engine link if it is granted an export. */
  private addPeer(spec: PeerSpec): PeerRuntime | null {
    const tunnel = this.tunnel;
    if (!tunnel) return null;
    // A key the tunnel already knows and no peer of ours uses (one that just enrolled) is adopted
    // with its session; anything else is a new tunnel peer.
    let known = tunnel.endpoint.peer(spec.publicKey);
    if (known && typeof known.userData === 'string' && this.peers.has(known.userData))
      throw new AoegwError('ERR_GATEWAY_CONFIG', `peer ${spec.name}: its key is peer ${known.userData}'s`);
    // A key still proving an invite is not adopted: its session holds the invite's PSK and would
    // be dropped when its proof time runs out. The configured peer starts afresh.
    if (known?.provisional) {
      tunnel.removePeer(known);
      known = undefined;
    }
    const peer =
      known ??
      tunnel.addPeer({
        publicKey: spec.publicKey,
        name: spec.name,
        ...(spec.endpoint ? { endpoint: spec.endpoint } : {}),
        ...(spec.persistentKeepaliveMs ? { persistentKeepaliveMs: spec.persistentKeepaliveMs } : {}),
      });
    if (known) {
      if (spec.endpoint) tunnel.setPeerEndpoint(known, spec.endpoint);
      known.persistentKeepaliveMs = spec.persistentKeepaliveMs;
    }
    const port: PeerPort = {
      name: spec.name,
      connected: () => peer.hasSession(tunnel.now()),
      reachable: (now) => peer.hasSession(now) && now - peer.lastReceivedAt <= REACHABLE_MS,
      lastHeardAt: () => peer.lastReceivedAt,
      nudge: (now) => {
        const p = this.peers.get(spec.name);
        if (!p) return;
        if (now - peer.lastReceivedAt < 1000) {
          // The peer answers, but not these requests: perhaps the path stopped carrying
          // datagrams this large. Probe it now rather than at the next period.
          p.channel.suspectPath(now);
        } else if (
          !peer.handshakeInProgress &&
          now - p.lastConnectAt >= 5000 &&
          now - peer.lastHandshakeAt >= 5000
        ) {
          // Silence: the peer may have restarted and lost our session. A new handshake costs one
          // round trip; waiting for the tunnel's own 15 s timer costs I/O.
          this.connect(p, now);
        }
      },
      send: (type, buf, off, len) => channel.send(type, buf, off, len),
    };
    const channel = new PeerChannel({
      name: spec.name,
      log: this.rootLog.child({ component: 'peer', peer: spec.name }),
      maxRecordBytes: MAX_RECORD_VALUE,
      now: performance.now(),
      deliver: (type, buf, off, len) => this.onRecord(spec.name, type, buf, off, len),
      tunnel: {
        mtu: tunnel.endpoint.mtu,
        send: (type, buf, off, len) => tunnel.send(peer, type, buf, off, len) === Send.OK,
        sendAlone: (type, buf, off, len) => tunnel.sendAlone(peer, type, buf, off, len) === Send.OK,
        setMtu: (mtu) => tunnel.setPeerMtu(peer, mtu),
        lastHeardAt: () => peer.lastReceivedAt,
      },
    });
    const grants = this.resolveGrants(spec);
    this.exportSide.addPeer(port, grants);
    const runtime: PeerRuntime = {
      spec,
      peer,
      port,
      grants,
      lastAdvertAt: Number.NEGATIVE_INFINITY,
      advertGeneration: -1,
      lastConnectAt: Number.NEGATIVE_INFINITY,
      lastErrorLogAt: Number.NEGATIVE_INFINITY,
      helloSentAt: Number.NEGATIVE_INFINITY,
      helloFromPeer: false,
      requestEpochSeen: 0,
      incompatible: false,
      channel,
      records: {
        requests: 0,
        responses: 0,
        responsesUnexpected: 0,
        inProgress: 0,
        incompatible: 0,
        control: 0,
        controlMalformed: 0,
        unknown: 0,
      },
    };
    this.peers.set(spec.name, runtime);
    peer.userData = spec.name;
    this.ensurePeerLink(runtime);
    // An adopted peer's session is already up: hello and advertisements now.
    if (known && runtime.port.connected(performance.now())) this.onSessionUp(peer);
    return runtime;
  }

  /** A peer granted a built-in export is one more link of the target (created once, when first needed). */
  private ensurePeerLink(p: PeerRuntime): void {
    const name = `peer:${p.spec.name}`;
    if (this.peerLinks.has(name)) return;
    if (!p.grants.some((g) => this.spec.exports.some((e) => e.shelf === g.shelf && e.slot === g.slot)))
      return;
    const link = new TunnelPeerLink(p.port, this.nextPeerOrdinal++, PEER_PDU_MAX);
    this.peerLinks.set(link.name, link);
    this.exportSide.setLink(p.spec.name, link);
    this.targetServer?.addLink(this.peerLinkSpec(link));
  }

  private peerLinkSpec(link: TunnelPeerLink): LinkSpec {
    return {
      name: link.name,
      iface: link.name,
      batch: 64,
      busyPollUs: 0,
      // Initiators behind a peer are principals of its namespace (its key): their masks and
      // reservations are not those of the same MAC behind another peer or on a local link.
      principal: Buffer.from(this.peers.get(link.peerName)!.spec.publicKey).toString('hex'),
      // An export limited to some local links is still reachable by the peers granted it.
      everyExport: true,
    };
  }

  /** Forgets a peer: its session ends now, its pending requests fail, its imports go. */
  private removePeer(name: string): void {
    const p = this.peers.get(name);
    if (!p) return;
    this.importSide?.removePeer(name);
    this.exportSide.removePeer(name);
    const linkName = `peer:${name}`;
    const link = this.peerLinks.get(linkName);
    if (link) {
      this.peerLinks.delete(linkName);
      if (!this.targetServer?.removeLink(linkName)) link.close();
    }
    p.peer.userData = undefined;
    this.tunnel?.removePeer(p.peer);
    this.peers.delete(name);
    this.log.info(`peer ${name}: removed`, { peer: name });
  }

  /** Grants by address; a target granted twice gets the wider access. */
  private resolveGrants(spec: PeerSpec): Grant[] {
    const out = new Map<number, Grant>();
    for (const g of spec.allow) {
      for (const ref of g.targets) {
        const addr = this.resolveLocal(ref);
        if (addr === null) continue;
        const prev = out.get(addr);
        const readOnly = g.access === 'ro' && (prev?.readOnly ?? true);
        out.set(addr, { shelf: addr >>> 8, slot: addr & 0xff, readOnly });
      }
    }
    return [...out.values()];
  }

  private resolveLocal(ref: TargetRef): number | null {
    if ('name' in ref) {
      const e = this.spec.exports.find((x) => x.name === ref.name);
      return e ? e.shelf * 256 + e.slot : null;
    }
    return ref.shelf * 256 + ref.slot;
  }

  private startTarget(exports: ExportSpec[] = [...this.spec.exports]): TargetServer {
    const peerLinkConfigs = [...this.peerLinks.values()].map((l) => this.peerLinkSpec(l));
    return TargetServer.start(
      {
        stateFile: this.spec.stateFile,
        links: [...this.spec.links, ...peerLinkConfigs],
        exports,
        ...(this.spec.blockIo ? { blockIo: this.spec.blockIo } : {}),
      },
      {
        log: this.rootLog.child({ component: 'target' }),
        openLink: (l) => this.peerLinks.get(l.name) ?? this.view(l.name),
      },
    );
  }

  private importSpec(peer: string, im: PeerImportSpec): ImportSpec {
    return {
      peer,
      remote: im.remote,
      localShelf: im.localShelf,
      localSlot: im.localSlot,
      links: im.links.length ? im.links : this.spec.links.map((l) => l.name),
    };
  }

  private startImports(): void {
    const specs: ImportSpec[] = [];
    for (const p of this.spec.peers) for (const im of p.imports) specs.push(this.importSpec(p.name, im));
    // With a tunnel the import side always exists, even with no import yet: it keeps what each
    // peer offers, so an import a reload adds is usable at once.
    if (!this.tunnel) return;
    const side = this.importSideFor(specs);
    for (const name of new Set(specs.flatMap((s) => s.links))) this.importOn(side, name);
  }

  /** The import side, created on first use (with `initial` imports, before any link is registered). */
  private importSideFor(initial: ImportSpec[] = []): ImportSide {
    if (this.importSide) return this.importSide;
    const side = new ImportSide({
      imports: initial,
      maxRecord: REQUEST_PREFIX + PEER_PDU_MAX,
      failAfterMs: this.spec.tunnel.failAfterMs,
      log: this.rootLog.child({ component: 'imports' }),
    });
    for (const p of this.peers.values()) {
      side.addPeer(p.port);
      // A session whose hello came before this side existed (the first import added by a reload).
      if (p.helloFromPeer) side.peerHello(p.spec.name, p.requestEpochSeen, performance.now());
    }
    this.importSide = side;
    return side;
  }

  /** The import side consumes link `name` (once). */
  private importOn(side: ImportSide, name: string): void {
    if (this.importLinks.has(name)) return;
    this.importLinks.add(name);
    const id = side.addLink(name, this.link(name));
    this.links.view(name).onBatch((frames, lens, n) => {
      side.handleFrames(id, frames, lens, n, performance.now());
      this.armRetransmit();
    });
  }

  private addImport(peer: string, im: PeerImportSpec): void {
    const spec = this.importSpec(peer, im);
    const side = this.importSideFor();
    for (const name of spec.links) this.importOn(side, name);
    side.addImport(spec, performance.now());
  }

  /** A forwarded native target; the forward side consumes its link (once). */
  private addForward(link: string, shelf: number, slot: number): void {
    const forwards = this.forwards;
    if (!this.forwardLinks.has(link)) {
      this.forwardLinks.add(link);
      const id = forwards.addLink(link, this.link(link));
      this.links
        .view(link)
        .onBatch((frames, lens, n) => forwards.handleFrames(id, frames, lens, n, performance.now()));
    }
    forwards.addTarget(link, shelf, slot);
  }

  // ---- reload ------------------------------------------------------------------------------

  /**
   * Applies a new spec as a diff (see reload-plan.ts): what did not change keeps its sessions and
   * its I/O in flight. Anything that needs a restart, or an added export whose store does not
   * open, refuses the whole reload (every problem listed) and nothing changes.
   */
  /** The spec running now (the last one started or reloaded). */
  get currentSpec(): GatewaySpec {
    return this.spec;
  }

  reload(next: GatewaySpec): ReloadResult {
    const plan = planReload(this.spec, next, { tunnelOpen: this.tunnel !== null });
    const errors = [...plan.refusals];
    if (this.stopped) errors.push('the gateway is stopped');
    // Stores of added exports open first: one that does not open refuses the reload, before
    // anything is applied.
    let stores: ReturnType<TargetServer['openStores']> = [];
    if (errors.length === 0 && plan.exportsAdded.length > 0) {
      try {
        this.targetServer ??= this.startTarget([]);
        stores = this.targetServer.openStores(
          plan.exportsAdded,
          plan.exportsRemoved.map((e) => exportKey(e)),
        );
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
    if (errors.length > 0) {
      this.reloads.refused++;
      this.reloads.last = `refused: ${errors[0]}`;
      return refused(errors);
    }
    this.spec = next;
    let grantsChanged = 0;
    try {
      for (const p of plan.peersRemoved) this.removePeer(p.name);
      for (const { peer, spec } of plan.importsRemoved)
        this.importSide?.removeImport(peer, spec.localShelf, spec.localSlot);
      for (const f of plan.forwardsRemoved) this.forwards.removeTarget(f.shelf, f.slot);
      for (const e of plan.exportsRemoved) {
        const key = exportKey(e);
        this.exportSide.deleteExport(e.shelf * 256 + e.slot);
        // Added by an earlier reload and still waiting for its predecessor to drain: never served.
        const waiting = this.exportAdds.get(key);
        if (waiting) waiting.cancelled = true;
        else if (this.targetServer) this.trackRemoval(key, this.targetServer.removeExport(key));
      }
      for (const f of plan.forwardsAdded) this.addForward(f.link, f.shelf, f.slot);
      for (const c of plan.peersChanged) {
        const p = this.peers.get(c.next.name);
        if (!p) continue;
        p.spec = c.next;
        if (c.keepalive) p.peer.persistentKeepaliveMs = c.next.persistentKeepaliveMs;
        if (c.endpoint && c.next.endpoint) {
          this.tunnel?.setPeerEndpoint(p.peer, c.next.endpoint);
          if (!p.port.connected(performance.now())) this.connect(p, performance.now());
        }
      }
      for (const s of plan.peersAdded) {
        const p = this.addPeer(s);
        if (!p) continue;
        this.importSide?.addPeer(p.port);
        if (s.endpoint) this.connect(p, performance.now());
      }
      for (const s of plan.peersAdded) for (const im of s.imports) this.addImport(s.name, im);
      for (const { peer, spec } of plan.importsAdded) this.addImport(peer, spec);
      // Grants by export name follow the exports; every peer's are recomputed.
      for (const p of this.peers.values()) {
        const grants = this.resolveGrants(p.spec);
        const n = this.exportSide.setGrants(p.spec.name, grants);
        if (n === 0) continue;
        grantsChanged += n;
        p.grants = grants;
        this.ensurePeerLink(p);
      }
    } catch (e) {
      // A bug, not a config problem (the plan was validated): say what was not applied.
      this.log.error(`reload: applying failed part way: ${(e as Error).message}`);
      this.discardUnserved(stores);
      this.reloads.refused++;
      this.reloads.last = `failed part way: ${(e as Error).message}`;
      return { ...refused([`applying failed part way: ${(e as Error).message}`]), summary: 'partial' };
    }
    // Added exports: at once, or once the export at their address (this reload's or an earlier
    // one's) has drained and closed its store.
    const adds: Promise<void>[] = [];
    for (const [i, e] of plan.exportsAdded.entries()) {
      const key = exportKey(e);
      const token = { cancelled: false };
      const earlier = this.exportAdds.get(key);
      if (earlier) earlier.cancelled = true;
      this.exportAdds.set(key, token);
      const add = () => {
        if (this.exportAdds.get(key) === token) this.exportAdds.delete(key);
        this.serveAdded(e, stores[i]!, token.cancelled);
      };
      const draining = this.exportRemovals.get(key);
      if (draining) adds.push(draining.then(add));
      else add();
    }
    for (const p of this.peers.values()) this.ensurePeerLink(p);
    const done = Promise.all(adds).then(() => {});
    this.advertiseNow();
    const summary = summarizePlan(plan, grantsChanged);
    this.reloads.applied++;
    this.reloads.last = summary;
    return {
      ok: true,
      errors: [],
      summary,
      changes: {
        peersAdded: plan.peersAdded.length,
        peersRemoved: plan.peersRemoved.length,
        peersChanged: plan.peersChanged.length,
        grantsChanged,
        exportsAdded: plan.exportsAdded.length,
        exportsRemoved: plan.exportsRemoved.length,
        importsAdded: plan.importsAdded.length + plan.peersAdded.reduce((n, p) => n + p.imports.length, 0),
        importsRemoved: plan.importsRemoved.length,
        forwardsAdded: plan.forwardsAdded.length,
        forwardsRemoved: plan.forwardsRemoved.length,
      },
      done,
    };
  }

  private trackRemoval(key: string, p: Promise<void>): void {
    const tracked = p.then(() => {
      if (this.exportRemovals.get(key) === tracked) this.exportRemovals.delete(key);
    });
    this.exportRemovals.set(key, tracked);
  }

  /** Serves an export a reload added (its store opened then), unless a later reload took it back. */
  private serveAdded(
    e: ExportSpec,
    store: ReturnType<TargetServer['openStores']>[number],
    cancelled: boolean,
  ): void {
    if (cancelled || this.stopped || !this.targetServer) {
      this.targetServer?.discardStores([store]);
      return;
    }
    try {
      this.targetServer.addExport(e, store);
      this.exportSide.setExport(e.shelf * 256 + e.slot, e.bufferCount);
      for (const p of this.peers.values()) this.ensurePeerLink(p);
    } catch (err) {
      this.log.error(`reload: export ${exportKey(e)} not served: ${(err as Error).message}`, {
        export: exportKey(e),
      });
    }
    this.advertiseNow();
  }

  private discardUnserved(stores: ReturnType<TargetServer['openStores']>): void {
    this.targetServer?.discardStores(stores);
  }

  /** What peers may use changed: every connected peer gets new advertisements now. */
  private advertiseNow(): void {
    this.generation = (this.generation + 1) >>> 0;
    const now = performance.now();
    for (const p of this.peers.values()) {
      try {
        this.sendAdverts(p, now);
      } catch (e) {
        this.log.error(`peer ${p.spec.name}: advertisement not sent: ${(e as Error).message}`, {
          peer: p.spec.name,
        });
      }
    }
  }

  // ---- tunnel events -----------------------------------------------------------------------

  private peerOf(peer: Peer): PeerRuntime | undefined {
    return typeof peer.userData === 'string' ? this.peers.get(peer.userData) : undefined;
  }

  /** A whole record from a peer (after reassembly). */
  private onRecord(name: string, type: number, buf: Uint8Array, off: number, len: number): void {
    const p = this.peers.get(name);
    if (!p) return;
    const c = p.records;
    switch (type) {
      case RECORD_AOE_REQUEST:
        c.requests++;
        if (p.incompatible) {
          c.incompatible++;
          return;
        }
        this.exportSide.handleRequest(p.spec.name, buf, off, len, performance.now());
        return;
      case RECORD_AOE_RESPONSE:
        c.responses++;
        if (p.incompatible) {
          c.incompatible++;
          return;
        }
        // No import was ever presented here: nothing of ours to answer.
        if (this.imports && this.importLinks.size > 0)
          this.imports.handleResponse(p.spec.name, buf, off, len, performance.now());
        else c.responsesUnexpected++;
        return;
      case RECORD_AOE_IN_PROGRESS:
        c.inProgress++;
        if (p.incompatible) {
          c.incompatible++;
          return;
        }
        if (this.imports && this.importLinks.size > 0)
          this.imports.handleInProgress(p.spec.name, buf, off, len, performance.now());
        else c.responsesUnexpected++;
        return;
      case RECORD_CONTROL: {
        c.control++;
        const msg = decodePeerMessage(buf, off, len);
        if (msg === null) {
          c.controlMalformed++;
          return;
        }
        if (msg.kind === 'adverts') {
          if (!p.incompatible) this.imports?.handleAdverts(p.spec.name, msg.adverts, performance.now());
        } else if (msg.kind === 'hello') {
          this.onHello(p, msg.hello);
        } else if (performance.now() - p.lastErrorLogAt >= 1000) {
          // A peer cannot flood the log: one of its errors a second is shown.
          p.lastErrorLogAt = performance.now();
          this.log.warn(`peer ${p.spec.name}: error ${msg.error.code}: ${msg.error.message.slice(0, 200)}`, {
            peer: p.spec.name,
          });
        }
        return;
      }
      default:
        c.unknown++;
        return; // unknown record types are ignored (forward compatibility)
    }
  }

  private onSessionUp(peer: Peer): void {
    const p = this.peerOf(peer);
    if (!p) return;
    this.log.info(`peer ${p.spec.name}: session up`, { peer: p.spec.name });
    p.channel.sessionUp(performance.now());
    this.sendHello(p, performance.now());
    this.sendAdverts(p, performance.now());
  }

  /** Our hello: version, and the newest request epoch we accepted from the peer (it numbers above it). */
  private sendHello(p: PeerRuntime, now: number): void {
    const hello = encodePeerMessage({
      kind: 'hello',
      hello: {
        protocolVersion: GATEWAY_PROTOCOL_VERSION,
        capabilities: HELLO_CAPABILITIES,
        gatewayName: this.spec.name,
        requestEpochSeen: this.exportSide.requestEpochSeen(p.spec.name),
      },
    });
    if (p.channel.send(RECORD_CONTROL, hello, 0, hello.length)) p.helloSentAt = now;
  }

  private onHello(p: PeerRuntime, hello: Hello): void {
    const now = performance.now();
    if (hello.protocolVersion !== GATEWAY_PROTOCOL_VERSION) {
      // Its records would be misread: use nothing of it, and say why once a second at most.
      p.incompatible = true;
      if (now - p.lastErrorLogAt >= 1000) {
        p.lastErrorLogAt = now;
        this.log.warn(
          `peer ${p.spec.name}: gateway protocol version ${hello.protocolVersion}, this gateway speaks ${GATEWAY_PROTOCOL_VERSION}: not used`,
          { peer: p.spec.name },
        );
      }
      return;
    }
    p.incompatible = false;
    p.helloFromPeer = true;
    p.requestEpochSeen = hello.requestEpochSeen ?? 0;
    this.imports?.peerHello(p.spec.name, p.requestEpochSeen, performance.now());
    // Requests held for this hello go out now, not at the next tick.
    this.armRetransmit();
    // A hello that crossed ours is not answered again; one that did not, is (its sender lacks ours).
    if (now - p.helloSentAt >= 1000) this.sendHello(p, now);
    if (now - p.lastAdvertAt > 1000) this.sendAdverts(p, now);
  }

  // ---- advertisements ----------------------------------------------------------------------

  /** What `p` may use here, as it is now. */
  private advertsFor(p: PeerRuntime): TargetAdvert[] {
    const out: TargetAdvert[] = [];
    const forwarded = new Map(this.forwards.adverts().map((a) => [a.shelf * 256 + a.slot, a]));
    for (const g of p.grants) {
      const addr = g.shelf * 256 + g.slot;
      const e = this.spec.exports.find((x) => x.shelf === g.shelf && x.slot === g.slot);
      if (e && this.target) {
        const info = this.target.engine.exportInfo(`e${e.shelf}.${e.slot}`);
        if (!info) continue;
        out.push({
          shelf: e.shelf,
          slot: e.slot,
          bufferCount: info.bufferCount,
          sectors: BigInt(info.sectors),
          configString: info.config,
          // What one AOE_RESPONSE record from here can carry, whatever the importer's MTU.
          maxSectors: Math.max(1, Math.min(info.maxSectors, this.recordSectors())),
          name: e.name ?? '',
          readOnly: g.readOnly || info.readOnly,
          firmware: info.firmwareVersion,
        });
        continue;
      }
      const f = forwarded.get(addr);
      if (f)
        out.push({
          ...f,
          maxSectors: Math.max(1, Math.min(f.maxSectors, this.recordSectors())),
          readOnly: g.readOnly,
        });
    }
    return out;
  }

  /** Sectors one AOE_RESPONSE record from here can carry, whatever the importer's MTU. */
  private recordSectors(): number {
    return Math.floor((PEER_PDU_MAX - PDU_ATA_HEADER) / 512);
  }

  private sendAdverts(p: PeerRuntime, now: number): void {
    const tunnel = this.tunnel;
    if (!tunnel || !p.port.connected(now)) return;
    const generation = this.generation;
    for (const chunk of advertChunks(generation, this.advertsFor(p), tunnel.endpoint.maxRecord)) {
      p.channel.send(RECORD_CONTROL, chunk, 0, chunk.length);
    }
    p.lastAdvertAt = now;
    p.advertGeneration = generation;
  }

  // ---- timer -------------------------------------------------------------------------------

  private connect(p: PeerRuntime, now: number): void {
    p.lastConnectAt = now;
    this.tunnel?.connect(p.peer);
  }

  private tick(): void {
    if (this.stopped) return;
    try {
      const now = performance.now();
      this.imports?.tick(now);
      this.armRetransmit();
      this.forwards.tick(now);
      this.exportSide.tick(now);
      const configHash = this.configHash();
      const forwardGeneration = this.forwards.generation;
      if (configHash !== this.lastConfigHash || forwardGeneration !== this.lastForwardGeneration) {
        this.lastConfigHash = configHash;
        this.lastForwardGeneration = forwardGeneration;
        this.generation = (this.generation + 1) >>> 0;
      }
      const generation = this.generation;
      for (const p of this.peers.values()) {
        if (p.port.connected(now)) {
          p.channel.tick(now);
          // Until the peer's hello arrives we do not know its view of our request epoch.
          if (!p.helloFromPeer && now - p.helloSentAt >= 1000) this.sendHello(p, now);
          if (p.advertGeneration !== generation || now - p.lastAdvertAt >= this.advertEveryMs) {
            // One peer whose advertisement cannot be built must not stop the others'.
            try {
              this.sendAdverts(p, now);
            } catch (e) {
              p.lastAdvertAt = now;
              p.advertGeneration = generation;
              this.log.error(`peer ${p.spec.name}: advertisement not sent: ${(e as Error).message}`, {
                peer: p.spec.name,
              });
            }
          }
        } else if (p.spec.endpoint && !p.peer.handshakeInProgress && now - p.lastConnectAt >= 5000) {
          this.connect(p, now);
        }
      }
    } catch (e) {
      this.log.error(`gateway timer: ${(e as Error).message}`);
    }
  }

  /** Sets the resend timer for the import side's earliest due request, if earlier than the one set. */
  private armRetransmit(): void {
    const imports = this.imports;
    if (!imports || this.stopped) return;
    const due = imports.nextDueAt();
    if (due >= this.retransmitAt) return;
    if (this.retransmitTimer) clearTimeout(this.retransmitTimer);
    this.retransmitAt = due;
    this.retransmitTimer = setTimeout(
      () => {
        this.retransmitTimer = null;
        this.retransmitAt = Number.POSITIVE_INFINITY;
        try {
          imports.retransmit(performance.now());
        } catch (e) {
          this.log.error(`gateway resend timer: ${(e as Error).message}`);
        }
        this.armRetransmit();
      },
      Math.max(0, due - performance.now()),
    );
    this.retransmitTimer.unref();
  }

  /** Changes when an export's config string changes (a set over any link), so peers learn it. */
  private configHash(): number {
    if (!this.target) return 1;
    let g = 1;
    for (const e of this.spec.exports) {
      const st = this.target.engine.exportState(`e${e.shelf}.${e.slot}`);
      if (!st) continue;
      for (const b of st.config) g = (Math.imul(g, 31) + b) >>> 0;
    }
    return g;
  }

  // ---- status and shutdown -----------------------------------------------------------------

  stats(): GatewayStats {
    const now = performance.now();
    return {
      links: this.links.stats(),
      target: this.target?.stats() ?? null,
      imports:
        this.imports && this.importLinks.size > 0
          ? {
              ...this.imports.stats,
              pending: this.imports.pending,
              list: this.imports.status(),
              rtt: this.imports.rttStatus(),
            }
          : null,
      forwards: this.forwardLinks.size > 0 ? { ...this.forwards.stats, list: this.forwards.status() } : null,
      exportSide: { ...this.exportSide.stats, inFlight: this.exportSide.inFlight },
      peers: [...this.peers.values()].map((p) => ({
        name: p.spec.name,
        publicKey: p.peer.id,
        connected: p.port.connected(now),
        session: this.tunnel ? p.peer.hasSession(this.tunnel.now()) : false,
        // In the tunnel's clock (monotonic ms); null: no handshake completed yet.
        handshakeAgeMs: Number.isFinite(p.peer.lastHandshakeAt)
          ? Math.round((this.tunnel?.now() ?? now) - p.peer.lastHandshakeAt)
          : null,
        endpoint: this.tunnel?.peerEndpoint(p.peer) ?? null,
        rxBytes: p.peer.rxBytes,
        txBytes: p.peer.txBytes,
        rxRecords: p.peer.rxRecords,
        txRecords: p.peer.txRecords,
        ...p.channel.stats(),
        records: { ...p.records },
        grants: p.grants.map((g) => `e${g.shelf}.${g.slot}:${g.readOnly ? 'ro' : 'rw'}`),
      })),
      tunnel: this.tunnel ? summarizeTunnel(this.tunnel) : null,
      reloads: { ...this.reloads },
    };
  }

  /** Stops receiving, completes what is in flight, makes acknowledged writes durable, zeroes keys. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    if (this.retransmitTimer) clearTimeout(this.retransmitTimer);
    let failure: unknown;
    try {
      this.target?.stop();
    } catch (e) {
      failure = e;
    }
    this.links.close();
    this.tunnel?.close();
    if (failure) throw failure;
  }
}

function refused(errors: string[]): ReloadResult {
  return {
    ok: false,
    errors,
    summary: '',
    changes: {
      peersAdded: 0,
      peersRemoved: 0,
      peersChanged: 0,
      grantsChanged: 0,
      exportsAdded: 0,
      exportsRemoved: 0,
      importsAdded: 0,
      importsRemoved: 0,
      forwardsAdded: 0,
      forwardsRemoved: 0,
    },
    done: Promise.resolve(),
  };
}

function summarizeTunnel(t: UdpTunnel): TunnelSummary {
  const s = t.stats();
  // Every endpoint counter (handlerErrors too: a record handler that threw lost its record).
  return { ...s.tunnel, localPort: t.localPort, driver: { ...s.driver }, rx: Array.from(s.tunnel.rx) };
}

/**
 * What one peer's records go through between the gateway sides and the tunnel: records larger
 * than one datagram are split into FRAGMENT records and put back together on arrival
 * (fragments.ts), and the datagram size is kept to what the routed path carries (path-mtu.ts: probe
 * records, answered with acks, lower the size when large datagrams vanish). The gateway sides see
 * whole records of any size up to the tunnel's record limit. Sans-I/O: the tunnel is a small
 * interface, time an argument.
 */

import { type Log, silentLog } from '../log.js';
import {
  FRAGMENT_HEADER_BYTES,
  Fragmenter,
  needsFragments,
  RECORD_FRAGMENT,
  Reassembler,
} from './fragments.js';
import { PathMtu, type PathMtuChange } from './path-mtu.js';
import {
  decodeProbeAck,
  decodeProbeId,
  encodeProbe,
  encodeProbeAck,
  PROBE_ACK_VALUE_BYTES,
  PROBE_MIN_VALUE_BYTES,
  ProbeAck,
  RECORD_PROBE,
  RECORD_PROBE_ACK,
  recordBytesForDatagram,
} from './probe-records.js';

/** The tunnel as one peer's channel needs it. */
export interface ChannelTunnel {
  /** Queues one record (copied); false when refused. */
  send(type: number, buf: Uint8Array, off: number, len: number): boolean;
  /** One record alone in a datagram of exactly its size. */
  sendAlone(type: number, buf: Uint8Array, off: number, len: number): boolean;
  /** Datagrams at most `mtu` bytes from now on. */
  setMtu(mtu: number): void;
  /** The configured tunnel MTU (datagram bytes). */
  readonly mtu: number;
  /** When an authenticated datagram from the peer last arrived (ms). */
  lastHeardAt(): number;
}

export interface PeerChannelOptions {
  readonly tunnel: ChannelTunnel;
  /** A whole record from the peer (reassembled or not); the view is valid during the call. */
  readonly deliver: (type: number, buf: Uint8Array, off: number, len: number) => void;
  readonly log?: Log;
  /** Peer name, for logs. */
  readonly name: string;
  /** Largest record a gateway side may hand send() (the tunnel's record limit). */
  readonly maxRecordBytes: number;
  readonly now: number;
}

export class PeerChannel {
  readonly fragmenter: Fragmenter;
  readonly reassembler: Reassembler;
  readonly pathMtu: PathMtu;
  private readonly tunnel: ChannelTunnel;
  private readonly deliver: PeerChannelOptions['deliver'];
  private readonly log: Log;
  private readonly name: string;
  private readonly probe: Uint8Array;
  private readonly ack = new Uint8Array(PROBE_ACK_VALUE_BYTES);
  private readonly ackIn = new ProbeAck();
  /** Records sent whole and sent as fragments (for stats). */
  recordsWhole = 0;
  recordsFragmented = 0;
  probesAnswered = 0;
  /** PROBEs whose ack the tunnel refused (no session to send it on). */
  probesUnanswered = 0;
  /** PROBE / PROBE_ACK records too short to read. */
  probesMalformed = 0;
  /** PROBE_ACK records long enough to read (the path MTU counters say what each one meant). */
  probeAcksIn = 0;

  constructor(o: PeerChannelOptions) {
    this.tunnel = o.tunnel;
    this.deliver = o.deliver;
    this.log = o.log ?? silentLog;
    this.name = o.name;
    const maxValue = recordBytesForDatagram(o.tunnel.mtu);
    this.fragmenter = new Fragmenter({
      maxFragmentValueBytes: maxValue,
      sink: (t, b, off, len) => this.tunnel.send(t, b, off, len),
    });
    this.reassembler = new Reassembler({ deliver: o.deliver, maxMessageBytes: o.maxRecordBytes });
    this.probe = new Uint8Array(maxValue);
    this.pathMtu = new PathMtu(
      {
        configuredMtu: o.tunnel.mtu,
        events: {
          changed: (c: PathMtuChange) => {
            this.tunnel.setMtu(c.toMtu);
            this.log.info(
              `peer ${this.name}: path MTU ${c.kind} from ${c.fromMtu} to ${c.toMtu} bytes (${c.reason === 'probe-loss' ? 'datagrams of that size are not arriving' : 'a larger probe arrived'})`,
            );
          },
          floorLost: (min) =>
            this.log.warn(
              `peer ${this.name}: probes of the minimum size (${min} bytes) go unanswered while the peer answers`,
            ),
        },
      },
      o.now,
    );
  }

  /** The largest record value one datagram carries now. */
  get recordBytesNow(): number {
    return recordBytesForDatagram(this.pathMtu.current);
  }

  /** Sends one record, in fragments when it does not fit one datagram at the current path MTU. */
  send(type: number, buf: Uint8Array, off: number, len: number): boolean {
    const room = this.recordBytesNow;
    if (!needsFragments(len, room)) {
      this.recordsWhole++;
      return this.tunnel.send(type, buf, off, len);
    }
    if (room <= FRAGMENT_HEADER_BYTES) return false;
    this.recordsFragmented++;
    return this.fragmenter.split(type, buf, off, len, room);
  }

  /** One record from the peer: fragments and probes are handled here, the rest delivered. */
  receive(type: number, buf: Uint8Array, off: number, len: number, now: number): void {
    switch (type) {
      case RECORD_FRAGMENT:
        this.reassembler.accept(buf, off, len, now);
        return;
      case RECORD_PROBE: {
        const id = decodeProbeId(buf, off, len);
        if (id < 0) {
          this.probesMalformed++;
          return;
        }
        encodeProbeAck(this.ack, 0, id, len);
        if (this.tunnel.send(RECORD_PROBE_ACK, this.ack, 0, PROBE_ACK_VALUE_BYTES)) this.probesAnswered++;
        else this.probesUnanswered++;
        return;
      }
      case RECORD_PROBE_ACK:
        if (!decodeProbeAck(buf, off, len, this.ackIn)) {
          this.probesMalformed++;
          return;
        }
        this.probeAcksIn++;
        this.pathMtu.onAck(this.ackIn.probeId, now, this.ackIn.probeValueBytes);
        return;
      default:
        this.deliver(type, buf, off, len);
        return;
    }
  }

  /**
   * A new session (every rekey, every reconnect): partial messages of the old one are dropped. What
   * was learned about the path, and a probe under way, stay: the path did not change with the keys,
   * and a reconnect every few seconds (requests unanswered on a path that drops large datagrams)
   * must not keep probes from ever being judged.
   */
  sessionUp(_now: number): void {
    this.reassembler.reset();
  }

  /** Requests go unanswered while the peer answers small messages: check the size soon. */
  suspectPath(now: number): void {
    this.pathMtu.probeSoon(now);
  }

  /** Periodic work while the peer has a session: expire partial messages, send a due probe. */
  tick(now: number): void {
    this.reassembler.tick(now);
    const p = this.pathMtu.tick(now, this.tunnel.lastHeardAt());
    if (p === null) return;
    const value = recordBytesForDatagram(p.sizeBytes);
    encodeProbe(this.probe, 0, p.probeId, value);
    this.tunnel.sendAlone(RECORD_PROBE, this.probe, 0, value);
    encodeProbe(this.probe, 0, p.livenessProbeId, PROBE_MIN_VALUE_BYTES);
    this.tunnel.send(RECORD_PROBE, this.probe, 0, PROBE_MIN_VALUE_BYTES);
  }

  stats(): Record<string, unknown> {
    return {
      pathMtu: this.pathMtu.current,
      recordsWhole: this.recordsWhole,
      recordsFragmented: this.recordsFragmented,
      fragmenter: { ...this.fragmenter.counters },
      reassembler: {
        ...this.reassembler.counters,
        messagesHeld: this.reassembler.messagesHeld,
        // The last term of the counters' identity (fragments.ts), so it can be checked at any time.
        partsHeld: this.reassembler.partsHeld,
      },
      probes: {
        ...this.pathMtu.counters,
        answered: this.probesAnswered,
        unanswered: this.probesUnanswered,
        acksIn: this.probeAcksIn,
        malformed: this.probesMalformed,
      },
    };
  }
}

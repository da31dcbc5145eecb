/**
 * The enrolling side of an invite (docs/operations.md, "Enrollment"): from a one-off UDP socket,
 * send enrollment initiations (MSG_ENROLL, the token's invite id and PSK) to the inviter's
 * endpoints in turn, and once the session is up speak the gateway protocol just far enough to learn
 * the outcome: our hello, the inviter's hello (its name) and its complete advertisement (what we
 * were granted). The inviter sends those only after it pinned us, so receiving them is the proof
 * that the enrollment happened. Nothing here touches a file: the caller pins the inviter afterwards.
 */
import { formatEndpoint } from '../enroll/endpoint.js';
import { AoegwError } from '../errors.js';
import type { UdpEndpoint } from '../io/udp-address.js';
import type { Log } from '../log.js';
import type { CryptoBackend, X25519KeyPair } from '../tunnel/crypto.js';
import { Rx, Send } from '../tunnel/endpoint.js';
import type { Peer } from '../tunnel/peer.js';
import { MAX_RECORD_VALUE } from '../tunnel/records.js';
import { UdpTunnel } from '../tunnel/udp-tunnel.js';
import { PeerChannel } from './peer-channel.js';
import {
  type AdvertChunk,
  decodePeerMessage,
  encodePeerMessage,
  GATEWAY_PROTOCOL_VERSION,
  RECORD_CONTROL,
  type TargetAdvert,
} from './peer-messages.js';

export interface EnrollInvite {
  readonly inviterPublicKey: Uint8Array;
  readonly endpoints: readonly UdpEndpoint[];
  readonly inviteId: Uint8Array;
  readonly psk: Uint8Array;
}

export interface EnrollOutcome {
  /** The inviter's endpoint that answered. */
  readonly endpoint: UdpEndpoint;
  /** The inviter's gateway name, from its hello. */
  readonly gatewayName: string;
  /** What the inviter granted us, from its advertisement. */
  readonly targets: readonly TargetAdvert[];
}

export interface EnrollSessionOptions {
  readonly crypto: CryptoBackend;
  readonly keyPair: X25519KeyPair;
  readonly invite: EnrollInvite;
  /** Our gateway name, sent in our hello. */
  readonly name: string;
  /** Time for each endpoint of the token (ms, default 10 s). */
  readonly perEndpointMs?: number;
  /** Run the socket in this network namespace (tests). */
  readonly netns?: string;
  readonly log?: Log;
}

/** Initiation retry interval while enrolling: an operator waits at the terminal. */
const RETRY_MS = 1000;

/** Text the inviter chose (names, error messages), made safe to print: no terminal control characters. */
export function printable(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: these are what is being removed
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

/** Enrolls with the inviter; resolves with what it granted, or throws ERR_ENROLL saying why. */
export async function enrollWithInviter(o: EnrollSessionOptions): Promise<EnrollOutcome> {
  const perEndpointMs = o.perEndpointMs ?? 10_000;
  const tried: string[] = [];
  const reasons: string[] = [];
  for (const ep of o.invite.endpoints) {
    const label = formatEndpoint(ep);
    tried.push(label);
    o.log?.info(`enrolling with ${label}`);
    const outcome = await attempt(o, ep, perEndpointMs);
    if (outcome.kind === 'done') return outcome.result;
    o.log?.warn(`${label}: ${outcome.why}`);
    if (outcome.kind === 'fatal') throw new AoegwError('ERR_ENROLL', `${label}: ${outcome.why}`);
    reasons.push(outcome.why);
  }
  if (reasons.some((r) => r !== 'no handshake response')) {
    throw new AoegwError(
      'ERR_ENROLL',
      `enrollment with ${tried.join(', ')} failed: ${[...new Set(reasons)].join('; ')}. Nothing was changed here.`,
    );
  }
  throw new AoegwError(
    'ERR_ENROLL',
    `no inviter answered at ${tried.join(', ')}. Either the endpoint is unreachable (firewall, wrong address: check UDP to it), ` +
      'or the inviter does not know this invite (already used, cancelled, expired, or its daemon is not running), ' +
      'or the token was altered. Nothing was changed here; ask the inviter for a new token.',
  );
}

type Attempt =
  | { kind: 'done'; result: EnrollOutcome }
  | { kind: 'retry'; why: string }
  | { kind: 'fatal'; why: string };

function attempt(o: EnrollSessionOptions, ep: UdpEndpoint, timeoutMs: number): Promise<Attempt> {
  const family = ep.address.includes(':') ? 6 : 4;
  return new Promise<Attempt>((resolve) => {
    let channel: PeerChannel | null = null;
    let gatewayName: string | null = null;
    let sessionUp = false;
    const chunks = new Map<number, Map<number, AdvertChunk>>();
    let timer: ReturnType<typeof setInterval> | null = null;
    let deadline: ReturnType<typeof setTimeout> | null = null;
    let tunnel: UdpTunnel | null = null;
    let settled = false;
    const finish = (a: Attempt) => {
      if (settled) return;
      settled = true;
      if (timer) clearInterval(timer);
      if (deadline) clearTimeout(deadline);
      // Closing zeroes the session keys, our key copy and the PSK copy in the peer.
      tunnel?.close();
      resolve(a);
    };
    let helloAt = Number.NEGATIVE_INFINITY;
    const sendHello = () => {
      helloAt = performance.now();
      const hello = encodePeerMessage({
        kind: 'hello',
        hello: { protocolVersion: GATEWAY_PROTOCOL_VERSION, capabilities: [], gatewayName: o.name },
      });
      channel?.send(RECORD_CONTROL, hello, 0, hello.length);
    };
    const onControl = (buf: Uint8Array, off: number, len: number) => {
      const msg = decodePeerMessage(buf, off, len);
      if (msg === null) return;
      if (msg.kind === 'hello') {
        if (msg.hello.protocolVersion !== GATEWAY_PROTOCOL_VERSION) {
          finish({
            kind: 'fatal',
            why: `the inviter speaks gateway protocol ${msg.hello.protocolVersion}, this aoegw ${GATEWAY_PROTOCOL_VERSION}: upgrade one of them`,
          });
        } else {
          gatewayName = msg.hello.gatewayName;
        }
        return;
      }
      if (msg.kind === 'error') {
        const text = printable(msg.error.message.slice(0, 200));
        finish({ kind: 'fatal', why: `the inviter refused: ${text}` });
        return;
      }
      const a = msg.adverts;
      let gen = chunks.get(a.generation);
      if (!gen) {
        gen = new Map();
        chunks.set(a.generation, gen);
      }
      gen.set(a.chunk, a);
      if (gen.size === a.chunks && gatewayName !== null) {
        const targets = [...gen.values()].sort((x, y) => x.chunk - y.chunk).flatMap((c) => c.targets);
        finish({ kind: 'done', result: { endpoint: ep, gatewayName, targets } });
      }
    };
    let peer: Peer;
    try {
      tunnel = UdpTunnel.open({
        crypto: o.crypto,
        staticKeyPair: o.keyPair,
        family,
        address: family === 6 ? '::' : '0.0.0.0',
        port: 0,
        ...(o.netns ? { netns: o.netns } : {}),
        timers: { rekeyTimeout: RETRY_MS, rekeyAttemptTime: timeoutMs },
        events: {
          record: (_p, type, buf, off, len) => channel?.receive(type, buf, off, len, performance.now()),
          handshakeComplete: () => {
            sessionUp = true;
            channel?.sessionUp(performance.now());
            sendHello();
          },
        },
      });
      peer = tunnel.addPeer({
        publicKey: o.invite.inviterPublicKey,
        psk: o.invite.psk,
        inviteId: o.invite.inviteId,
        endpoint: ep,
        name: 'inviter',
      });
    } catch (e) {
      finish({ kind: 'fatal', why: (e as Error).message });
      return;
    }
    const t = tunnel;
    channel = new PeerChannel({
      name: 'inviter',
      maxRecordBytes: MAX_RECORD_VALUE,
      now: performance.now(),
      deliver: (type, buf, off, len) => {
        if (type === RECORD_CONTROL) onControl(buf, off, len);
      },
      tunnel: {
        mtu: t.endpoint.mtu,
        send: (type, buf, off, len) => t.send(peer, type, buf, off, len) === Send.OK,
        sendAlone: (type, buf, off, len) => t.sendAlone(peer, type, buf, off, len) === Send.OK,
        setMtu: (mtu) => t.setPeerMtu(peer, mtu),
        lastHeardAt: () => peer.lastReceivedAt,
      },
    });
    t.connect(peer);
    timer = setInterval(() => {
      channel?.tick(performance.now());
      // Our hello is repeated each second until the inviter's answer arrives (records can be lost).
      if (sessionUp && performance.now() - helloAt >= RETRY_MS) sendHello();
    }, RETRY_MS / 4);
    // Only the deadline decides: a handshake message that fails to authenticate is a hint, never
    // a reason to stop early (anyone who knows our public key can send one to this port).
    deadline = setTimeout(() => {
      let why = 'no handshake response';
      if (sessionUp)
        why = 'the handshake completed but the inviter did not confirm the enrollment (its log says why)';
      else if (t.endpoint.stats.rx[Rx.HANDSHAKE_FAILED]! > 0)
        why =
          "an answer came that does not authenticate with the token's PSK: the token was altered (ask for a new one), or someone is sending forged handshake messages";
      finish({ kind: 'retry', why });
    }, timeoutMs);
  });
}

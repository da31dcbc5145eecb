/**
 * Side B of the gateway (sans-I/O): what peers may use here, checked on every record after
 * decryption. Deny by default: a peer reaches only the targets its grants name, and a read-only
 * grant lets through only reads (READ, IDENTIFY, CHECK POWER MODE, FLUSH) and the read forms of
 * Query Config, Mac Mask List and Reserve/Release. Everything else from a read-only peer is
 * refused with the protocol's error: ATA ABRT for writes and unknown ATA commands, AoE errors for
 * config sets (4), mask edits (2) and reservations (6). A request for a target that is not
 * granted is dropped and counted, exactly as if the target did not exist.
 *
 * Allowed requests go to a built-in export through the peer's TunnelPeerLink (batched; the
 * daemon calls endBatch() after each UDP receive batch), or to a native target via ForwardSide.
 */
import { copyBytes } from '../aoe/bytes.js';
import {
  AOE_VERSION,
  AoeErrorCode,
  AtaErrorBit,
  AtaOp,
  AtaStatus,
  Command,
  ConfigCmd,
  Flag,
  MaskCmd,
  ReserveCmd,
} from '../aoe/constants.js';
import type { ForwardSide } from './forward-side.js';
import {
  isErrorPdu,
  isGroupMac,
  isResponsePdu,
  PDU,
  PDU_ATA_HEADER,
  PDU_COMMON_HEADER,
  pduMajor,
  pduMinor,
} from './pdu.js';
import type { TunnelPeerLink } from './peer-link.js';
import { RECORD_AOE_RESPONSE, REQUEST_PREFIX } from './peer-messages.js';
import type { PeerPort } from './peer-port.js';

export interface Grant {
  readonly shelf: number;
  readonly slot: number;
  readonly readOnly: boolean;
}

export interface ExportSideStats {
  requests: number;
  malformed: number;
  groupSource: number;
  denied: number;
  readOnlyRefused: number;
  toExports: number;
  toForwards: number;
}

interface PeerEntry {
  port: PeerPort;
  grants: Map<number, Grant>;
  link: TunnelPeerLink | null;
}

export class ExportSide {
  readonly stats: ExportSideStats = {
    requests: 0,
    malformed: 0,
    groupSource: 0,
    denied: 0,
    readOnlyRefused: 0,
    toExports: 0,
    toForwards: 0,
  };
  private readonly peers = new Map<string, PeerEntry>();
  private readonly dirty: TunnelPeerLink[] = [];
  /** Room to echo the largest control request: a Mac Mask List of 255 directives. */
  private readonly reply = Buffer.alloc(PDU_COMMON_HEADER + 4 + 255 * 8);

  /**
   * `exports`: addresses (shelf*256+slot) of built-in exports; `forwards`: native targets, or null.
   */
  constructor(
    private readonly exports: ReadonlySet<number>,
    private readonly forwards: ForwardSide | null,
  ) {}

  /** A peer and what it may use; `link` is its engine link (null when no export is granted). */
  addPeer(port: PeerPort, grants: readonly Grant[], link: TunnelPeerLink | null): void {
    const map = new Map<number, Grant>();
    for (const g of grants) map.set(g.shelf * 256 + g.slot, g);
    this.peers.set(port.name, { port, grants: map, link });
  }

  grants(peer: string): Grant[] {
    return [...(this.peers.get(peer)?.grants.values() ?? [])];
  }

  /** An AOE_REQUEST record from `peer`: buf[off, off + len) = [initiator MAC][PDU]. */
  handleRequest(peer: string, buf: Uint8Array, off: number, len: number, now: number): void {
    const st = this.stats;
    st.requests++;
    const entry = this.peers.get(peer);
    const p = off + REQUEST_PREFIX;
    const pduLen = len - REQUEST_PREFIX;
    if (entry === undefined || pduLen < PDU_COMMON_HEADER) {
      st.malformed++;
      return;
    }
    if (isGroupMac(buf, off)) {
      st.groupSource++;
      return;
    }
    if (isResponsePdu(buf, p) || isErrorPdu(buf, p) || buf[p]! >>> 4 !== AOE_VERSION) {
      st.malformed++;
      return;
    }
    const address = pduMajor(buf, p) * 256 + pduMinor(buf, p);
    const grant = entry.grants.get(address);
    if (grant === undefined) {
      st.denied++;
      return;
    }
    if (grant.readOnly && tooShort(buf, p, pduLen)) {
      // What a read-only request would do cannot be judged without its argument, and a native
      // target may fill the missing bytes from its previous frame: dropped, not passed on.
      st.malformed++;
      return;
    }
    if (grant.readOnly && this.refuseWrite(entry.port, buf, p, pduLen)) {
      st.readOnlyRefused++;
      return;
    }
    if (this.exports.has(address)) {
      if (entry.link === null) {
        st.denied++;
        return;
      }
      if (entry.link.push(buf, off, buf, p, pduLen)) {
        st.toExports++;
        if (!this.dirty.includes(entry.link)) this.dirty.push(entry.link);
      }
      return;
    }
    if (this.forwards?.has(address >>> 8, address & 0xff)) {
      st.toForwards++;
      this.forwards.relay(peer, buf, p, pduLen, now);
      return;
    }
    st.denied++;
  }

  /** End of a UDP receive batch: each peer's requests go to the engine as one batch. */
  endBatch(): void {
    while (this.dirty.length > 0) this.dirty.pop()!.deliver();
  }

  /**
   * For a read-only grant: answers and returns true when the request would change anything.
   * The PDU at buf[p, p + len), at least its command's argument long (tooShort).
   */
  private refuseWrite(port: PeerPort, buf: Uint8Array, p: number, len: number): boolean {
    const command = buf[p + PDU.COMMAND]!;
    switch (command) {
      case Command.ATA: {
        const op = buf[p + PDU.ATA_CMD_STATUS]!;
        const reads =
          op === AtaOp.READ_SECTORS ||
          op === AtaOp.READ_SECTORS_EXT ||
          op === AtaOp.IDENTIFY_DEVICE ||
          op === AtaOp.CHECK_POWER_MODE ||
          op === AtaOp.FLUSH_CACHE ||
          op === AtaOp.FLUSH_CACHE_EXT;
        if (reads && (buf[p + PDU.ATA_AFLAGS]! & 0x01) === 0) return false;
        this.sendAtaAbort(port, buf, p);
        return true;
      }
      case Command.QUERY_CONFIG: {
        const ccmd = buf[p + PDU.QC_VERSION_CCMD]! & 0x0f;
        if (ccmd < ConfigCmd.SET_IF_EMPTY) return false;
        this.sendAoeError(port, buf, p, len, AoeErrorCode.CONFIG_STRING_PRESENT);
        return true;
      }
      case Command.MAC_MASK: {
        if (buf[p + PDU.MM_MCMD] === MaskCmd.READ) return false;
        this.sendAoeError(port, buf, p, len, AoeErrorCode.BAD_ARGUMENT);
        return true;
      }
      case Command.RESERVE: {
        if (buf[p + PDU.RR_RCMD] === ReserveCmd.READ) return false;
        this.sendAoeError(port, buf, p, len, AoeErrorCode.TARGET_RESERVED);
        return true;
      }
      default:
        return false; // unknown commands change nothing; the target answers error 1
    }
  }

  private sendAtaAbort(port: PeerPort, buf: Uint8Array, p: number): void {
    const r = this.reply;
    copyBytes(buf, p, r, 0, PDU_ATA_HEADER);
    r[PDU.VER_FLAGS] = (AOE_VERSION << 4) | Flag.RESPONSE;
    r[PDU.ERROR] = 0;
    r[PDU.ATA_ERR_FEATURE] = AtaErrorBit.ABRT;
    r[PDU.ATA_CMD_STATUS] = AtaStatus.DRDY | AtaStatus.ERR;
    port.send(RECORD_AOE_RESPONSE, r, 0, PDU_ATA_HEADER);
  }

  /**
   * An AoE error echoes the request (as vblade and our engine do): the argument's counts and
   * lengths must match what follows them, or the reply does not even decode.
   */
  private sendAoeError(port: PeerPort, buf: Uint8Array, p: number, len: number, code: number): void {
    const r = this.reply;
    const n = Math.min(len, r.length);
    copyBytes(buf, p, r, 0, n);
    r[PDU.VER_FLAGS] = (AOE_VERSION << 4) | Flag.RESPONSE | Flag.ERROR;
    r[PDU.ERROR] = code;
    port.send(RECORD_AOE_RESPONSE, r, 0, n);
  }
}

/** Shorter than its command's argument (ATA 12, Query Config 8, Mac Mask 4, Reserve 2 bytes). */
function tooShort(buf: Uint8Array, p: number, len: number): boolean {
  switch (buf[p + PDU.COMMAND]) {
    case Command.ATA:
      return len < PDU_ATA_HEADER;
    case Command.QUERY_CONFIG:
      return len < PDU_COMMON_HEADER + 8;
    case Command.MAC_MASK:
      return len < PDU_COMMON_HEADER + 4;
    case Command.RESERVE:
      return len < PDU_COMMON_HEADER + 2;
    default:
      return false;
  }
}

export type {
  DatagramBind,
  DatagramHandler,
  DatagramLink,
  DatagramLinkFactory,
} from './datagram-link.js';
export { type DatagramFaults, FakeDatagramLink, FakeDatagramNetwork } from './fake-datagram.js';
export { FakeLink, FakeSegment } from './fake-link.js';
export type { BatchHandler, FrameLink, LinkStats } from './frame-link.js';
export { type CompletionHandler, IoRing, type IoRingStats } from './io-ring.js';
export { LinkSet } from './link-set.js';
export { AOE_ETHERTYPE, interfaceInfo, PacketLink, type PacketLinkOptions } from './packet-link.js';
export { TapLink, type TapLinkOptions } from './tap-link.js';
export {
  ADDR_SLOT,
  encodeUdpAddress,
  readUdpAddress,
  type UdpEndpoint,
  writeUdpAddress,
} from './udp-address.js';
export { UdpLink, type UdpLinkOptions } from './udp-link.js';

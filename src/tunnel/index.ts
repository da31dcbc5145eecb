/** The tunnel's public API (docs/protocol.md is the normative protocol spec). */
export * from './constants.js';
export { CookieChecker, CookieMaker } from './cookie.js';
export { type BackendName, type CryptoBackend, loadCrypto, type X25519KeyPair } from './crypto.js';
export * from './endpoint.js';
export * from './messages.js';
export { Peer, type PeerOptions } from './peer.js';
export { LoadMonitor, type RateLimitOptions, sourceKey, TokenBucketLimiter } from './ratelimit.js';
export * from './records.js';
export { REPLAY_WINDOW, ReplayWindow } from './replay.js';
export { Session } from './session.js';
export { UdpTunnel, type UdpTunnelOptions } from './udp-tunnel.js';

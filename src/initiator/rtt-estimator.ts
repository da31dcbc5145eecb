/**
 * Retransmission timeout from the measured round trip (RFC 6298: smoothed RTT and its variation),
 * for anything that resends requests: our initiator's frames (TargetClient) and the gateway's
 * requests across the tunnel (ImportSide). Callers feed samples only from requests answered after
 * their first send (Karn's rule: a resent request's reply could answer either copy). The round trip
 * includes the target's service time (an fdatasync), so a slow disk raises the timeout instead of
 * causing resends.
 */

export interface RttOptions {
  /** Before the first sample. Default 200 ms. */
  readonly initialRtoMs?: number;
  /** Floor of the timeout (a few ms: the tunnel is fast, but timers and batches are not). Default 10 ms. */
  readonly minRtoMs?: number;
  /** Ceiling of the timeout and of its backoff. Default 1000 ms. */
  readonly maxRtoMs?: number;
}

export class RttEstimator {
  srttMs = 0;
  rttvarMs = 0;
  samples = 0;
  private readonly initialRtoMs: number;
  private readonly minRtoMs: number;
  readonly maxRtoMs: number;

  constructor(o: RttOptions = {}) {
    this.initialRtoMs = o.initialRtoMs ?? 200;
    this.minRtoMs = o.minRtoMs ?? 10;
    this.maxRtoMs = o.maxRtoMs ?? 1000;
  }

  sample(rttMs: number): void {
    if (!(rttMs >= 0) || !Number.isFinite(rttMs)) return;
    if (this.samples === 0) {
      this.srttMs = rttMs;
      this.rttvarMs = rttMs / 2;
    } else {
      this.rttvarMs = 0.75 * this.rttvarMs + 0.25 * Math.abs(this.srttMs - rttMs);
      this.srttMs = 0.875 * this.srttMs + 0.125 * rttMs;
    }
    this.samples++;
  }

  /** Timeout of a request's `tries`-th send (1 = first): the base timeout doubled per resend, capped. */
  rtoMs(tries = 1): number {
    const base =
      this.samples === 0
        ? this.initialRtoMs
        : Math.min(this.maxRtoMs, Math.max(this.minRtoMs, this.srttMs + Math.max(1, 4 * this.rttvarMs)));
    const shift = Math.min(Math.max(tries - 1, 0), 16);
    return Math.min(this.maxRtoMs, base * 2 ** shift);
  }
}

/**
 * The exporter's at-most-once rule for one peer's requests (docs/protocol.md, 13.8). The importer
 * numbers its requests (epoch, seq) and resends a request under the same numbers until it is
 * answered; this window decides, for each arriving request, whether it may run:
 *
 * - an epoch older than the newest one seen is a previous importer process: refused;
 * - a seq below the importer's fence (requests it gave up on) that never arrived here: refused;
 * - a seq more than WINDOW below the highest seen: refused (too old to judge);
 * - a seq seen before: a duplicate — absorbed while it runs, answered from the reply cache once
 *   done, or run again if it changes nothing (a read);
 * - otherwise it is new and runs.
 *
 * So a delayed or duplicated copy of a request never runs a second time, and a request the importer
 * abandoned never runs after the importer sent anything newer. Pure state, no I/O, no allocation
 * per request: a fixed ring of states indexed by seq.
 */

/** How far below the highest seq a request is still judged (the rest is refused as too old). */
export const REQUEST_WINDOW = 16384;

export const Verdict = {
  /** Run it. */
  NEW: 0,
  /** Already running: drop this copy, the reply will come. */
  IN_PROGRESS: 1,
  /** Done and its reply was kept: answer from the reply cache. */
  DONE_CACHED: 2,
  /** Done, changes nothing (a read): run it again. */
  RERUN: 3,
  /** An older importer process. */
  STALE_EPOCH: 4,
  /** Below the importer's fence and never seen: it gave up on this request. */
  STALE_FENCE: 5,
  /** Below the window. */
  STALE_OLD: 6,
} as const;
export type Verdict = (typeof Verdict)[keyof typeof Verdict];

const NONE = 0;
const RUNNING = 1;
const DONE_KEPT = 2;
const DONE_RERUNNABLE = 3;

export class RequestWindow {
  /** Newest epoch seen (0 = none yet). */
  epoch = 0;
  /** Highest seq seen in this epoch. */
  highest = 0;
  /** Lowest seq that may still run if it has not arrived (the importer's fence). */
  fence = 0;
  private readonly state = new Uint8Array(REQUEST_WINDOW);
  /** Which seq owns each state slot (a slot is reused for seq + k·WINDOW). */
  private readonly owner = new Float64Array(REQUEST_WINDOW).fill(-1);

  /** Judges one arriving request and records it as running when it may run. */
  admit(epoch: number, seq: number, fence: number): Verdict {
    if (epoch < this.epoch) return Verdict.STALE_EPOCH;
    if (epoch > this.epoch) this.reset(epoch);
    if (fence > this.fence) this.fence = fence;
    if (seq <= this.highest - REQUEST_WINDOW) return Verdict.STALE_OLD;
    const i = seq % REQUEST_WINDOW;
    const st = this.owner[i] === seq ? this.state[i]! : NONE;
    switch (st) {
      case RUNNING:
        return Verdict.IN_PROGRESS;
      case DONE_KEPT:
        return Verdict.DONE_CACHED;
      case DONE_RERUNNABLE:
        this.state[i] = RUNNING;
        return Verdict.RERUN;
      default:
        if (seq < this.fence) return Verdict.STALE_FENCE;
        this.owner[i] = seq;
        this.state[i] = RUNNING;
        if (seq > this.highest) this.highest = seq;
        return Verdict.NEW;
    }
  }

  /**
   * The request finished: `once` when it changed something and must not run again (its reply went
   * to the reply cache if it fitted; a copy is answered from there or dropped); otherwise a copy
   * runs again.
   */
  done(epoch: number, seq: number, once: boolean): void {
    const i = seq % REQUEST_WINDOW;
    if (epoch !== this.epoch || this.owner[i] !== seq) return;
    this.state[i] = once ? DONE_KEPT : DONE_RERUNNABLE;
  }

  /**
   * The request was not run after all (refused for lack of room, or it never produced a reply): a
   * later copy may run. Not for requests that may have reached a store.
   */
  forget(epoch: number, seq: number): void {
    const i = seq % REQUEST_WINDOW;
    if (epoch !== this.epoch || this.owner[i] !== seq || this.state[i] !== RUNNING) return;
    this.state[i] = NONE;
  }

  private reset(epoch: number): void {
    this.epoch = epoch;
    this.highest = 0;
    this.fence = 0;
    this.state.fill(NONE);
    this.owner.fill(-1);
  }
}

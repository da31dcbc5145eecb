/**
 * Anti-replay sliding window for the 64-bit transport counters (RFC 6479): a ring of 32-bit words
 * holding COUNTER_BITS_TOTAL bits. Advancing the window clears whole words instead of shifting the
 * bitmap, so one word is "redundant" and the usable window is COUNTER_BITS_TOTAL - 32 = 8160 counters
 * (at least the 8128 DESIGN.md asks for; WireGuard uses 64-bit words for the same 8192 bits).
 *
 * Two phases, because an attacker can send any counter: check() before decryption (cheap, changes
 * nothing), update() only once the packet authenticated. update() re-checks, so when two packets
 * with the same counter both pass check() and decrypt, only the first update() succeeds.
 */

/** Bits in the ring. A power of two, a multiple of the word size. */
export const COUNTER_BITS_TOTAL = 8192;
const BITS_PER_WORD = 32;
const WORD_SHIFT = 5n;
const WORDS = COUNTER_BITS_TOTAL / BITS_PER_WORD;
const WORD_MASK = WORDS - 1;
const WORDS_N = BigInt(WORDS);
const WORD_MASK_N = BigInt(WORD_MASK);

/** Counters at most this far below the highest accepted one can still be accepted (once). */
export const REPLAY_WINDOW = COUNTER_BITS_TOTAL - BITS_PER_WORD;
const WINDOW = BigInt(REPLAY_WINDOW);

/**
 * WireGuard's REJECT-AFTER-MESSAGES, 2^64 - 2^13 - 1: counters at or above it are never accepted,
 * so a counter can never wrap while the window still covers it. Senders must rekey long before.
 */
export const REJECT_AFTER_MESSAGES = 2n ** 64n - 2n ** 13n - 1n;

export class ReplayWindow {
  private readonly bitmap = new Uint32Array(WORDS);
  /** Highest counter accepted so far (0 before any: counter 0 is still accepted once). */
  private last = 0n;

  /** Highest accepted counter, for diagnostics and the sender-side rekey logic. */
  get highest(): bigint {
    return this.last;
  }

  /** Would `counter` be accepted now? Pure: never changes the window. */
  check(counter: bigint): boolean {
    if (counter < 0n || counter >= REJECT_AFTER_MESSAGES) return false;
    // Ahead of the window: its word may still hold stale bits from an older lap of the ring, which
    // update() clears, so those bits must not be consulted here.
    if (counter > this.last) return true;
    if (counter + WINDOW < this.last) return false;
    const word = Number((counter >> WORD_SHIFT) & WORD_MASK_N);
    const bit = Number(counter & 31n);
    return (this.bitmap[word]! & (1 << bit)) === 0;
  }

  /**
   * Record an authenticated counter. Returns false (and changes nothing) if the counter is not
   * acceptable after all, e.g. a duplicate that raced through check(): the caller must drop it.
   */
  update(counter: bigint): boolean {
    if (!this.check(counter)) return false;
    if (counter > this.last) {
      const current = this.last >> WORD_SHIFT;
      const target = counter >> WORD_SHIFT;
      // Clear the words the window slides over; a jump of a whole ring or more clears them all.
      const distance = target - current;
      const steps = distance > WORDS_N ? WORDS : Number(distance);
      let slot = Number(current & WORD_MASK_N);
      for (let i = 0; i < steps; i++) {
        slot = (slot + 1) & WORD_MASK;
        this.bitmap[slot] = 0;
      }
      this.last = counter;
    }
    const word = Number((counter >> WORD_SHIFT) & WORD_MASK_N);
    this.bitmap[word]! |= 1 << Number(counter & 31n);
    return true;
  }

  /** A copy of the whole state (diagnostics, and tests proving rejected input changed nothing). */
  snapshot(): { highest: bigint; bitmap: Uint32Array } {
    return { highest: this.last, bitmap: Uint32Array.from(this.bitmap) };
  }

  /** Back to the initial state (new session keys start a new counter space). */
  reset(): void {
    this.bitmap.fill(0);
    this.last = 0n;
  }
}

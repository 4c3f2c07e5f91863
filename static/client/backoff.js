// Reconnection delays: exponential backoff with full jitter.
//
// Each failed attempt doubles the ceiling, from 0.5 s up to 30 s, and the
// delay is drawn uniformly between 0 and the ceiling ("full jitter"), so a
// server restart does not bring every client back in the same instant.

/** First ceiling, in milliseconds. */
export const BASE_DELAY_MS = 500;

/** Largest ceiling, in milliseconds. */
export const MAX_DELAY_MS = 30_000;

/**
 * Delays for successive reconnection attempts.
 */
export class Backoff {
  /**
   * @param {object} [options]
   * @param {number} [options.baseMs] - the first ceiling.
   * @param {number} [options.maxMs] - the largest ceiling.
   * @param {() => number} [options.random] - a source in [0, 1), for tests.
   */
  constructor({ baseMs = BASE_DELAY_MS, maxMs = MAX_DELAY_MS, random = Math.random } = {}) {
    if (!(baseMs > 0) || !(maxMs >= baseMs)) {
      throw new RangeError(`need 0 < baseMs <= maxMs, got ${baseMs} and ${maxMs}`);
    }
    this.baseMs = baseMs;
    this.maxMs = maxMs;
    this.random = random;
    // Failed attempts since the last success.
    this.attempts = 0;
  }

  /**
   * The ceiling for the next attempt, without drawing a delay.
   * @returns {number} milliseconds
   */
  ceilingMs() {
    return Math.min(this.maxMs, this.baseMs * 2 ** Math.min(this.attempts, 30));
  }

  /**
   * Draw the delay before the next attempt, and count the attempt.
   * @returns {number} milliseconds, between 0 and the ceiling
   */
  nextDelayMs() {
    const delay = Math.floor(this.random() * this.ceilingMs());
    this.attempts += 1;
    return delay;
  }

  /** Start again from the first ceiling, after a connection that held. */
  reset() {
    this.attempts = 0;
  }
}

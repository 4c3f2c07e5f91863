// One channel's stream of messages: order, duplicates and gaps.
//
// A plain state machine with no I/O. The client offers it each message it
// receives on the channel; the stream answers which messages to deliver to
// the app now, in order, and whether a gap must be read over HTTP first.
// Positions are a message's `seq` on a transaction channel and its
// `company_seq` on a company channel; both count 1, 2, 3... with no gaps.

/** Message ids remembered for de-duplication, per stream. */
const REMEMBERED_IDS = 2000;

/** Messages held past a gap before the oldest is dropped (recovery reads it). */
const MAX_HELD = 1000;

/**
 * The position of a message in a channel.
 * @param {string} channel - `transaction:<id>` or `company:<id>`
 * @param {{seq: number, company_seq: number}} message
 * @returns {number}
 */
export function positionIn(channel, message) {
  return channel.startsWith("company:") ? message.company_seq : message.seq;
}

/**
 * A subscription's view of its channel: what was delivered, what is held.
 */
export class Stream {
  /**
   * @param {string} channel - the channel name
   * @param {object} [options]
   * @param {number | null} [options.since] - last position already seen;
   *   null to start from the channel's head at subscription time
   * @param {string | null} [options.companyId] - the company of a
   *   transaction channel, for reading gaps over HTTP
   */
  constructor(channel, { since = null, companyId = null } = {}) {
    this.channel = channel;
    this.companyId = companyId;
    // Last position delivered to the app; null until the server confirms a
    // subscription that was made without `since`.
    this.position = since;
    // Whether a read of missing messages is running; news is held meanwhile.
    this.filling = false;
    // Held messages by position, waiting for the gap before them to fill.
    this.held = new Map();
    // Recently delivered ids, oldest first.
    this.ids = new Set();
    // Set by the client: whether an HTTP read is running, and whether
    // another must follow it (news came during the read).
    this.fillRunning = false;
    this.fillAgain = false;
    // Set by the client: the promise of the first confirmation.
    this.ready = null;
  }

  /**
   * The server confirmed the subscription.
   * @param {{last_seq?: number, recovered?: boolean}} frame - `subscribed`
   * @returns {{deliver: object[], gap: boolean}} held messages now due, and
   *   whether the caller must read what the server could not replay
   */
  subscribed(frame) {
    if (this.position === null) {
      this.position = typeof frame.last_seq === "number" ? frame.last_seq : 0;
    }
    if (frame.recovered === false) {
      this.filling = true;
      return { deliver: [], gap: true };
    }
    return { deliver: this.#drain(), gap: false };
  }

  /**
   * Offer one message received live or replayed.
   * @param {object} message
   * @returns {{deliver: object[], gap: boolean}} messages to hand to the
   *   app now, in order, and whether the caller must read a gap
   */
  offer(message) {
    const position = positionIn(this.channel, message);
    if (this.position === null) {
      // Not confirmed yet: where the stream starts is not known.
      this.#hold(position, message);
      return { deliver: [], gap: false };
    }
    if (position <= this.position || this.ids.has(message.id)) {
      return { deliver: [], gap: false };
    }
    if (position === this.position + 1) {
      return { deliver: [this.#deliver(position, message), ...this.#drain()], gap: false };
    }
    this.#hold(position, message);
    if (this.filling) return { deliver: [], gap: false };
    this.filling = true;
    return { deliver: [], gap: true };
  }

  /**
   * Take messages read over HTTP to fill a gap, in position order.
   * @param {object[]} messages
   * @returns {object[]} the ones to hand to the app, in order
   */
  filled(messages) {
    const out = [];
    for (const message of messages) {
      const position = positionIn(this.channel, message);
      if (this.position !== null && position <= this.position) continue;
      if (this.ids.has(message.id)) continue;
      out.push(this.#deliver(position, message));
    }
    return [...out, ...this.#drain()];
  }

  /**
   * Everything up to `position` is known, delivered or skipped: release
   * what was held behind it.
   * @param {number} position
   * @returns {{deliver: object[], gap: boolean}} the released messages,
   *   and whether a gap remains before the rest of what is held
   */
  caughtUp(position) {
    this.position = Math.max(this.position ?? 0, position);
    const deliver = this.#drain();
    this.filling = this.held.size > 0;
    return { deliver, gap: this.filling };
  }

  /** Forget what is held: the server is about to replay all of it. */
  dropHeld() {
    this.held.clear();
    this.filling = false;
  }

  // Deliver held messages that follow on from the position, in order.
  #drain() {
    const out = [];
    for (const held of [...this.held.keys()].sort((a, b) => a - b)) {
      if (held > this.position + 1) break;
      const message = this.held.get(held);
      this.held.delete(held);
      if (held !== this.position + 1) continue;
      if (this.ids.has(message.id)) this.position = held;
      else out.push(this.#deliver(held, message));
    }
    return out;
  }

  #deliver(position, message) {
    this.position = position;
    this.ids.add(message.id);
    if (this.ids.size > REMEMBERED_IDS) {
      this.ids.delete(this.ids.values().next().value);
    }
    return message;
  }

  #hold(position, message) {
    this.held.set(position, message);
    if (this.held.size > MAX_HELD) {
      this.held.delete(Math.min(...this.held.keys()));
    }
  }
}

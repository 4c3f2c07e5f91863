// Whether the person is here: active, idle or background, from the page.
//
// The server treats a connection as attentive for a while after each
// "active" (the welcome frame's `limits.active_secs`), and holds back the
// email fallback meanwhile. So "active" is said again now and then while
// the person keeps using the page, "idle" once they stop, and
// "background" as soon as the page is hidden.

/** Input events that count as the person being here. */
const ACTIVITY_EVENTS = ["keydown", "pointerdown", "pointermove", "wheel", "touchstart", "focus"];

/**
 * Follows document visibility and input, and reports changes of state.
 */
export class PresenceTracker {
  /**
   * @param {object} options
   * @param {(state: "active"|"idle"|"background") => void} options.onChange -
   *   called with the new state, and again with "active" to refresh it
   * @param {number} [options.idleAfterMs] - no input for this long is idle
   * @param {Document} [options.document]
   * @param {Window} [options.window]
   */
  constructor({ onChange, idleAfterMs = 60_000, document = globalThis.document, window = globalThis.window }) {
    this.onChange = onChange;
    this.idleAfterMs = idleAfterMs;
    this.document = document;
    this.window = window;
    // The state last reported.
    this.state = this.#visible() ? "active" : "background";
    // When "active" was last reported, in ms since the epoch.
    this.reportedAt = 0;
    // When the last input was seen.
    this.lastInputAt = Date.now();
    this.idleTimer = null;
    this.onActivity = () => this.#activity();
    this.onVisibility = () => this.#visibility();
  }

  /** Start listening to the page. */
  start() {
    if (!this.document || !this.window) return;
    for (const type of ACTIVITY_EVENTS) {
      this.window.addEventListener(type, this.onActivity, { passive: true, capture: true });
    }
    this.document.addEventListener("visibilitychange", this.onVisibility);
    this.#armIdle();
  }

  /** Stop listening. */
  stop() {
    if (!this.document || !this.window) return;
    for (const type of ACTIVITY_EVENTS) {
      this.window.removeEventListener(type, this.onActivity, { capture: true });
    }
    this.document.removeEventListener("visibilitychange", this.onVisibility);
    clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }

  #visible() {
    return !this.document || this.document.visibilityState !== "hidden";
  }

  #report(state) {
    this.state = state;
    if (state === "active") this.reportedAt = Date.now();
    this.onChange(state);
  }

  #activity() {
    const now = Date.now();
    this.lastInputAt = now;
    if (!this.#visible()) return;
    // Refresh well before the server's window closes, not on every event.
    if (this.state !== "active" || now - this.reportedAt > this.idleAfterMs / 2) {
      this.#report("active");
    }
    if (this.idleTimer === null) this.#armIdle();
  }

  #visibility() {
    if (this.#visible()) {
      this.lastInputAt = Date.now();
      this.#report("active");
      this.#armIdle();
    } else {
      clearTimeout(this.idleTimer);
      this.idleTimer = null;
      this.#report("background");
    }
  }

  #armIdle() {
    clearTimeout(this.idleTimer);
    const leftMs = this.lastInputAt + this.idleAfterMs - Date.now();
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.#visible() && Date.now() - this.lastInputAt >= this.idleAfterMs) {
        this.#report("idle");
      } else if (this.#visible()) {
        this.#armIdle();
      }
    }, Math.max(leftMs, 1000));
  }
}

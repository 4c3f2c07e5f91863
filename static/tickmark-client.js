// tickmark-client.js: a small client for Tickmark's live protocol (/ws).
//
// Plain ES module, no dependencies, usable by any web app that can reach a
// Tickmark server. In a browser on Tickmark's own origin it authenticates
// with the session cookie; elsewhere, give it a bearer token and it sends
// the token in the first `auth` frame (never in the URL).
//
//   import { TickmarkClient } from "/static/tickmark-client.js";
//   const client = new TickmarkClient();
//   client.on("badges", (badges) => show(badges.total));
//   client.on("message", ({ channel, message }) => append(message));
//   client.connect();
//   client.subscribe(`transaction:${txId}`, { companyId, since: lastSeqShown });
//   const { message } = await client.post({ companyId, transactionId: txId,
//                                           body: "Is this the March bill?",
//                                           recipients: [carlId] });
//
// What it guarantees: each message is handed to the app once, in order,
// per channel, across reconnects. It remembers the last position of every
// channel (`seq` on transaction channels, `company_seq` on company
// channels), resubscribes with it after a reconnect, pages over HTTP what
// the server could not replay, and reads a gap it notices on a live
// connection, on transaction and company channels alike.

import { Backoff } from "./client/backoff.js";
import { PresenceTracker } from "./client/presence.js";
import { CloseCode, Status, TickmarkError } from "./client/protocol.js";
import { Stream } from "./client/stream.js";

export { CloseCode, Status, TickmarkError };

// A post or read not acknowledged within this long goes over HTTP instead,
// with the same idempotency key, so it lands once whichever way wins.
const ACK_TIMEOUT_MS = 10_000;
// With nothing heard for this long, ask with a ping; the browser answers
// the server's protocol pings by itself, but cannot tell us of a dead link.
const QUIET_BEFORE_PING_MS = 25_000;
const PONG_TIMEOUT_MS = 10_000;
const WATCHDOG_EVERY_MS = 5_000;
// A connection that stayed open this long after its welcome resets the
// backoff (docs/protocol.md, section 10).
const STABLE_AFTER_MS = 30_000;
// Least waits before reconnecting after "overloaded" (1013) and "too many
// frames" (4029), on top of the backoff.
const OVERLOADED_WAIT_MS = 5_000;
const RATE_LIMITED_WAIT_MS = 10_000;
// Paging a gap over HTTP: the API's largest page, and a bound on pages.
const FILL_PAGE_SIZE = 200;
const MAX_FILL_PAGES = 50;
const FILL_RETRY_MS = 2_000;
const MAX_FILL_RETRIES = 5;
// Typing notices are sent at most this often per transaction; the server
// relays no more often than that anyway.
const TYPING_INTERVAL_MS = 2_000;

/**
 * A live connection to Tickmark, with subscriptions that survive reconnects.
 *
 * Events (subscribe with `on`): `status` {status, code?, reason?, retryInMs?},
 * `welcome` (the frame), `message` {channel, message}, `badges` {total,
 * companies}, `read` {company_id, transaction_id, last_read_seq}, `typing`
 * {channel, user}, `viewers` {channel, viewers, count}, `subscribed` (the frame),
 * `unsubscribed` {channel, reason?}, `resync` {channel, after, last_seq},
 * `error` {code, message, channel?}.
 */
export class TickmarkClient {
  #listeners = new Map();
  #ws = null;
  #status = Status.IDLE;
  #backoff;
  #reconnectTimer = null;
  #watchdog = null;
  #streams = new Map();
  #pending = new Map();
  #nextId = 1;
  #token;
  #welcome = null;
  #badges = null;
  #openedAt = 0;
  #lastFrameAt = 0;
  #pingSentAt = null;
  #lastTypingAt = new Map();
  #presence = null;
  #presenceState = "active";
  #stopped = true;
  #onOnline = () => this.#reconnectNow();

  /**
   * @param {object} [options]
   * @param {string} [options.baseUrl] - the server, "https://host"; the
   *   page's origin by default
   * @param {string} [options.token] - a bearer token; without one the
   *   browser's session cookie is used
   * @param {() => Promise<string>} [options.refreshToken] - gives a new
   *   token when the server closes with 4001 (expired)
   * @param {boolean} [options.trackPresence] - report active, idle and
   *   background from the page (default: when there is a document)
   * @param {number} [options.ackTimeoutMs] - wait for an ack this long
   * @param {typeof WebSocket} [options.WebSocket]
   * @param {typeof fetch} [options.fetch]
   */
  constructor(options = {}) {
    this.baseUrl = options.baseUrl ?? globalThis.location?.origin;
    if (!this.baseUrl) throw new TypeError("baseUrl is required outside a browser");
    this.#token = options.token ?? null;
    this.refreshToken = options.refreshToken ?? null;
    this.trackPresence = options.trackPresence ?? typeof document !== "undefined";
    this.ackTimeoutMs = options.ackTimeoutMs ?? ACK_TIMEOUT_MS;
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.#backoff = new Backoff();
  }

  // --- state ----------------------------------------------------------------

  /** @returns {string} one of {@link Status} */
  get status() {
    return this.#status;
  }

  /** @returns {{id: string, name: string, kind: string} | null} who is connected */
  get user() {
    return this.#welcome?.user ?? null;
  }

  /** @returns {{total: number, companies: object[]} | null} the latest badges */
  get badges() {
    return this.#badges;
  }

  /**
   * The last position delivered on a channel.
   * @param {string} channel
   * @returns {number | null}
   */
  position(channel) {
    return this.#streams.get(channel)?.position ?? null;
  }

  /**
   * Listen to an event.
   * @param {string} type - an event name (see the class comment)
   * @param {(detail: any) => void} listener
   * @returns {() => void} stops listening
   */
  on(type, listener) {
    if (!this.#listeners.has(type)) this.#listeners.set(type, new Set());
    this.#listeners.get(type).add(listener);
    return () => this.#listeners.get(type)?.delete(listener);
  }

  #emit(type, detail) {
    for (const listener of this.#listeners.get(type) ?? []) {
      try {
        listener(detail);
      } catch (error) {
        // One broken listener must not stop the others or the client.
        console.error("tickmark listener failed", type, error);
      }
    }
  }

  #setStatus(status, extra = {}) {
    this.#status = status;
    this.#emit("status", { status, ...extra });
  }

  // --- connecting -----------------------------------------------------------

  /** Open the connection; it reconnects by itself until `close()`. */
  connect() {
    if (!this.#stopped) return;
    this.#stopped = false;
    globalThis.addEventListener?.("online", this.#onOnline);
    if (this.trackPresence && !this.#presence) {
      this.#presence = new PresenceTracker({ onChange: (state) => this.setPresence(state) });
      this.#presenceState = this.#presence.state;
      this.#presence.start();
    }
    this.#open();
  }

  /** Close for good: no reconnect. Posts in flight finish over HTTP. */
  close() {
    this.#stopped = true;
    clearTimeout(this.#reconnectTimer);
    globalThis.removeEventListener?.("online", this.#onOnline);
    this.#presence?.stop();
    this.#presence = null;
    const ws = this.#ws;
    this.#ws = null;
    this.#lost();
    ws?.close(CloseCode.NORMAL);
    this.#setStatus(Status.CLOSED);
  }

  #wsUrl() {
    const url = new URL("/ws", this.baseUrl);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.href;
  }

  #open() {
    clearTimeout(this.#reconnectTimer);
    this.#setStatus(this.#backoff.attempts > 0 ? Status.RECONNECTING : Status.CONNECTING);
    const ws = new this.WebSocket(this.#wsUrl());
    this.#ws = ws;
    this.#welcome = null;
    ws.onopen = () => {
      this.#lastFrameAt = Date.now();
      if (this.#token) ws.send(JSON.stringify({ type: "auth", token: this.#token }));
    };
    ws.onmessage = (event) => {
      if (ws === this.#ws) this.#onFrame(event.data);
    };
    ws.onclose = (event) => {
      if (ws === this.#ws) this.#onClose(event);
    };
  }

  #send(frame) {
    if (this.#status !== Status.OPEN || !this.#ws) return false;
    this.#ws.send(JSON.stringify(frame));
    return true;
  }

  #newId(prefix) {
    return `${prefix}${this.#nextId++}`;
  }

  #reconnectNow() {
    if (this.#status === Status.RECONNECTING && !this.#ws) this.#open();
  }

  #schedule({ minDelayMs = 0, ...extra } = {}) {
    const delayMs = minDelayMs + this.#backoff.nextDelayMs();
    this.#setStatus(Status.RECONNECTING, { retryInMs: delayMs, ...extra });
    this.#reconnectTimer = setTimeout(() => this.#open(), delayMs);
  }

  async #onClose(event) {
    const welcomed = this.#welcome !== null;
    this.#ws = null;
    this.#lost();
    if (this.#stopped) return;
    const code = event.code;
    const reason = event.reason;
    if (welcomed && Date.now() - this.#openedAt > STABLE_AFTER_MS) this.#backoff.reset();

    if (code === CloseCode.UNAUTHENTICATED) {
      this.#signedOut(code, reason);
      return;
    }
    if (code === CloseCode.TOO_MANY_CONNECTIONS) {
      this.#stopped = true;
      this.#setStatus(Status.REFUSED, { code, reason });
      return;
    }
    if (code === CloseCode.SESSION_EXPIRED) {
      if (!this.refreshToken) {
        this.#signedOut(code, reason);
        return;
      }
      try {
        this.#token = await this.refreshToken();
      } catch {
        this.#signedOut(code, reason);
        return;
      }
    }
    let minDelayMs = 0;
    if (code === CloseCode.TRY_AGAIN_LATER) minDelayMs = OVERLOADED_WAIT_MS;
    if (code === CloseCode.RATE_LIMITED) minDelayMs = RATE_LIMITED_WAIT_MS;
    if (!welcomed && !this.#token && (await this.#sessionEnded())) return;
    if (!this.#stopped) this.#schedule({ minDelayMs, code, reason });
  }

  // A refused handshake shows as a bare 1006: ask over HTTP whether the
  // session is still good, rather than retry a dead cookie forever.
  async #sessionEnded() {
    try {
      await this.request("GET", "/api/me");
      return false;
    } catch (error) {
      return error.status === 401;
    }
  }

  #signedOut(code, reason) {
    this.#stopped = true;
    clearTimeout(this.#reconnectTimer);
    if (this.#status !== Status.SIGNED_OUT) {
      this.#setStatus(Status.SIGNED_OUT, { code, reason });
    }
  }

  // The socket is gone: requests waiting for an answer go over HTTP.
  #lost() {
    clearInterval(this.#watchdog);
    this.#watchdog = null;
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const request of pending) {
      clearTimeout(request.timer);
      request.onLost();
    }
  }

  #startWatchdog() {
    clearInterval(this.#watchdog);
    this.#pingSentAt = null;
    this.#watchdog = setInterval(() => {
      const now = Date.now();
      if (this.#pingSentAt !== null && now - this.#pingSentAt > PONG_TIMEOUT_MS) {
        // Half-open: nothing comes back. Drop it and dial again.
        const ws = this.#ws;
        this.#ws = null;
        ws?.close();
        this.#onClose({ code: 1006, reason: "no answer to ping" });
      } else if (this.#pingSentAt === null && now - this.#lastFrameAt > QUIET_BEFORE_PING_MS) {
        this.#pingSentAt = now;
        this.#send({ type: "ping", id: this.#newId("ping") });
      }
    }, WATCHDOG_EVERY_MS);
  }

  // --- frames from the server -------------------------------------------------

  #onFrame(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    this.#lastFrameAt = Date.now();
    this.#pingSentAt = null;
    switch (frame.type) {
      case "welcome":
        this.#onWelcome(frame);
        break;
      case "subscribed":
        this.#onSubscribed(frame);
        break;
      case "message":
        this.#onMessage(frame);
        break;
      case "resync":
        this.#onResync(frame);
        break;
      case "badges":
        this.#badges = { total: frame.total, companies: frame.companies };
        this.#emit("badges", this.#badges);
        break;
      case "read":
        this.#emit("read", frame);
        break;
      case "typing":
        if (frame.user?.id !== this.user?.id) {
          this.#emit("typing", { channel: frame.channel, user: frame.user });
        }
        break;
      case "viewers":
        this.#emit("viewers", {
          channel: frame.channel,
          viewers: frame.viewers,
          count: frame.count ?? frame.viewers.length,
        });
        break;
      case "unsubscribed":
        this.#onUnsubscribed(frame);
        break;
      case "ack":
        this.#settle(frame.id, (request) => request.resolve(frame));
        break;
      case "error":
        this.#onError(frame);
        break;
      default:
        break; // pong, and frames from newer servers
    }
  }

  #onWelcome(frame) {
    this.#welcome = frame;
    this.#openedAt = Date.now();
    this.#setStatus(Status.OPEN);
    this.#emit("welcome", frame);
    this.#badges = frame.badges;
    this.#emit("badges", frame.badges);
    if (this.#presence && frame.limits?.active_secs) {
      this.#presence.idleAfterMs = frame.limits.active_secs * 1000;
    }
    if (this.#presenceState !== "active") {
      this.#send({ type: "presence", state: this.#presenceState });
    }
    // Resubscribe from where each channel stopped; the server replays what
    // came since, so anything held from the old connection is not needed.
    for (const stream of this.#streams.values()) {
      stream.dropHeld();
      this.#sendSubscribe(stream);
    }
    this.#startWatchdog();
  }

  #onSubscribed(frame) {
    const stream = this.#streams.get(frame.channel);
    if (!stream) return;
    if (typeof frame.since === "number" && frame.since > frame.last_seq) {
      // Our cursor is ahead of the channel (data reset, wrong cursor):
      // start over from the channel's head and let the app reload.
      stream.position = frame.last_seq;
      stream.dropHeld();
      this.#emit("resync", { channel: frame.channel, after: frame.since, last_seq: frame.last_seq });
    }
    const { deliver, gap } = stream.subscribed(frame);
    this.#deliver(stream, deliver);
    stream.ready.resolve(frame);
    this.#emit("subscribed", frame);
    if (gap) this.#fill(stream, frame.last_seq);
  }

  #onMessage(frame) {
    const stream = this.#streams.get(frame.channel);
    if (!stream) return;
    const { deliver, gap } = stream.offer(frame.message);
    this.#deliver(stream, deliver);
    if (gap) this.#recover(stream);
  }

  #onResync(frame) {
    const stream = this.#streams.get(frame.channel);
    if (stream) this.#fill(stream, frame.last_seq);
  }

  #onUnsubscribed(frame) {
    const stream = this.#streams.get(frame.channel);
    if (frame.reason && stream) {
      // Access was revoked: the subscription is gone for good.
      this.#streams.delete(frame.channel);
      stream.ready.reject(new TickmarkError("not_found", "No such channel, or not yours to see."));
    }
    this.#emit("unsubscribed", frame);
  }

  #onError(frame) {
    const error = new TickmarkError(frame.code, frame.message, { field: frame.field ?? null });
    if (frame.id && this.#pending.has(frame.id)) {
      this.#settle(frame.id, (request) => request.reject(error));
      return;
    }
    if (frame.channel && this.#streams.has(frame.channel)) {
      // A refused subscription: forget it, so a reconnect does not retry it.
      const stream = this.#streams.get(frame.channel);
      this.#streams.delete(frame.channel);
      stream.ready.reject(error);
    }
    this.#emit("error", frame);
  }

  #settle(id, how) {
    const request = this.#pending.get(id);
    if (!request) return; // answered late, after going over HTTP
    this.#pending.delete(id);
    clearTimeout(request.timer);
    how(request);
  }

  #deliver(stream, messages) {
    for (const message of messages) {
      this.#emit("message", { channel: stream.channel, message });
    }
  }

  // --- recovery -----------------------------------------------------------------

  // A gap seen on a live connection: the server mends these itself, so
  // this is the belt to its braces. Read the gap over HTTP.
  #recover(stream) {
    this.#fill(stream, null);
  }

  // Where a channel's history pages over HTTP; null when unknown.
  #historyPath(stream) {
    const [kind, id] = stream.channel.split(":");
    if (kind === "company") return `/api/companies/${id}/messages`;
    if (kind === "transaction" && stream.companyId) {
      return `/api/companies/${stream.companyId}/transactions/${id}/messages`;
    }
    return null;
  }

  // Read over HTTP what came after the stream's position, up to `target`
  // (null: up to the newest), then release what was held.
  async #fill(stream, target, retries = 0) {
    const path = this.#historyPath(stream);
    if (path === null) {
      // A transaction channel subscribed without its company: the app
      // must reload what it shows.
      this.#emit("resync", { channel: stream.channel, after: stream.position, last_seq: target });
      this.#deliver(stream, stream.caughtUp(target ?? stream.position ?? 0).deliver);
      return;
    }
    if (stream.fillRunning) {
      stream.fillAgain = true;
      return;
    }
    stream.fillRunning = true;
    try {
      for (let page = 0; page < MAX_FILL_PAGES; page += 1) {
        stream.fillAgain = false;
        const after = stream.position ?? 0;
        const data = await this.request("GET", `${path}?after=${after}&limit=${FILL_PAGE_SIZE}`);
        if (this.#streams.get(stream.channel) !== stream) return;
        this.#deliver(stream, stream.filled(data.messages));
        if (data.has_more) continue;
        // Everything up to the head the server reported is now delivered.
        const { deliver, gap } = stream.caughtUp(data.last_seq);
        this.#deliver(stream, deliver);
        if (!gap && !stream.fillAgain) return;
      }
    } catch (error) {
      if (retries < MAX_FILL_RETRIES && this.#streams.get(stream.channel) === stream) {
        stream.fillRunning = false;
        setTimeout(() => this.#fill(stream, target, retries + 1), FILL_RETRY_MS);
        return;
      }
      this.#emit("error", { code: error.code ?? "network", message: error.message, channel: stream.channel });
    } finally {
      stream.fillRunning = false;
    }
  }

  // --- subscriptions --------------------------------------------------------------

  /**
   * Subscribe to a channel, from a position on; kept across reconnects.
   *
   * @param {string} channel - `transaction:<id>` or `company:<id>`
   * @param {object} [options]
   * @param {number|null} [options.since] - the last position the app has
   *   (`seq` or `company_seq`); null for "from now on"
   * @param {string|null} [options.companyId] - for a transaction channel,
   *   its company, so gaps can be read over HTTP
   * @returns {Promise<object>} the first `subscribed` frame; rejects with a
   *   TickmarkError when the server refuses the channel
   */
  subscribe(channel, { since = null, companyId = null } = {}) {
    let stream = this.#streams.get(channel);
    if (!stream) {
      stream = new Stream(channel, { since, companyId });
      let resolve;
      let reject;
      const promise = new Promise((yes, no) => {
        resolve = yes;
        reject = no;
      });
      // Nobody may be waiting on a refusal; it is reported as an event too.
      promise.catch(() => {});
      stream.ready = { promise, resolve, reject };
      this.#streams.set(channel, stream);
      this.#sendSubscribe(stream);
    }
    return stream.ready.promise;
  }

  /**
   * Stop receiving a channel.
   * @param {string} channel
   */
  unsubscribe(channel) {
    if (this.#streams.delete(channel)) {
      this.#send({ type: "unsubscribe", id: this.#newId("u"), channel });
    }
  }

  #sendSubscribe(stream) {
    const frame = { type: "subscribe", id: this.#newId("s"), channel: stream.channel };
    if (stream.position !== null) frame.since = stream.position;
    this.#send(frame);
  }

  // --- requests -----------------------------------------------------------------

  /**
   * Call the HTTP API with this client's credentials.
   * @param {string} method
   * @param {string} path - e.g. "/api/me/badges"
   * @param {object} [body] - sent as JSON
   * @returns {Promise<any>} the parsed answer; null for 204
   * @throws {TickmarkError} the server's error, or code "network"
   */
  async request(method, path, body = undefined) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (this.#token) headers.Authorization = `Bearer ${this.#token}`;
    let response;
    try {
      response = await this.fetch(new URL(path, this.baseUrl), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: this.#token ? "omit" : "same-origin",
      });
    } catch (cause) {
      throw new TickmarkError("network", "The server cannot be reached.", { cause });
    }
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) {
      const error = data?.error ?? {};
      if (response.status === 401 && !this.#stopped) this.#signedOut(4401, "unauthenticated");
      throw new TickmarkError(error.code ?? "http_error", error.message ?? `HTTP ${response.status}`, {
        field: error.field ?? null,
        status: response.status,
      });
    }
    return data;
  }

  // Send a frame that the server answers with an `ack` of the same id; if
  // the socket is down, or goes down, or the ack is late, use HTTP.
  #acknowledged(frame, viaHttp, fromAck) {
    if (this.#status !== Status.OPEN) return viaHttp();
    return new Promise((resolve, reject) => {
      const id = this.#newId(frame.type[0]);
      const fallback = () => viaHttp().then(resolve, reject);
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        fallback();
      }, this.ackTimeoutMs);
      this.#pending.set(id, {
        resolve: (ack) => resolve(fromAck(ack)),
        reject,
        timer,
        onLost: fallback,
      });
      this.#send({ ...frame, id });
    });
  }

  /**
   * Post a message, over the socket when it is open, else over HTTP.
   *
   * Safe to retry: the idempotency key makes a second attempt return the
   * first message instead of storing another.
   *
   * @param {object} post
   * @param {string} post.companyId
   * @param {string} post.transactionId
   * @param {string} post.body
   * @param {string[]} post.recipients - user ids
   * @param {string} [post.idempotencyKey] - a fresh UUID by default
   * @returns {Promise<{message: object, created: boolean}>}
   * @throws {TickmarkError} the server refused it (the `error` frame or
   *   HTTP error with the request's id)
   */
  post({ companyId, transactionId, body, recipients, idempotencyKey = crypto.randomUUID() }) {
    const viaHttp = () =>
      this.request("POST", `/api/companies/${companyId}/transactions/${transactionId}/messages`, {
        body,
        recipients,
        idempotency_key: idempotencyKey,
      });
    return this.#acknowledged(
      {
        type: "post",
        transaction_id: transactionId,
        body,
        recipients,
        idempotency_key: idempotencyKey,
      },
      viaHttp,
      (ack) => ({ message: ack.message, created: ack.created }),
    );
  }

  /**
   * Mark a transaction's thread read up to `seq`; every tab and device of
   * the user gets the new badges.
   * @param {object} read
   * @param {string} read.companyId
   * @param {string} read.transactionId
   * @param {number} read.seq
   * @returns {Promise<number>} the read marker now
   */
  markRead({ companyId, transactionId, seq }) {
    const viaHttp = async () => {
      const data = await this.request("POST", `/api/companies/${companyId}/transactions/${transactionId}/read`, {
        seq,
      });
      this.#badges = data.badges;
      this.#emit("badges", data.badges);
      return data.last_read_seq;
    };
    return this.#acknowledged(
      { type: "read", transaction_id: transactionId, seq },
      viaHttp,
      (ack) => ack.last_read_seq,
    );
  }

  /**
   * Say the user is typing on a transaction; sent at most every 2 s.
   * @param {string} transactionId - a subscribed transaction
   */
  typing(transactionId) {
    if (!this.#streams.has(`transaction:${transactionId}`)) return;
    const now = Date.now();
    if (now - (this.#lastTypingAt.get(transactionId) ?? 0) < TYPING_INTERVAL_MS) return;
    if (this.#send({ type: "typing", transaction_id: transactionId })) {
      this.#lastTypingAt.set(transactionId, now);
    }
  }

  /**
   * Report presence; done by itself from the page unless `trackPresence`
   * is false.
   * @param {"active"|"idle"|"background"} state
   */
  setPresence(state) {
    this.#presenceState = state;
    this.#send({ type: "presence", state });
    // Back at the page while waiting to reconnect: try now.
    if (state === "active") this.#reconnectNow();
  }
}

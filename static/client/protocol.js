// The protocol's constants and the one error type, shared by the client's
// files and exported to apps through tickmark-client.js.

/** Close codes the server uses, and what this client does on each. */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001, // reconnect
  INTERNAL_ERROR: 1011, // reconnect
  SERVICE_RESTART: 1012, // reconnect
  TRY_AGAIN_LATER: 1013, // reconnect after a longer wait
  SESSION_EXPIRED: 4001, // re-authenticate, then reconnect
  SLOW_CONSUMER: 4008, // reconnect and resume
  TOO_MANY_CONNECTIONS: 4013, // stop: status "refused"
  RATE_LIMITED: 4029, // reconnect after a longer wait
  UNAUTHENTICATED: 4401, // stop: status "signed-out"
  AUTH_TIMEOUT: 4408, // reconnect
});

/** Connection states, as the `status` event reports them. */
export const Status = Object.freeze({
  IDLE: "idle",
  CONNECTING: "connecting",
  OPEN: "open",
  RECONNECTING: "reconnecting",
  SIGNED_OUT: "signed-out",
  REFUSED: "refused",
  CLOSED: "closed",
});

/** An error the server reported, or a failure to reach it. */
export class TickmarkError extends Error {
  /**
   * @param {string} code - the server's stable code, or "network"
   * @param {string} message - safe to show a person
   * @param {object} [details]
   * @param {string|null} [details.field] - the input field at fault
   * @param {number|null} [details.status] - the HTTP status, if over HTTP
   * @param {unknown} [details.cause]
   */
  constructor(code, message, { field = null, status = null, cause = undefined } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "TickmarkError";
    this.code = code;
    this.field = field;
    this.status = status;
  }
}

// Leaving for sign-in and coming back, with the fragment kept.
//
// Browsers never send a URL's #fragment to the server, so the sign-in
// page keeps it in sessionStorage (per tab) and puts it back afterwards.

const RETURN_KEY = "tickmark.return";

/**
 * Remember the fragment that belongs with a return path.
 * @param {string} next - the path and query to return to
 * @param {string} hash - "#m-7", or "" for none
 */
export function rememberFragment(next, hash) {
  if (!hash) return;
  try {
    sessionStorage.setItem(RETURN_KEY, JSON.stringify({ next, hash }));
  } catch {
    // Storage may be off (private modes); the fragment is then lost.
  }
}

/**
 * The fragment remembered for `next`, forgotten once read.
 * @param {string} next
 * @returns {string} "#m-7" or ""
 */
export function takeFragment(next) {
  try {
    const saved = JSON.parse(sessionStorage.getItem(RETURN_KEY) ?? "null");
    sessionStorage.removeItem(RETURN_KEY);
    return saved && saved.next === next && typeof saved.hash === "string" ? saved.hash : "";
  } catch {
    return "";
  }
}

/**
 * A return path only if it stays on this origin; "/" otherwise. The
 * server checked it already; this is the second lock on the door.
 * @param {string} next
 * @returns {string}
 */
export function sameOriginPath(next) {
  if (typeof next !== "string" || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\")) {
    return "/";
  }
  try {
    return new URL(next, location.origin).origin === location.origin ? next : "/";
  } catch {
    return "/";
  }
}

/** Go to sign-in, to come back here (fragment included) afterwards. */
export function goToSignIn() {
  const next = location.pathname + location.search;
  rememberFragment(next, location.hash);
  location.assign(`/sign-in?next=${encodeURIComponent(next)}`);
}

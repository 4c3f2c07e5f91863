// Dates, times, amounts and names as a reader expects them.

/**
 * A time zone Intl accepts: the reader's own if set and valid, else the
 * browser's.
 * @param {string|null|undefined} zone - an IANA name
 * @returns {string|undefined} undefined means the browser's zone
 */
export function usableTimeZone(zone) {
  if (!zone) return undefined;
  try {
    new Intl.DateTimeFormat(undefined, { timeZone: zone });
    return zone;
  } catch {
    return undefined;
  }
}

/**
 * How the reader wants times shown.
 * @typedef {object} Clock
 * @property {string} [timeZone] - IANA zone; undefined for the browser's
 * @property {boolean} [hour12] - false for a 24-hour clock; undefined for
 *   the locale's habit
 */

/**
 * A moment in the reader's time zone, with the zone named:
 * "Mar 14, 2026, 10:30 AM GMT+1".
 * @param {string} iso - UTC, as the API sends it
 * @param {Clock} [clock]
 * @returns {string}
 */
export function formatDateTime(iso, clock = {}) {
  const date = new Date(iso);
  const { timeZone, hour12 } = clock;
  const day = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeZone }).format(date);
  const time = new Intl.DateTimeFormat(undefined, {
    hour: "numeric",
    minute: "2-digit",
    timeZoneName: "short",
    timeZone,
    hour12,
  }).format(date);
  return `${day}, ${time}`;
}

/**
 * A short "how long ago", for lists: "5 min ago", "yesterday".
 * @param {string} iso
 * @param {number} [nowMs]
 * @returns {string}
 */
export function formatAgo(iso, nowMs = Date.now()) {
  const seconds = Math.round((new Date(iso).getTime() - nowMs) / 1000);
  const format = new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "short" });
  const steps = [
    [60, "second", 1],
    [3600, "minute", 60],
    [86400, "hour", 3600],
    [604800, "day", 86400],
    [Infinity, "week", 604800],
  ];
  for (const [limit, unit, size] of steps) {
    if (Math.abs(seconds) < limit) return format.format(Math.round(seconds / size), unit);
  }
  return "";
}

/**
 * A calendar date from the books ("2026-03-14"), never shifted by a zone.
 * @param {string} isoDate
 * @returns {string}
 */
export function formatDate(isoDate) {
  const [year, month, day] = isoDate.split("-").map(Number);
  return new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeZone: "UTC" }).format(
    new Date(Date.UTC(year, month - 1, day)),
  );
}

/**
 * An amount with its currency. The API sends amounts as decimal strings;
 * Intl formats the string itself, so no cent is lost through a float.
 * @param {string} amount - "1850.00"
 * @param {string} currency - "USD"
 * @returns {string}
 */
export function formatAmount(amount, currency) {
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(amount);
  } catch {
    return `${amount} ${currency}`;
  }
}

const ROLES = { accountant: "Accountant", client: "Client", bot: "Bot" };

/**
 * @param {string|null|undefined} role
 * @returns {string} "Accountant", "Client" or "Bot"
 */
export function roleLabel(role) {
  return ROLES[role] ?? "";
}

/**
 * The start of a text on one line, cut between graphemes (no half emoji).
 * @param {string} text
 * @param {number} [maxGraphemes]
 * @returns {string}
 */
export function excerpt(text, maxGraphemes = 160) {
  const flat = text.replace(/\s+/g, " ").trim();
  const graphemes = Array.from(new Intl.Segmenter(undefined, { granularity: "grapheme" }).segment(flat), (s) => s.segment);
  if (graphemes.length <= maxGraphemes) return flat;
  return `${graphemes.slice(0, maxGraphemes).join("").trimEnd()}…`;
}

/**
 * Up to two initials for an avatar: "Ana Moreau" → "AM".
 * @param {string} name
 * @returns {string}
 */
export function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[words.length - 1]] : words;
  return letters.map((w) => Array.from(w)[0].toUpperCase()).join("");
}

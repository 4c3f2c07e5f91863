// A transaction: its details, then Activities, live.

import { Composer } from "./composer.js";
import { byId, h } from "./dom.js";
import { excerpt, formatAmount, formatDate } from "./format.js";
import { startShell } from "./shell.js";
import { ThreadView } from "./thread.js";

const PAGE_SIZE = 50;
// How far back a deep link's message is looked for.
const MAX_PAGES_BACK = 40;
// A typing notice stands this long after the last one heard.
const TYPING_SHOWN_MS = 4_000;
const NO_ACCESS = "You don't have access to this transaction, or it does not exist.";

const companyId = document.body.dataset.companyId;
const transactionId = document.body.dataset.transactionId;
const base = `/api/companies/${companyId}/transactions/${transactionId}`;
const channel = `transaction:${transactionId}`;

const { client, me, clock } = await startShell();
const thread = new ThreadView({ list: byId("thread"), empty: byId("thread-empty"), clock, meId: me.id });
let lastReadSeq = 0;
let hasOlder = false;

async function open() {
  const [{ transaction }, page, members, companies] = await Promise.all([
    client.request("GET", base),
    client.request("GET", `${base}/messages?limit=${PAGE_SIZE}`),
    client.request("GET", `/api/companies/${companyId}/members`),
    client.request("GET", "/api/companies"),
  ]);
  const company = companies.companies.find((c) => c.id === companyId);
  renderDetails(transaction, company?.name ?? "");
  lastReadSeq = transaction.conversation?.last_read_seq ?? 0;

  thread.add(page.messages);
  hasOlder = page.has_more;
  byId("load-older").hidden = !hasOlder;
  byId("transaction").setAttribute("aria-busy", "false");

  if (transaction.takes_conversation) {
    startComposer(members.members.filter((m) => m.id !== me.id));
  } else {
    byId("no-conversation").hidden = false;
  }

  // From the last message shown: whatever was posted since the page was
  // read comes first, and nothing falls between the two.
  client.subscribe(channel, { companyId, since: thread.lastSeq }).catch(() => {});
  await showDeepLinkTarget();
  markReadSoon();
}

function renderDetails(txn, companyName) {
  const label = `${txn.type_label} ${txn.doc_number}`.trim();
  const amount = formatAmount(txn.amount, txn.currency);
  byId("txn-type").textContent = txn.type_label;
  byId("txn-title").textContent = txn.doc_number || txn.type_label;
  byId("txn-company").textContent = companyName;
  byId("txn-amount").textContent = amount;
  byId("txn-date").textContent = formatDate(txn.date);
  byId("txn-counterparty").textContent = txn.counterparty || "—";
  byId("txn-amount-detail").textContent = `${amount} (${txn.currency})`;
  byId("txn-memo").textContent = txn.memo || "—";
  byId("crumb-company").textContent = companyName || "Company";
  byId("crumb-transaction").textContent = label;
  document.title = `${label} · ${companyName} · Tickmark`;
}

function startComposer(members) {
  const composer = new Composer({
    members,
    onTyping: () => client.typing(transactionId),
    onPost: async ({ body, recipients, idempotencyKey }) => {
      const { message } = await client.post({ companyId, transactionId, body, recipients, idempotencyKey });
      thread.add([message]);
      scrollToEnd();
    },
  });
  // Replying goes back to whoever wrote last, unless that was me.
  const last = thread.lastAuthorOtherThan(me.id);
  if (last && members.some((m) => m.id === last)) composer.choose([last]);
  byId("composer").hidden = false;
}

// --- deep links -------------------------------------------------------------------

// ?message=<id> from an email, or #m-<seq>: page back until it is shown.
async function showDeepLinkTarget() {
  const messageId = new URLSearchParams(location.search).get("message");
  const seqMatch = /^#m-(\d+)$/.exec(location.hash);
  const wanted = { id: messageId ?? undefined, seq: seqMatch ? Number(seqMatch[1]) : undefined };
  if (!wanted.id && wanted.seq === undefined) {
    scrollToEnd();
    return;
  }
  for (let page = 0; page < MAX_PAGES_BACK; page += 1) {
    const element = thread.find(wanted.id ? { id: wanted.id } : { seq: wanted.seq });
    if (element) {
      thread.highlight(element);
      return;
    }
    if (!hasOlder) break;
    await loadOlder();
  }
}

async function loadOlder() {
  const first = thread.firstSeq;
  if (first === null) return;
  const page = await client.request("GET", `${base}/messages?before=${first}&limit=${PAGE_SIZE}`);
  // Keep what the reader was looking at in place while older ones go above.
  const anchor = byId("thread").firstElementChild;
  const top = anchor?.getBoundingClientRect().top ?? 0;
  thread.add(page.messages);
  if (anchor) window.scrollBy(0, anchor.getBoundingClientRect().top - top);
  hasOlder = page.has_more;
  byId("load-older").hidden = !hasOlder;
}

byId("load-older").addEventListener("click", () => loadOlder().catch((error) => showError(error.message)));

// --- live ---------------------------------------------------------------------------

client.on("message", ({ channel: from, message }) => {
  if (from !== channel) return;
  const nearEnd = window.innerHeight + window.scrollY >= document.body.scrollHeight - 200;
  const added = thread.add([message]);
  if (added.length === 0) return;
  clearTyping(message.author?.id);
  if (message.author && message.author.id !== me.id) {
    byId("announcer").textContent = `New message from ${message.author.name}: ${excerpt(message.body, 120)}`;
  }
  if (nearEnd) scrollToEnd();
  markReadSoon();
});

client.on("read", (frame) => {
  if (frame.transaction_id === transactionId) lastReadSeq = Math.max(lastReadSeq, frame.last_read_seq);
});

// Only when the client could not page what it missed: read the page anew.
client.on("resync", (frame) => {
  if (frame.channel === channel) location.reload();
});

client.on("unsubscribed", (frame) => {
  if (frame.channel === channel && frame.reason) showNoAccess();
});

client.on("viewers", ({ channel: from, viewers, count }) => {
  if (from !== channel) return;
  const others = viewers.filter((v) => v.id !== me.id).map((v) => v.name);
  // The frame names the first few; the count says how many in all.
  const unnamed = count - viewers.length;
  const element = byId("viewers");
  element.hidden = others.length === 0 && unnamed <= 0;
  const more = unnamed > 0 ? ` and ${unnamed} more` : "";
  element.textContent = `Also here now: ${others.join(", ")}${more}`;
});

const typists = new Map();

client.on("typing", ({ channel: from, user }) => {
  if (from !== channel || user.id === me.id) return;
  clearTimeout(typists.get(user.id)?.timer);
  typists.set(user.id, { name: user.name, timer: setTimeout(() => clearTyping(user.id), TYPING_SHOWN_MS) });
  showTyping();
});

function clearTyping(userId) {
  if (!typists.has(userId)) return;
  clearTimeout(typists.get(userId).timer);
  typists.delete(userId);
  showTyping();
}

function showTyping() {
  const names = [...typists.values()].map((t) => t.name);
  byId("typing").textContent =
    names.length === 0 ? "" : names.length === 1 ? `${names[0]} is typing…` : `${names.join(", ")} are typing…`;
}

// --- reading ------------------------------------------------------------------------

let reading = null;

// Mark the thread read up to the last message shown, while the page is
// in view; every other tab and device of mine gets the new badge.
function markReadSoon() {
  if (document.visibilityState !== "visible" || reading) return;
  const seq = thread.lastSeq;
  if (seq <= lastReadSeq) return;
  reading = client
    .markRead({ companyId, transactionId, seq })
    .then((marker) => {
      lastReadSeq = Math.max(lastReadSeq, marker);
    })
    .catch(() => {})
    .finally(() => {
      reading = null;
      if (thread.lastSeq > lastReadSeq) setTimeout(markReadSoon, 500);
    });
}

document.addEventListener("visibilitychange", markReadSoon);

// --- page states -----------------------------------------------------------------------

function scrollToEnd() {
  const composer = byId("composer");
  (composer.hidden ? byId("activities") : composer).scrollIntoView({ block: "end" });
}

function showError(text) {
  const notice = byId("transaction-error");
  notice.textContent = text;
  notice.hidden = false;
}

function showNoAccess() {
  client.unsubscribe(channel);
  byId("main").replaceChildren(
    h(
      "section",
      { class: "card empty-state no-access", "aria-labelledby": "no-access-heading" },
      h("h1", { id: "no-access-heading", text: "No access" }),
      h("p", { id: "no-access-message", text: NO_ACCESS }),
      h("p", {}, h("a", { class: "button", href: "/", text: "Go to Home" })),
    ),
  );
  document.title = "No access · Tickmark";
}

// --- start ------------------------------------------------------------------------------

// Last, so that every listener above is in place before the subscription.
try {
  await open();
} catch (error) {
  if (error.status === 404) showNoAccess();
  else showError(error.message);
}

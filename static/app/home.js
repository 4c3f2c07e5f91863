// Home: the reader's companies with what waits in each, and the selected
// company's transactions.

import { byId, clear, h } from "./dom.js";
import { formatAmount, formatDate } from "./format.js";
import { startShell } from "./shell.js";

const PAGE_SIZE = 50;
// Several messages in a burst refresh a row once.
const REFRESH_DELAY_MS = 300;

const { client } = await startShell();
const state = { companies: [], selected: null, filter: "all", cursor: null };

try {
  state.companies = (await client.request("GET", "/api/companies")).companies;
} catch (error) {
  showError(error.message);
}
if (state.companies.length === 0) {
  byId("home-title").textContent = "No companies yet";
  showError("You are not a member of any company yet. Ask your accountant to add you.");
} else {
  const wanted = new URLSearchParams(location.search).get("company");
  state.selected = state.companies.find((c) => c.id === wanted) ?? state.companies[0];
  renderHeader();
  renderCompanies();
  await loadTransactions();
  followLive();
}

function isAccountant() {
  return state.companies.some((c) => c.role === "accountant");
}

function showError(text) {
  const error = byId("home-error");
  error.textContent = text;
  error.hidden = false;
}

function renderHeader() {
  const title = byId("home-title");
  if (isAccountant()) {
    byId("home-eyebrow").textContent = "Home";
    title.textContent = "Your clients";
  } else {
    byId("home-eyebrow").textContent = "Your company";
    title.textContent = state.selected.name;
  }
  if (state.companies.length > 1) {
    const select = byId("company-switcher");
    clear(select);
    for (const company of state.companies) {
      const label = company.unread > 0 ? `${company.name} (${company.unread} waiting)` : company.name;
      select.append(h("option", { value: company.id, selected: company.id === state.selected.id, text: label }));
    }
    select.onchange = () => selectCompany(select.value);
    byId("switcher").hidden = false;
  }
}

function renderCompanies() {
  if (!isAccountant()) return;
  const list = byId("companies");
  clear(list);
  for (const company of state.companies) {
    const current = company.id === state.selected.id;
    list.append(
      h(
        "li",
        {},
        h(
          "a",
          {
            class: current ? "company-card is-current" : "company-card",
            href: `/?company=${company.id}`,
            "aria-current": current ? "true" : null,
            dataset: { companyId: company.id },
            on: {
              click: (event) => {
                event.preventDefault();
                selectCompany(company.id);
              },
            },
          },
          h("span", { class: "company-name", text: company.name }),
          h("span", { class: "company-role", text: company.role === "accountant" ? "Accountant" : "Client" }),
          unreadPill(company.unread),
        ),
      ),
    );
  }
  byId("companies-section").hidden = false;
}

function unreadPill(unread) {
  return unread > 0
    ? h("span", { class: "pill pill-waiting", text: `${unread} waiting` })
    : h("span", { class: "pill pill-quiet", text: "All read" });
}

async function selectCompany(id) {
  const company = state.companies.find((c) => c.id === id);
  if (!company || company.id === state.selected.id) return;
  client.unsubscribe(`company:${state.selected.id}`);
  state.selected = company;
  history.replaceState(null, "", `/?company=${company.id}`);
  renderHeader();
  renderCompanies();
  await loadTransactions();
  followLive();
}

// --- transactions ---------------------------------------------------------------

for (const radio of document.querySelectorAll('input[name="filter"]')) {
  radio.addEventListener("change", () => {
    state.filter = radio.value;
    loadTransactions();
  });
}
byId("more-transactions").addEventListener("click", () => loadTransactions({ more: true }));

function query() {
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (state.filter === "talk") params.set("has_conversation", "true");
  if (state.filter === "waiting") params.set("unread", "true");
  return params;
}

async function loadTransactions({ more = false } = {}) {
  const company = state.selected;
  const params = query();
  if (more && state.cursor) params.set("cursor", state.cursor);
  byId("transactions-heading").textContent = `Transactions · ${company.name}`;
  byId("transactions-section").hidden = false;
  let data;
  try {
    data = await client.request("GET", `/api/companies/${company.id}/transactions?${params}`);
  } catch (error) {
    showError(error.message);
    return;
  }
  if (company !== state.selected) return; // switched meanwhile
  const rows = byId("transaction-rows");
  if (!more) clear(rows);
  for (const txn of data.transactions) rows.append(transactionRow(txn));
  state.cursor = data.next_cursor;
  byId("more-transactions").hidden = !state.cursor;
  byId("transactions-empty").hidden = rows.children.length > 0;
}

function transactionUrl(txn) {
  return `/companies/${txn.company_id}/transactions/${txn.id}`;
}

function transactionRow(txn) {
  const url = transactionUrl(txn);
  const row = h(
    "tr",
    { dataset: { transactionId: txn.id }, class: "ledger-row" },
    h("td", { "data-label": "Type", text: txn.type_label }),
    h("td", { "data-label": "Number" }, h("a", { href: url, class: "row-link", text: txn.doc_number || "(no number)" })),
    h("td", { "data-label": "Date", text: formatDate(txn.date) }),
    h("td", { "data-label": "Counterparty", text: txn.counterparty }),
    h("td", { "data-label": "Amount", class: "num", text: formatAmount(txn.amount, txn.currency) }),
    h("td", { "data-label": "Conversation" }, conversationCell(txn)),
  );
  // The whole row opens the transaction for a mouse; the link is the way
  // for a keyboard and a screen reader.
  row.addEventListener("click", (event) => {
    if (event.target.closest("a") || getSelection()?.toString()) return;
    location.assign(url);
  });
  return row;
}

function conversationCell(txn) {
  if (!txn.takes_conversation) return h("span", { class: "muted", text: "Not available" });
  const talk = txn.conversation;
  if (!talk) return h("span", { class: "muted", text: "None yet" });
  if (talk.unread > 0) return h("span", { class: "pill pill-waiting", text: `${talk.unread} waiting` });
  const count = talk.last_seq;
  return h("span", { class: "pill pill-quiet", text: count === 1 ? "1 message" : `${count} messages` });
}

// --- live -------------------------------------------------------------------------

const due = new Set();
let refreshTimer = null;

function followLive() {
  client.subscribe(`company:${state.selected.id}`).catch(() => {});
}

client.on("message", ({ channel, message }) => {
  if (channel !== `company:${state.selected?.id}`) return;
  due.add(message.transaction_id);
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refreshRows, REFRESH_DELAY_MS);
});

client.on("badges", (badges) => {
  let changed = false;
  for (const { company_id: id, unread } of badges.companies) {
    const company = state.companies.find((c) => c.id === id);
    if (company && company.unread !== unread) {
      company.unread = unread;
      changed = true;
    }
  }
  if (changed && state.selected) {
    // Counts moved (a read elsewhere, a new message): one request redraws
    // the first page rather than one per row.
    renderHeader();
    renderCompanies();
    loadTransactions();
  }
});

// Re-read the rows that changed; a row not on screen is left for later.
async function refreshRows() {
  const ids = [...due];
  due.clear();
  const rows = byId("transaction-rows");
  for (const id of ids) {
    const row = rows.querySelector(`tr[data-transaction-id="${CSS.escape(id)}"]`);
    if (!row) continue;
    try {
      const { transaction } = await client.request("GET", `/api/companies/${state.selected.id}/transactions/${id}`);
      row.replaceWith(transactionRow(transaction));
    } catch {
      // Gone or unreachable: keep the row as it is.
    }
  }
}

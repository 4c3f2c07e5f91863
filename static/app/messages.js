// The messages waiting for me, newest first; each opens its transaction.

import { byId, clear, h } from "./dom.js";
import { excerpt, formatAgo, formatDateTime } from "./format.js";
import { startShell } from "./shell.js";

const LIMIT = 100;
const RELOAD_DELAY_MS = 250;

const { client, clock } = await startShell();
const list = byId("waiting");
let reloadTimer = null;

await load();
// The badge changes whenever this list does: a new message, a read in
// another tab. Re-read the list then.
client.on("badges", () => {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(load, RELOAD_DELAY_MS);
});

async function load() {
  let data;
  try {
    data = await client.request("GET", `/api/me/waiting?limit=${LIMIT}`);
  } catch (error) {
    const notice = byId("messages-error");
    notice.textContent = error.message;
    notice.hidden = false;
    return;
  }
  clear(list);
  for (const message of data.messages) list.append(item(message));
  list.setAttribute("aria-busy", "false");
  byId("waiting-empty").hidden = data.messages.length > 0;
  list.hidden = data.messages.length === 0;
}

function item(message) {
  const url =
    `/companies/${message.company_id}/transactions/${message.transaction_id}` +
    `?message=${encodeURIComponent(message.id)}`;
  return h(
    "li",
    { dataset: { messageId: message.id } },
    h(
      "a",
      { class: "waiting-item", href: url },
      h(
        "span",
        { class: "waiting-top" },
        h("span", { class: "waiting-label" }, h("strong", { text: message.transaction_label }), " · ", message.company_name),
        h("time", {
          class: "waiting-time",
          datetime: message.created_at,
          title: formatDateTime(message.created_at, clock),
          text: formatAgo(message.created_at),
        }),
      ),
      h("span", { class: "waiting-author", text: message.author_name ?? "Tickmark" }),
      h("span", { class: "waiting-excerpt", text: excerpt(message.body) }),
    ),
  );
}

// What every signed-in page shares: the header with the Conversations
// badge, sign-out, the connection notice, and the live client.

import { Status, TickmarkClient } from "../tickmark-client.js";
import { byId } from "./dom.js";
import { usableTimeZone } from "./format.js";
import { goToSignIn } from "./navigation.js";

// A short drop is not worth a notice; a longer one is.
const NOTICE_AFTER_MS = 2_000;

/**
 * Start the page's shell.
 * @returns {Promise<{client: TickmarkClient, me: object, clock: import("./format.js").Clock}>}
 *   the live client (connected), who is signed in, and how to show times
 */
export async function startShell() {
  const client = new TickmarkClient();
  const baseTitle = document.title;
  let liveBadges = false;

  client.on("badges", (badges) => {
    liveBadges = true;
    showBadge(badges.total, baseTitle);
  });
  client.on("status", ({ status }) => {
    // For styles and for tests: whether live updates flow.
    document.body.dataset.live = status;
    if (status === Status.SIGNED_OUT) goToSignIn();
    showConnection(status);
  });
  byId("sign-out").addEventListener("click", () => signOut(client));
  client.connect();

  const [me, badges, settings] = await Promise.all([
    client.request("GET", "/api/me"),
    client.request("GET", "/api/me/badges").catch(() => null),
    // Servers without the settings API answer 404: then there is no gear.
    client.request("GET", "/api/me/settings").catch(() => null),
  ]);
  // The socket's snapshot is newer than an HTTP answer that came after it.
  if (badges && !liveBadges) showBadge(badges.badges.total, baseTitle);
  byId("settings-link").hidden = settings === null;
  const clock = {
    timeZone: usableTimeZone(settings?.settings.time_zone ?? me.user.time_zone),
    hour12: settings ? !settings.settings.clock_24h : undefined,
  };
  return { client, me: me.user, clock };
}

function showBadge(total, baseTitle) {
  const badge = byId("badge");
  byId("badge-count").textContent = total > 99 ? "99+" : String(total);
  badge.dataset.count = String(total);
  document.title = total > 0 ? `(${total}) ${baseTitle}` : baseTitle;
}

let noticeTimer = null;

function showConnection(status) {
  const notice = byId("connection");
  clearTimeout(noticeTimer);
  if (status === Status.OPEN || status === Status.CLOSED || status === Status.SIGNED_OUT) {
    notice.hidden = true;
    return;
  }
  if (status === Status.REFUSED) {
    notice.textContent = "Live updates are off in this tab: too many Tickmark tabs are open. Close some, then reload.";
    notice.hidden = false;
    return;
  }
  noticeTimer = setTimeout(() => {
    notice.textContent = "Reconnecting… New messages will appear once the connection is back.";
    notice.hidden = false;
  }, NOTICE_AFTER_MS);
}

async function signOut(client) {
  try {
    await client.request("POST", "/api/auth/sign-out");
  } catch {
    // Signed out already, or unreachable: either way, leave.
  }
  client.close();
  location.assign("/sign-in");
}

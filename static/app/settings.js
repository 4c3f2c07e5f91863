// Email and time settings: GET and PUT /api/me/settings.

import { byId, clear, h } from "./dom.js";
import { startShell } from "./shell.js";

// Choices offered for the email delay, in seconds (the API takes 0-3600).
const DELAYS = [0, 60, 300, 900, 1800, 3600];

const { client } = await startShell();
const status = byId("settings-status");
const form = byId("settings-form");

try {
  const { settings } = await client.request("GET", "/api/me/settings");
  show(settings);
} catch (error) {
  status.textContent = error.status === 404 ? "Settings are not available on this server." : error.message;
}

function minutes(secs) {
  if (secs === 0) return "Right away";
  if (secs < 60) return secs === 1 ? "1 second" : `${secs} seconds`;
  if (secs % 3600 === 0) return secs === 3600 ? "1 hour" : `${secs / 3600} hours`;
  const mins = Math.round(secs / 60);
  return mins === 1 ? "1 minute" : `${mins} minutes`;
}

function show(settings) {
  byId("email-notifications").checked = settings.email_notifications;
  byId("clock-24h").checked = settings.clock_24h;

  const delay = byId("email-delay");
  clear(delay);
  delay.append(h("option", { value: "", text: `Tickmark's default (${minutes(settings.default_email_delay_secs)})` }));
  const delays = new Set(DELAYS);
  if (settings.email_delay_secs !== null) delays.add(settings.email_delay_secs);
  for (const secs of [...delays].sort((a, b) => a - b)) {
    delay.append(h("option", { value: String(secs), text: minutes(secs) }));
  }
  delay.value = settings.email_delay_secs === null ? "" : String(settings.email_delay_secs);

  const zone = byId("time-zone");
  clear(zone);
  zone.append(h("option", { value: "", text: "Not set (this browser's zone here, UTC in emails)" }));
  const zones = new Set(Intl.supportedValuesOf("timeZone"));
  if (settings.time_zone) zones.add(settings.time_zone);
  for (const name of [...zones].sort()) zone.append(h("option", { value: name, text: name.replaceAll("_", " ") }));
  zone.value = settings.time_zone ?? "";

  status.textContent = "";
  status.hidden = true;
  form.hidden = false;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = byId("settings-error");
  const save = byId("settings-save");
  error.hidden = true;
  save.disabled = true;
  const delay = byId("email-delay").value;
  try {
    const { settings } = await client.request("PUT", "/api/me/settings", {
      email_notifications: byId("email-notifications").checked,
      email_delay_secs: delay === "" ? null : Number(delay),
      time_zone: byId("time-zone").value || null,
      clock_24h: byId("clock-24h").checked,
    });
    show(settings);
    status.textContent = "Saved.";
    status.hidden = false;
  } catch (failure) {
    error.textContent = failure.message;
    error.hidden = false;
  } finally {
    save.disabled = false;
  }
});

// The sign-in form: POST /api/auth/sign-in, then back to where the reader
// was going, fragment included.

import { byId } from "./dom.js";
import { rememberFragment, sameOriginPath, takeFragment } from "./navigation.js";

const next = sameOriginPath(document.body.dataset.next ?? "/");
// The browser carried the deep link's fragment across the redirect here;
// keep it in case the reader wanders off (a password reset) and returns.
rememberFragment(next, location.hash);

const form = byId("sign-in-form");
const error = byId("sign-in-error");
const submit = byId("sign-in-submit");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const email = byId("email").value.trim();
  const password = byId("password").value;
  if (!email || !password) {
    showError("Enter your email and your password.");
    return;
  }
  submit.disabled = true;
  submit.textContent = "Signing in…";
  try {
    const response = await fetch("/api/auth/sign-in", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      credentials: "same-origin",
      body: JSON.stringify({ email, password }),
    });
    if (response.ok) {
      const saved = takeFragment(next);
      location.assign(next + (location.hash || saved));
      return;
    }
    const data = await response.json().catch(() => null);
    showError(data?.error?.message ?? "Signing in failed. Try again.");
  } catch {
    showError("The server cannot be reached. Check your connection and try again.");
  }
  submit.disabled = false;
  submit.textContent = "Sign in";
});

function showError(text) {
  error.textContent = text;
  error.hidden = false;
  byId("password").focus();
}

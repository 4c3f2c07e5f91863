// The form at the bottom of Activities: recipients, text, Post.

import { byId, clear, h } from "./dom.js";
import { roleLabel } from "./format.js";

// The server's limit on a message body (docs/api.md); checked here too so
// the writer learns it before the text leaves.
const MAX_BODY_BYTES = 16_384;

/**
 * The composer, wired to the page's elements.
 */
export class Composer {
  /**
   * @param {object} options
   * @param {object[]} options.members - who may be addressed, not me
   * @param {(post: {body: string, recipients: string[], idempotencyKey: string}) => Promise<void>} options.onPost
   * @param {() => void} options.onTyping - called on each edit
   */
  constructor({ members, onPost, onTyping }) {
    this.form = byId("composer");
    this.textarea = byId("message-body");
    this.button = byId("post-button");
    this.error = byId("composer-error");
    this.toggle = byId("recipients-button");
    this.panel = byId("recipients-panel");
    this.members = members;
    this.onPost = onPost;
    // The key of the post being tried; kept across retries of the same
    // text, so a retry after a lost answer cannot post twice.
    this.key = null;
    this.#renderOptions();
    this.#wire(onTyping);
  }

  /** @returns {string[]} the chosen recipients' ids */
  selected() {
    return [...this.panel.querySelectorAll("input:checked")].map((input) => input.value);
  }

  /**
   * Choose these recipients (the ones among the members).
   * @param {string[]} ids
   */
  choose(ids) {
    for (const input of this.panel.querySelectorAll("input")) input.checked = ids.includes(input.value);
    this.#label();
  }

  #renderOptions() {
    const options = byId("recipient-options");
    clear(options);
    if (this.members.length === 0) {
      options.append(h("p", { class: "muted", text: "No one else is a member of this company yet." }));
    }
    for (const member of this.members) {
      const id = `recipient-${member.id}`;
      options.append(
        h(
          "div",
          { class: "recipient-option" },
          h("input", { type: "checkbox", id, value: member.id, name: "recipients" }),
          h("label", { for: id }, h("span", { text: member.name }), h("span", { class: "role", text: roleLabel(member.role) })),
        ),
      );
    }
  }

  #label() {
    const names = this.members.filter((m) => this.selected().includes(m.id)).map((m) => m.name);
    this.toggle.textContent = names.length ? names.join(", ") : "Choose recipients";
    this.toggle.classList.toggle("is-empty", names.length === 0);
  }

  #open(open) {
    this.panel.hidden = !open;
    this.toggle.setAttribute("aria-expanded", String(open));
    if (open) this.panel.querySelector("input")?.focus();
  }

  #wire(onTyping) {
    this.toggle.addEventListener("click", () => this.#open(this.panel.hidden));
    this.panel.addEventListener("change", () => {
      this.#label();
      this.key = null;
    });
    this.panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        this.#open(false);
        this.toggle.focus();
      }
    });
    const recipients = byId("recipients");
    document.addEventListener("click", (event) => {
      if (!this.panel.hidden && !recipients.contains(event.target)) this.#open(false);
    });
    // Tabbing out of the list closes it, as clicking elsewhere does.
    recipients.addEventListener("focusout", (event) => {
      if (!this.panel.hidden && !recipients.contains(event.relatedTarget)) this.#open(false);
    });
    this.textarea.addEventListener("input", () => {
      this.key = null;
      if (this.textarea.value.trim()) onTyping();
    });
    this.textarea.addEventListener("keydown", (event) => {
      // Enter posts; Shift+Enter is a new line; an IME composing text
      // uses Enter for itself.
      if (event.key === "Enter" && !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey && !event.isComposing) {
        event.preventDefault();
        this.form.requestSubmit();
      }
    });
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.#submit();
    });
    this.#label();
  }

  async #submit() {
    if (this.button.disabled) return;
    const body = this.textarea.value;
    const recipients = this.selected();
    if (!body.trim()) return this.#fail("Write a message first.", this.textarea);
    if (recipients.length === 0) return this.#fail("Choose at least one recipient.", this.toggle);
    if (new TextEncoder().encode(body).length > MAX_BODY_BYTES) {
      return this.#fail("The message is too long: at most 16,384 bytes (about 16,000 letters).", this.textarea);
    }
    this.error.hidden = true;
    this.key ??= crypto.randomUUID();
    this.button.disabled = true;
    this.button.textContent = "Posting…";
    try {
      await this.onPost({ body, recipients, idempotencyKey: this.key });
      this.textarea.value = "";
      this.key = null;
    } catch (error) {
      this.#fail(error.message ?? "The message could not be posted. Try again.", this.textarea);
    } finally {
      this.button.disabled = false;
      this.button.textContent = "Post";
      this.textarea.focus();
    }
  }

  #fail(text, focus) {
    this.error.textContent = text;
    this.error.hidden = false;
    focus.focus();
  }
}

// The Activities thread: messages in sequence order, each once.

import { h } from "./dom.js";
import { formatDateTime, initials, roleLabel } from "./format.js";

/**
 * A transaction's thread on the page.
 */
export class ThreadView {
  /**
   * @param {object} options
   * @param {HTMLOListElement} options.list - where messages go
   * @param {HTMLElement} options.empty - shown while there are none
   * @param {import("./format.js").Clock} options.clock - how to show times
   * @param {string} options.meId - the reader, whose messages look different
   */
  constructor({ list, empty, clock, meId }) {
    this.list = list;
    this.empty = empty;
    this.clock = clock;
    this.meId = meId;
    // Elements by message id, and the seqs on the page, ascending.
    this.byId = new Map();
    this.seqs = [];
    // Author ids by seq, for choosing who a reply goes to.
    this.authors = new Map();
  }

  /** @returns {number|null} the first seq on the page */
  get firstSeq() {
    return this.seqs.length ? this.seqs[0] : null;
  }

  /** @returns {number} the last seq on the page; 0 when empty */
  get lastSeq() {
    return this.seqs.length ? this.seqs[this.seqs.length - 1] : 0;
  }

  /**
   * Put messages in their place by seq; ones already shown are skipped.
   * @param {object[]} messages
   * @returns {object[]} the ones added
   */
  add(messages) {
    const added = [];
    for (const message of messages) {
      if (this.byId.has(message.id)) continue;
      const element = this.#render(message);
      const index = this.seqs.findIndex((seq) => seq > message.seq);
      if (index === -1) {
        this.list.append(element);
        this.seqs.push(message.seq);
      } else {
        this.list.children[index].before(element);
        this.seqs.splice(index, 0, message.seq);
      }
      this.byId.set(message.id, element);
      if (message.author) this.authors.set(message.seq, message.author.id);
      added.push(message);
    }
    this.empty.hidden = this.seqs.length > 0;
    return added;
  }

  /**
   * Who wrote the latest message not written by `userId`.
   * @param {string} userId
   * @returns {string|null} a user id
   */
  lastAuthorOtherThan(userId) {
    for (let i = this.seqs.length - 1; i >= 0; i -= 1) {
      const author = this.authors.get(this.seqs[i]);
      if (author && author !== userId) return author;
    }
    return null;
  }

  /**
   * The element of a message, by id or by seq.
   * @param {{id?: string, seq?: number}} which
   * @returns {HTMLElement|null}
   */
  find({ id, seq }) {
    if (id) return this.byId.get(id) ?? null;
    return this.list.querySelector(`#m-${Number(seq)}`);
  }

  /**
   * Scroll to a message and mark it, as a deep link asks.
   * @param {HTMLElement} element
   */
  highlight(element) {
    for (const old of this.list.querySelectorAll(".is-highlighted")) old.classList.remove("is-highlighted");
    element.classList.add("is-highlighted");
    element.scrollIntoView({ block: "center" });
    element.focus({ preventScroll: true });
  }

  #render(message) {
    const when = h("time", {
      class: "message-time",
      datetime: message.created_at,
      text: formatDateTime(message.created_at, this.clock),
    });
    if (message.kind === "system" || !message.author) {
      return h(
        "li",
        { class: "message message-system", id: `m-${message.seq}`, tabindex: "-1", dataset: { id: message.id, seq: message.seq } },
        h("p", { class: "message-body", text: message.body }),
        when,
      );
    }
    const mine = message.author.id === this.meId;
    const to = message.recipients.map((r) => r.name).join(", ");
    return h(
      "li",
      {
        class: mine ? "message message-mine" : "message",
        id: `m-${message.seq}`,
        tabindex: "-1",
        dataset: { id: message.id, seq: message.seq },
      },
      h("span", { class: `avatar avatar-${message.author.role}`, "aria-hidden": "true", text: initials(message.author.name) }),
      h(
        "div",
        { class: "message-main" },
        h(
          "p",
          { class: "message-head" },
          h("strong", { class: "message-author", text: message.author.name }),
          h("span", { class: `role role-${message.author.role}`, text: roleLabel(message.author.role) }),
          when,
        ),
        h("p", { class: "message-body", text: message.body }),
        to ? h("p", { class: "message-to", text: `To ${to}` }) : null,
      ),
    );
  }
}

// Building the page from data: every string becomes text, never markup.

/**
 * Make an element. Strings among the children become text nodes, so user
 * data can be passed as is; there is no way to pass HTML.
 *
 * @param {string} tag
 * @param {object} [props] - `class`, `text`, `dataset`, `on` (event
 *   handlers by name); any other key is set as an attribute
 * @param {...(Node|string|number|null|undefined|false|Array)} children
 * @returns {HTMLElement}
 */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") element.className = value;
    else if (key === "text") element.textContent = String(value);
    else if (key === "dataset") Object.assign(element.dataset, value);
    else if (key === "on") {
      for (const [type, handler] of Object.entries(value)) element.addEventListener(type, handler);
    } else if (key === "innerHTML" || key.startsWith("on")) {
      throw new TypeError(`h(): ${key} is not allowed`);
    } else element.setAttribute(key, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

/**
 * Append children to a node: nodes as they are, anything else as text.
 * @param {Node} parent
 * @param {Array} children
 */
export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/**
 * The element with this id; throws when the page lacks it.
 * @param {string} id
 * @returns {HTMLElement}
 */
export function byId(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from the page`);
  return element;
}

/**
 * Set an element's text, or hide it when there is none.
 * @param {HTMLElement} element
 * @param {string|null|undefined} text
 */
export function setText(element, text) {
  element.textContent = text ?? "";
  element.hidden = !text;
}

/**
 * Remove every child of a node.
 * @param {Node} node
 */
export function clear(node) {
  node.replaceChildren();
}

// Building the page: one element builder that only ever sets text (never HTML), so anything a tenant or an
// app wrote (a path, a user agent, a workflow's output) is shown as written and never run; and the few
// pieces every page uses (tables, forms, dialogs, copy buttons, error panels, empty states).

/**
 * `h("a", { href: "#/x", class: "link", onclick: fn }, "text", child, [more])`: an element. Attributes
 * starting with `on` attach listeners; `true` sets a boolean attribute, `false`/`null`/`undefined` leaves it
 * out; children are nodes, strings (as text), arrays of them, or nothing (`null`, `false`).
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "value" && "value" in element) {
      element.value = value;
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An SVG element (charts, the app graph): attributes as for `h`, no listeners. */
export function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

/** A page's heading, with the actions (buttons) that page offers beside it. */
export function heading(title, ...actions) {
  return h("header", { class: "page-head" }, h("h1", {}, title), h("div", { class: "actions" }, actions));
}

/**
 * A table: `columns` is `[{ title, cell: (row) => node|string, class? }]`. With no rows it says `empty`
 * instead, which should tell the reader how to make the first one.
 */
export function table(columns, rows, empty = "Nothing here yet.") {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, columns.map((column) => h("th", { scope: "col", class: column.class }, column.title)))),
      h(
        "tbody",
        {},
        rows.map((row) => h("tr", {}, columns.map((column) => h("td", { class: column.class }, column.cell(row))))),
      ),
    ),
  );
}

let fieldCounter = 0;

/** A labelled input (or `select`/`textarea` when `control` is given): `{ label, name, hint?, ...attributes }`. */
export function field({ label, hint, control, ...attributes }) {
  const id = attributes.id ?? `field-${++fieldCounter}`;
  const input = control ?? h("input", { id, ...attributes });
  if (control) control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), input, hint && h("small", {}, hint));
}

/** A `select` of `options` (`[value, label]` pairs or plain values) with `selected` chosen. */
export function select(attributes, options, selected) {
  return h(
    "select",
    attributes,
    options.map((option) => {
      const [value, label] = Array.isArray(option) ? option : [option, option];
      return h("option", { value, selected: value === selected }, label);
    }),
  );
}

/** A button that copies `text()` (or `text`) to the clipboard and says so. */
export function copyButton(text, label = "Copy") {
  const button = h("button", { type: "button", class: "secondary copy" }, label);
  button.addEventListener("click", async () => {
    const value = typeof text === "function" ? text() : text;
    try {
      await navigator.clipboard.writeText(value);
      button.textContent = "Copied";
    } catch {
      // No clipboard (an insecure origin, a refused permission): select the text instead so Ctrl+C works.
      button.textContent = "Select and press Ctrl+C";
    }
    setTimeout(() => (button.textContent = label), 1500);
  });
  return button;
}

/** A block of text to copy, with its copy button. */
export function copyBlock(text, label = "Copy") {
  return h("div", { class: "copy-block" }, h("pre", { tabindex: "0" }, text), copyButton(text, label));
}

/**
 * What went wrong, as the API said it, and what to do about it. `error` is an `ApiFailure` (lib/api.js) or
 * any Error.
 */
export function errorPanel(error) {
  const title = error.status ? `${error.message}` : error.message || String(error);
  return h(
    "div",
    { class: "error", role: "alert" },
    h("strong", {}, title),
    error.code && h("code", { class: "code" }, `${error.status} ${error.code}`),
    error.hint && h("p", {}, error.hint),
  );
}

/**
 * A modal dialog with `content` (nodes) and a close button; resolves when it closes. `open(dialog)` shows
 * it; pages call `close()` to end it from a form.
 */
export function modal(title, content) {
  const dialog = h(
    "dialog",
    { "aria-label": title },
    h("header", {}, h("h2", {}, title), h("button", { type: "button", class: "icon", "aria-label": "Close", onclick: () => dialog.close() }, "×")),
    content,
  );
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

/** Asks before something that cannot be undone; resolves to whether the user agreed. */
export function confirmAction(question, action = "Delete") {
  return new Promise((resolve) => {
    let agreed = false;
    const dialog = modal(
      "Are you sure?",
      h(
        "form",
        { method: "dialog", class: "stack" },
        h("p", {}, question),
        h(
          "div",
          { class: "actions" },
          h("button", { type: "submit", class: "danger", onclick: () => (agreed = true) }, action),
          h("button", { type: "submit", class: "secondary", value: "cancel" }, "Cancel"),
        ),
      ),
    );
    dialog.addEventListener("close", () => resolve(agreed));
  });
}

/**
 * A form whose submit runs `action(values)` (values: the named fields, as strings), shows the API's error
 * above the buttons when it fails, and keeps what was typed.
 */
export function form(children, action, submitLabel = "Save") {
  const failure = h("div", { class: "form-error" });
  const submit = h("button", { type: "submit" }, submitLabel);
  const element = h("form", { class: "stack" }, children, failure, h("div", { class: "actions" }, submit));
  element.addEventListener("submit", async (event) => {
    event.preventDefault();
    failure.replaceChildren();
    submit.disabled = true;
    try {
      const values = Object.fromEntries(new FormData(element).entries());
      await action(values, element);
    } catch (error) {
      failure.replaceChildren(errorPanel(error));
    } finally {
      submit.disabled = false;
    }
  });
  return element;
}

/** A time as the reader's local date and time (its ISO form on hover). */
export function when(time) {
  const date = new Date(time);
  // What was made before its time was recorded (the `default` organization of an upgraded installation) carries
  // the epoch: unknown, not 1970.
  if (!time || !(date.getTime() > 0)) return "—";
  return h("time", { datetime: date.toISOString(), title: date.toISOString() }, date.toLocaleString());
}

/** A status as a coloured badge: 2xx/3xx and finished-well states green, 4xx amber, 5xx and failures red. */
export function badge(text) {
  const value = String(text);
  let tone = "neutral";
  if (/^[23]\d\d$|^(COMPLETED|ok|healthy|success)$/i.test(value)) tone = "good";
  else if (/^4\d\d$|^(SUSPENDED|PENDING|TERMINATED)$/i.test(value)) tone = "warn";
  else if (/^5\d\d$|^(FAILED|STALLED|error|unhealthy)$/i.test(value)) tone = "bad";
  return h("span", { class: `badge ${tone}` }, value);
}

/** What a project, App ID or organization name must look like, as an `<input pattern>` (a DNS label). */
export const DNS_LABEL = "[a-z0-9]([a-z0-9\\-]*[a-z0-9])?";

/** Runs `call`, then `after`; a refusal is shown at the top of the page instead. */
export async function attempt(call, after = () => {}) {
  try {
    await call();
    after();
  } catch (error) {
    document.getElementById("main")?.prepend(errorPanel(error));
  }
}

// The YAML editor (a textarea with a line-number gutter that scrolls with it, and a way to mark the line an
// error names), and the little of YAML the console reads and writes itself: where each document of a
// multi-document stream starts and what it is, where an apply error points in it, and writing a plain
// document (the component form's) as YAML text. Anything deeper is the server's: it parses, the console only
// points at lines.

import { h } from "./dom.js";

let editorCounter = 0;

/**
 * `yamlEditor({ label, value, rows })`: `{ element, textarea, get value(), set value(text), mark(line, column?),
 * clearMark(), onInput(callback) }`. The gutter numbers every line and follows the textarea's scrolling; lines do
 * not wrap, so number and line stay side by side.
 */
export function yamlEditor({ label = "YAML", value = "", rows = 18, describedBy } = {}) {
  const id = `yaml-editor-${++editorCounter}`;
  // The numbers sit in an absolutely placed column, so however many there are the textarea decides the height.
  const numbersColumn = h("div", { class: "yaml-gutter-lines" });
  const gutter = h("div", { class: "yaml-gutter", "aria-hidden": "true" }, numbersColumn);
  const textarea = h("textarea", {
    id,
    class: "yaml-text",
    rows,
    wrap: "off",
    spellcheck: "false",
    autocapitalize: "off",
    autocomplete: "off",
    "aria-describedby": describedBy,
  });
  textarea.value = value;
  let marked = null;
  let drawnLines = 0;
  const listeners = [];

  const drawGutter = () => {
    const count = Math.max(1, textarea.value.split("\n").length);
    if (count === drawnLines) return;
    drawnLines = count;
    const numbers = [];
    for (let line = 1; line <= count; line++) {
      numbers.push(h("span", { class: line === marked ? "line marked" : "line", "data-line": line }, String(line)));
    }
    // Room for the textarea's horizontal scroll bar, so the last numbers can scroll as far as the last lines.
    numbers.push(h("span", { class: "line spacer" }, " "));
    numbersColumn.replaceChildren(...numbers);
    gutter.scrollTop = textarea.scrollTop;
  };
  const follow = () => (gutter.scrollTop = textarea.scrollTop);

  textarea.addEventListener("scroll", follow);
  textarea.addEventListener("input", () => {
    drawGutter();
    for (const listener of listeners) listener(textarea.value);
  });

  const element = h(
    "div",
    { class: "yaml-editor" },
    h("label", { for: id, class: "yaml-label" }, label),
    h("div", { class: "yaml-frame" }, gutter, textarea),
  );
  drawGutter();

  return {
    element,
    textarea,
    get value() {
      return textarea.value;
    },
    set value(text) {
      textarea.value = text;
      this.clearMark();
      drawGutter();
      textarea.scrollTop = 0;
      follow();
    },
    onInput(callback) {
      listeners.push(callback);
    },
    /** Marks `line` (1-based) in the gutter, puts the caret there (at `column` when known) and scrolls to it. */
    mark(line, column = 1) {
      this.clearMark();
      const lines = textarea.value.split("\n");
      const target = Math.min(Math.max(1, line), lines.length);
      marked = target;
      gutter.querySelector(`[data-line="${target}"]`)?.classList.add("marked");
      let offset = 0;
      for (let index = 0; index < target - 1; index++) offset += lines[index].length + 1;
      offset += Math.min(Math.max(0, column - 1), lines[target - 1].length);
      textarea.focus({ preventScroll: true });
      textarea.setSelectionRange(offset, offset);
      const lineHeight = parseFloat(getComputedStyle(textarea).lineHeight) || 20;
      textarea.scrollTop = Math.max(0, (target - 1) * lineHeight - textarea.clientHeight / 2);
      follow();
    },
    clearMark() {
      marked = null;
      for (const line of gutter.querySelectorAll(".marked")) line.classList.remove("marked");
    },
    /** The line marked now, if any. */
    get markedLine() {
      return marked;
    },
  };
}

const SEPARATOR = /^---(\s|$)/;
const BLANK_OR_COMMENT = /^\s*(#.*)?$/;

/**
 * The documents of a YAML stream as the server counts them (empty ones too):
 * `[{ index, firstLine, lastLine, text, kind, name, withheld }]`, lines 1-based. Lines before the first `---`
 * that hold only comments belong to no document.
 */
export function splitDocuments(text) {
  const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
  const segments = [];
  let current = { firstLine: 1, lines: [] };
  lines.forEach((line, index) => {
    if (SEPARATOR.test(line)) {
      segments.push(current);
      current = { firstLine: index + 2, lines: [], opened: true };
    } else {
      current.lines.push(line);
    }
  });
  segments.push(current);
  if (segments.length > 1 && segments[0].lines.every((line) => BLANK_OR_COMMENT.test(line))) segments.shift();
  // A stream ending in `---` and nothing else holds no document after it.
  const last = segments[segments.length - 1];
  if (segments.length > 1 && last.lines.every((line) => line.trim() === "")) segments.pop();
  return segments.map((segment, index) => {
    const body = segment.lines.join("\n");
    const firstContent = segment.lines.findIndex((line) => !BLANK_OR_COMMENT.test(line));
    return {
      index,
      firstLine: segment.firstLine + Math.max(0, firstContent),
      lastLine: segment.firstLine + Math.max(0, segment.lines.length - 1),
      text: body,
      kind: topLevelValue(segment.lines, "kind"),
      name: nestedValue(segment.lines, "metadata", "name"),
      withheld: nestedValue(segment.lines, "annotations", "outrigger.io/withheld"),
    };
  });
}

function unquote(value) {
  const trimmed = value.replace(/\s+#.*$/, "").trim();
  if (/^".*"$/.test(trimmed)) {
    try {
      return JSON.parse(trimmed);
    } catch {
      return trimmed.slice(1, -1);
    }
  }
  if (/^'.*'$/.test(trimmed)) return trimmed.slice(1, -1).replace(/''/g, "'");
  return trimmed;
}

function topLevelValue(lines, key) {
  const found = lines.find((line) => line.startsWith(`${key}:`));
  return found ? unquote(found.slice(key.length + 1)) || null : null;
}

/** The value of `key` in the block mapping under the first `parent:` key (at any depth). */
function nestedValue(lines, parent, key) {
  const start = lines.findIndex((line) => new RegExp(`^\\s*${escape(parent)}:\\s*$`).test(line));
  if (start < 0) return null;
  const parentIndent = indentOf(lines[start]);
  for (const line of lines.slice(start + 1)) {
    if (BLANK_OR_COMMENT.test(line)) continue;
    if (indentOf(line) <= parentIndent) return null;
    const match = line.match(new RegExp(`^\\s*["']?${escape(key)}["']?:(.*)$`));
    if (match) return unquote(match[1]);
  }
  return null;
}

const indentOf = (line) => line.match(/^\s*/)[0].length;
const escape = (text) => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

/**
 * Where an apply's refusal points in `text`: `{ line, column, document, message }` (`document` 1-based, as
 * people count; any of them null when unknown). A YAML syntax error names its line and column in the whole
 * stream; a document that breaks a rule is known by its index, and the field the message names (`spec.type`,
 * `spec.metadata[2].name`) is looked for in it.
 */
export function locateError(text, failure) {
  const documents = splitDocuments(text);
  const message = failure?.message ?? String(failure);
  const index = failure?.details?.index;
  const at = message.match(/at line (\d+) column (\d+)/);
  if (at) {
    const line = Number(at[1]);
    const inDocument = documents.find((document) => line >= document.firstLine && line <= document.lastLine + 1);
    const document = Number.isInteger(index) ? index + 1 : inDocument ? inDocument.index + 1 : null;
    return { line, column: Number(at[2]), document, message };
  }
  if (!Number.isInteger(index)) return { line: null, column: null, document: null, message };
  const document = documents[index];
  if (!document) return { line: null, column: null, document: index + 1, message };
  const field = message.match(/\): ((?:spec|metadata|scopes)[\w.[\]/-]*): /)?.[1];
  const line = (field && fieldLine(text, document, field)) || document.firstLine;
  return { line, column: 1, document: index + 1, message };
}

/** The line of `path` (`spec.metadata[2].name`) in `document`, as far as it can be followed. */
function fieldLine(text, document, path) {
  const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
  const last = Math.min(document.lastLine, lines.length);
  // Where a line's key starts: after its indentation and a list item's "- ".
  const keyColumn = (line) => indentOf(line) + (line.trimStart().startsWith("- ") ? 2 : 0);
  let position = document.firstLine - 1;
  let floor = -1;
  let found = null;
  for (const part of path.split(".")) {
    const [, key, item] = part.match(/^([^[]+)(?:\[(\d+)\])?$/) ?? [];
    if (!key) break;
    const keyPattern = new RegExp(`^\\s*(- )?["']?${escape(key)}["']?:(\\s|$)`);
    let hit = -1;
    for (let index = position; index < last; index++) {
      const line = lines[index];
      if (BLANK_OR_COMMENT.test(line)) continue;
      if (keyColumn(line) <= floor) break;
      if (keyPattern.test(line)) {
        hit = index;
        break;
      }
    }
    if (hit < 0) break;
    found = hit;
    floor = keyColumn(lines[hit]);
    position = hit + 1;
    if (item === undefined) continue;
    // The entries of the list under the key: the "- " lines at the first entry's indentation.
    let entryIndent = null;
    let seen = -1;
    let entry = -1;
    for (let index = position; index < last; index++) {
      const line = lines[index];
      if (BLANK_OR_COMMENT.test(line)) continue;
      const isEntry = line.trimStart().startsWith("- ");
      entryIndent ??= isEntry ? indentOf(line) : -1;
      if (entryIndent < 0 || indentOf(line) < entryIndent || (indentOf(line) === entryIndent && !isEntry)) break;
      if (isEntry && indentOf(line) === entryIndent && ++seen === Number(item)) {
        entry = index;
        break;
      }
    }
    if (entry < 0) break;
    found = entry;
    position = entry;
    floor = indentOf(lines[entry]) + 1;
  }
  return found === null ? null : found + 1;
}

const RESERVED = /^(true|false|yes|no|on|off|y|n|null|~|\.nan|[-+]?\.inf)$/i;
const NUMBER_LIKE = /^[-+]?(\d[\d_]*)?(\.[\d_]*)?([eE][-+]?\d+)?$|^0[xob]/i;
const PLAIN = /^[A-Za-z0-9_./][A-Za-z0-9_./:@+=-]*$/;

/** A string as a YAML scalar: plain when it cannot be read as anything else, double-quoted otherwise. */
function yamlScalar(value) {
  const text = String(value);
  if (PLAIN.test(text) && !RESERVED.test(text) && !NUMBER_LIKE.test(text) && !text.endsWith(":")) return text;
  return JSON.stringify(text);
}

/**
 * A document of mappings, lists and strings as block YAML (what the component form builds). Empty lists and
 * mappings, `undefined` and `null` are left out.
 */
export function toYaml(value, indent = "") {
  const lines = [];
  for (const [key, item] of Object.entries(value)) {
    if (item === undefined || item === null) continue;
    if (Array.isArray(item)) {
      if (!item.length) continue;
      lines.push(`${indent}${yamlScalar(key)}:`);
      for (const entry of item) {
        if (entry && typeof entry === "object") {
          const [first, ...rest] = toYaml(entry, `${indent}  `).split("\n");
          lines.push(`${indent}- ${first.slice(indent.length + 2)}`, ...rest);
        } else {
          lines.push(`${indent}- ${yamlScalar(entry)}`);
        }
      }
    } else if (typeof item === "object") {
      if (!Object.keys(item).length) continue;
      lines.push(`${indent}${yamlScalar(key)}:`, toYaml(item, `${indent}  `));
    } else {
      lines.push(`${indent}${yamlScalar(key)}: ${yamlScalar(item)}`);
    }
  }
  return lines.filter((line) => line !== "").join("\n");
}

// A line diff between two texts (the stored YAML of a resource and the YAML about to replace it): the longest
// common subsequence of their lines, and a view of it with removed lines marked `-` and added ones `+`.

import { h } from "./dom.js";

/** Above this many cells (lines before × lines after, once the common ends are set aside) the texts are not aligned. */
const MAX_CELLS = 4_000_000;

/**
 * The lines of `before` and `after` as `[{ op, text }]`, `op` being `" "` (in both), `"-"` (only before) or
 * `"+"` (only after), in order. Lines common to both ends are matched first, then the middle by LCS; a middle
 * too large to align is shown as removed then added.
 */
export function lineDiff(before, after) {
  const old = splitLines(before);
  const next = splitLines(after);
  let start = 0;
  while (start < old.length && start < next.length && old[start] === next[start]) start++;
  let endOld = old.length;
  let endNext = next.length;
  while (endOld > start && endNext > start && old[endOld - 1] === next[endNext - 1]) {
    endOld--;
    endNext--;
  }
  const head = old.slice(0, start).map((text) => ({ op: " ", text }));
  const tail = old.slice(endOld).map((text) => ({ op: " ", text }));
  const middle = alignMiddle(old.slice(start, endOld), next.slice(start, endNext));
  return [...head, ...middle, ...tail];
}

function splitLines(text) {
  const lines = String(text ?? "").replace(/\r\n?/g, "\n").split("\n");
  if (lines.length && lines[lines.length - 1] === "") lines.pop();
  return lines;
}

/** The LCS alignment of two line lists, by the classic table of common-suffix lengths. */
function alignMiddle(old, next) {
  const rows = old.length;
  const columns = next.length;
  if (rows * columns > MAX_CELLS) {
    return [...old.map((text) => ({ op: "-", text })), ...next.map((text) => ({ op: "+", text }))];
  }
  // lengths[i][j]: the LCS length of old[i..] and next[j..], stored row by row.
  const width = columns + 1;
  const lengths = new Uint32Array((rows + 1) * width);
  for (let i = rows - 1; i >= 0; i--) {
    for (let j = columns - 1; j >= 0; j--) {
      lengths[i * width + j] =
        old[i] === next[j] ? lengths[(i + 1) * width + j + 1] + 1 : Math.max(lengths[(i + 1) * width + j], lengths[i * width + j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < rows && j < columns) {
    if (old[i] === next[j]) {
      out.push({ op: " ", text: old[i] });
      i++;
      j++;
    } else if (lengths[(i + 1) * width + j] >= lengths[i * width + j + 1]) {
      out.push({ op: "-", text: old[i++] });
    } else {
      out.push({ op: "+", text: next[j++] });
    }
  }
  while (i < rows) out.push({ op: "-", text: old[i++] });
  while (j < columns) out.push({ op: "+", text: next[j++] });
  return out;
}

/** How many lines a diff adds and removes. */
export function diffCounts(lines) {
  return {
    added: lines.filter((line) => line.op === "+").length,
    removed: lines.filter((line) => line.op === "-").length,
  };
}

/**
 * A diff as a block of lines, each marked by its sign (so it reads without colour too); unchanged runs longer
 * than `context` lines on either side of a change are folded into a "… N unchanged lines" line.
 */
export function diffView(lines, { context = 3, label = "Changes" } = {}) {
  const near = lines.map(() => false);
  lines.forEach((line, index) => {
    if (line.op === " ") return;
    for (let k = Math.max(0, index - context); k <= Math.min(lines.length - 1, index + context); k++) near[k] = true;
  });
  const rows = [];
  let folded = 0;
  const flush = () => {
    if (folded) rows.push(h("span", { class: "diff-line fold" }, `  … ${folded} unchanged line${folded === 1 ? "" : "s"}`));
    folded = 0;
  };
  lines.forEach((line, index) => {
    if (!near[index]) {
      folded++;
      return;
    }
    flush();
    const tone = line.op === "+" ? "added" : line.op === "-" ? "removed" : "same";
    rows.push(h("span", { class: `diff-line ${tone}` }, `${line.op} ${line.text}`));
  });
  flush();
  return h("pre", { class: "diff", tabindex: "0", "aria-label": label }, rows);
}

// Charts drawn by hand in SVG: a line chart of series over time (requests, error rate, latency per step) and a
// horizontal bar chart of totals. Each is a <figure> with a caption, an SVG that names itself (<title> and
// aria-label, summarising what it shows for screen readers), labelled axes, and a legend of its series. Colours
// are SVG presentation attributes (the console's CSP forbids inline styles); sizes are in the SVG's own units
// and the SVG scales to its container's width.

import { h, svg } from "./dom.js";

/** Series colours, distinguishable from one another and readable on white. */
const PALETTE = ["#1f5fbf", "#c2410c", "#15803d", "#7c3aed", "#b42318", "#0e7490", "#a16207", "#be185d"];

/** Width a chart is drawn at before it is laid out (then it is drawn again at its real width). */
const FIRST_WIDTH = 560;
const HEIGHT = 220;
const MARGIN = { top: 14, right: 18, bottom: 30, left: 64 };

/**
 * A <figure> whose SVG is drawn by `draw(width)` at the width the figure gets on the page, and drawn again when
 * that width changes (a window resized, a phone turned), so text stays at its real size at any width.
 */
function responsiveFigure(className, caption, draw, after) {
  let drawnWidth = FIRST_WIDTH;
  const figure = h("figure", { class: `activity-chart ${className}` }, h("figcaption", {}, caption), draw(drawnWidth), after);
  if (typeof ResizeObserver === "function") {
    let pending = false;
    const observer = new ResizeObserver(() => {
      if (pending) return;
      pending = true;
      // After this frame's layout: redrawing inside the observer's callback could trigger it again at once.
      requestAnimationFrame(() => {
        pending = false;
        if (!figure.isConnected) return observer.disconnect();
        const width = Math.max(240, Math.floor(figure.clientWidth) - 2); // less the SVG's border
        if (Math.abs(width - drawnWidth) < 2) return;
        drawnWidth = width;
        figure.querySelector("svg.chart")?.replaceWith(draw(width));
      });
    });
    observer.observe(figure);
  }
  return figure;
}

/** A round number at or above `value` for the top of an axis (1, 2, 2.5 or 5 times a power of ten). */
function niceCeiling(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

/** A number shortened for an axis label: 1200 → "1.2k". */
export function compactNumber(value) {
  if (!Number.isFinite(value)) return "—";
  const magnitude = Math.abs(value);
  if (magnitude >= 1e6) return `${trim(value / 1e6)}M`;
  if (magnitude >= 1e3) return `${trim(value / 1e3)}k`;
  return trim(value);
}

function trim(value) {
  return String(Number(value.toFixed(value !== 0 && Math.abs(value) < 1 ? 3 : value < 10 ? 2 : 1)));
}

/** The time of a step as an axis label: the hour and minute, with the day when the window spans days. */
function timeLabel(time, withDay) {
  const date = new Date(time);
  const clock = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return withDay ? `${date.toLocaleDateString([], { month: "short", day: "numeric" })} ${clock}` : clock;
}

/** The legend: a swatch and the name of each series. */
function legend(series) {
  return h(
    "ul",
    { class: "chart-legend" },
    series.map((entry, index) =>
      h(
        "li",
        {},
        svg("svg", { width: 14, height: 14, viewBox: "0 0 14 14", "aria-hidden": "true", focusable: "false" }, svg("rect", { x: 1, y: 1, width: 12, height: 12, rx: 2, fill: entry.color ?? PALETTE[index % PALETTE.length] })),
        h("span", {}, entry.name),
      ),
    ),
  );
}

/**
 * A line chart: `{ title, times: [iso], series: [{ name, values: [number|null] }], format(value) -> text,
 * yLabel }`. Missing values (null) break a line. Answers a <figure class="activity-chart">.
 */
export function lineChart({ title, times, series, format = compactNumber, yLabel = "" }) {
  const highest = Math.max(0, ...series.flatMap((entry) => entry.values.filter((value) => Number.isFinite(value))));
  const top = niceCeiling(highest);
  const spansDays = times.length > 1 && Date.parse(times.at(-1)) - Date.parse(times[0]) > 24 * 3600 * 1000;
  const summary = `${title}: ${series.map((entry) => `${entry.name} peaks at ${format(Math.max(0, ...entry.values.filter(Number.isFinite)))}`).join("; ") || "no data"}.`;

  const draw = (width) => {
    const plotWidth = width - MARGIN.left - MARGIN.right;
    const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
    const x = (index) => MARGIN.left + (times.length <= 1 ? plotWidth / 2 : (index / (times.length - 1)) * plotWidth);
    const y = (value) => MARGIN.top + plotHeight - (value / top) * plotHeight;
    const grid = [0, 0.25, 0.5, 0.75, 1].map((share) => {
      const value = top * share;
      return svg(
        "g",
        {},
        svg("line", { x1: MARGIN.left, x2: MARGIN.left + plotWidth, y1: y(value), y2: y(value), stroke: share === 0 ? "#8a96a5" : "#e3e7ec", "stroke-width": 1 }),
        svg("text", { x: MARGIN.left - 6, y: y(value) + 4, "text-anchor": "end" }, format(value)),
      );
    });
    // As many time labels as fit (one per 120 px or so).
    const tickCount = Math.min(times.length, Math.max(2, Math.floor(plotWidth / (spansDays ? 150 : 110))));
    const ticks = [];
    for (let tick = 0; tick < tickCount; tick += 1) {
      const index = tickCount === 1 ? 0 : Math.round((tick / (tickCount - 1)) * (times.length - 1));
      const anchor = tick === 0 ? "start" : tick === tickCount - 1 ? "end" : "middle";
      ticks.push(
        svg("line", { x1: x(index), x2: x(index), y1: MARGIN.top + plotHeight, y2: MARGIN.top + plotHeight + 4, stroke: "#8a96a5" }),
        svg("text", { x: x(index), y: HEIGHT - MARGIN.bottom + 18, "text-anchor": anchor }, timeLabel(times[index], spansDays)),
      );
    }
    const lines = series.map((entry, seriesIndex) => {
      const color = entry.color ?? PALETTE[seriesIndex % PALETTE.length];
      let path = "";
      let drawing = false;
      entry.values.forEach((value, index) => {
        if (!Number.isFinite(value)) {
          drawing = false;
          return;
        }
        path += `${drawing ? "L" : "M"}${x(index).toFixed(1)},${y(value).toFixed(1)} `;
        drawing = true;
      });
      // A lone point between gaps draws no line: mark the points that carry something.
      const dots = entry.values
        .map((value, index) => (Number.isFinite(value) && value > 0 ? svg("circle", { cx: x(index), cy: y(value), r: 2.5, fill: color }) : null))
        .filter(Boolean);
      return svg("g", {}, path && svg("path", { d: path.trim(), fill: "none", stroke: color, "stroke-width": 2, "stroke-linejoin": "round" }), dots.length <= 60 ? dots : null);
    });
    const middle = MARGIN.top + plotHeight / 2;
    return svg(
      "svg",
      { class: "chart", width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}`, role: "img", "aria-label": summary },
      svg("title", {}, summary),
      grid,
      ticks,
      yLabel ? svg("text", { x: 12, y: middle, transform: `rotate(-90 12 ${middle})`, "text-anchor": "middle" }, yLabel) : null,
      lines,
    );
  };
  return responsiveFigure("lines", title, draw, series.length ? legend(series) : h("p", { class: "empty" }, "No data in this window."));
}

/**
 * A horizontal bar chart: `{ title, bars: [{ name, value }], format }`, one bar per entry, longest first as
 * given. Answers a <figure class="activity-chart">.
 */
export function barChart({ title, bars, format = compactNumber }) {
  const row = 26;
  const height = Math.max(1, bars.length) * row + 16;
  const top = niceCeiling(Math.max(0, ...bars.map((bar) => bar.value)));
  const summary = `${title}: ${bars.map((bar) => `${bar.name} ${format(bar.value)}`).join(", ") || "no data"}.`;
  const draw = (width) => {
    const labelWidth = Math.min(170, Math.round(width * 0.35));
    const most = Math.max(6, Math.floor(labelWidth / 8));
    const scale = (value) => (value / top) * (width - labelWidth - 64);
    return svg(
      "svg",
      { class: "chart", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": summary },
      svg("title", {}, summary),
      bars.map((bar, index) => {
        const y = 8 + index * row;
        const name = bar.name.length > most ? `${bar.name.slice(0, most - 1)}…` : bar.name;
        const length = Math.max(1, scale(bar.value));
        return svg(
          "g",
          {},
          svg("text", { x: labelWidth - 8, y: y + 14, "text-anchor": "end" }, name),
          svg("rect", { x: labelWidth, y, width: length, height: row - 8, rx: 2, fill: bar.color ?? PALETTE[index % PALETTE.length] }),
          svg("text", { x: labelWidth + length + 6, y: y + 14 }, format(bar.value)),
        );
      }),
    );
  };
  return responsiveFigure("bars", title, draw);
}

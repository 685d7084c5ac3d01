// Charts drawn by the vendored uPlot (ui/vendor/uplot): no chart code of our own.
import uPlot from "../vendor/uplot/uPlot.esm.js";
import { h } from "./dom.js";
import { duration } from "./format.js";

const CSS = "/admin/static/vendor/uplot/uPlot.min.css";

/** uPlot's stylesheet, linked once (whichever page draws the first chart). */
function ensureCss() {
  if (document.querySelector(`link[href="${CSS}"]`)) return;
  document.head.append(h("link", { rel: "stylesheet", href: CSS }));
}

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/**
 * Run durations over time: one point per finished run (succeeded and failed apart) and
 * the p50 and p95 lines. `points`: [{finished_at, duration_ms, status}], oldest first.
 * Returns {el, destroy}; the chart follows its container's width.
 */
export function durationChart(points, { p50, p95, label }) {
  ensureCss();
  const holder = h("div.chart-holder");
  const el = h("figure.chart", { role: "img", "aria-label": label }, holder);
  // uPlot needs x ascending; runs of a job that overlap finish out of id order
  points = points.slice().sort((a, b) => Date.parse(a.finished_at) - Date.parse(b.finished_at));
  const xs = points.map((p) => Date.parse(p.finished_at) / 1000);
  const secs = (ms) => (ms === null || ms === undefined ? null : ms / 1000);
  const ok = points.map((p) => (p.status === "SUCCESS" ? secs(p.duration_ms) : null));
  const failed = points.map((p) => (p.status === "FAILED" ? secs(p.duration_ms) : null));
  const line = (v) => points.map(() => secs(v));
  const fmt = (u, v) => (v === null || v === undefined ? "—" : duration(v * 1000));
  const width = () => Math.max(240, (el.clientWidth || 600) - 2);
  const opts = {
    width: width(),
    height: 220,
    cursor: { drag: { x: false, y: false } },
    legend: { live: true },
    scales: { y: { range: (u, min, max) => [0, Math.max(max * 1.15, 0.001)] } },
    axes: [
      { stroke: cssVar("--muted") },
      { stroke: cssVar("--muted"), values: (u, vals) => vals.map((v) => duration(v * 1000)), size: 70 },
    ],
    series: [
      {},
      // show: true, or uPlot hides the points once they are closer than their size (a
      // job's 200 runs on a laptop's width), and these series have no line
      { label: "succeeded", stroke: cssVar("--ok-bar"), width: 0, points: { show: true, size: 6, fill: cssVar("--ok-bar") }, value: fmt },
      { label: "failed", stroke: cssVar("--fail-bar"), width: 0, points: { show: true, size: 6, fill: cssVar("--fail-bar") }, value: fmt },
      { label: "p50", stroke: cssVar("--primary"), width: 1.5, dash: [6, 4], points: { show: false }, value: fmt },
      { label: "p95", stroke: cssVar("--cancel-bar"), width: 1.5, dash: [2, 3], points: { show: false }, value: fmt },
    ],
  };
  let plot = null;
  const draw = () => {
    if (plot || !el.isConnected) return;
    plot = new uPlot({ ...opts, width: width() }, [xs, ok, failed, line(p50), line(p95)], holder);
  };
  let drawnWidth = 0;
  // Resize in the next frame, and only when the width changed: resizing inside the
  // observer's callback would report a ResizeObserver loop.
  const observer = new ResizeObserver(() => window.requestAnimationFrame(() => {
    if (!el.isConnected) return;
    const w = width();
    if (!plot) draw();
    else if (w !== drawnWidth) plot.setSize({ width: w, height: 220 });
    drawnWidth = w;
  }));
  observer.observe(el);
  return {
    el,
    draw,
    destroy() {
      observer.disconnect();
      if (plot) plot.destroy();
    },
  };
}

/**
 * Hand-written SVG charts from result JSON: grouped bars and lines. No dependencies; the
 * output is plain SVG 1.1 that GitHub and browsers render as an image.
 */
import type { BarChart, LineChart } from "../lib/result.ts";

const PALETTE = [
  "#4e79a7",
  "#f28e2b",
  "#e15759",
  "#76b7b2",
  "#59a14f",
  "#edc948",
  "#b07aa1",
  "#ff9da7",
  "#9c755f",
];

function esc(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

/** A "nice" axis maximum and tick step above `max`. */
function niceScale(max: number, ticks = 5): { top: number; step: number } {
  if (!(max > 0)) return { top: 1, step: 0.2 };
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  return { top: Math.ceil(max / step) * step, step };
}

function label(value: number): string {
  if (value === 0) return "0";
  if (Math.abs(value) >= 100) return value.toFixed(0);
  if (Math.abs(value) >= 10) return value.toFixed(1);
  if (Math.abs(value) >= 1) return value.toFixed(2);
  return value.toFixed(3);
}

function legend(names: string[], x: number, y: number): string {
  return names
    .map(
      (n, i) =>
        `<rect x="${x + i * 110}" y="${y}" width="10" height="10" fill="${PALETTE[i % PALETTE.length]}"/>` +
        `<text x="${x + i * 110 + 14}" y="${y + 9}" font-size="11">${esc(n)}</text>`,
    )
    .join("");
}

/** Renders grouped bars: one group per `groups` entry, one bar per series. */
export function renderBars(chart: BarChart): string {
  const groupCount = Math.max(1, chart.groups.length);
  const seriesCount = Math.max(1, chart.series.length);
  const barW = 14;
  const groupW = seriesCount * barW + 24;
  const left = 60;
  const top = 40;
  const plotH = 240;
  const width = Math.max(480, left + groupCount * groupW + 20);
  const height = top + plotH + 90;
  const values = chart.series
    .flatMap((s) => s.values)
    .filter((v): v is number => typeof v === "number");
  const minValue = Math.min(0, ...values);
  const { top: maxTop, step } = niceScale(Math.max(0, ...values));
  const neg = minValue < 0 ? niceScale(-minValue).top : 0;
  const span = maxTop + neg;
  const y = (v: number) => top + plotH * (1 - (v + neg) / span);
  const parts: string[] = [];
  parts.push(
    `<text x="${left}" y="20" font-size="14" font-weight="bold">${esc(chart.title)}</text>`,
  );
  for (let t = -neg; t <= maxTop + 1e-9; t += step) {
    parts.push(`<line x1="${left}" x2="${width - 10}" y1="${y(t)}" y2="${y(t)}" stroke="#ddd"/>`);
    parts.push(
      `<text x="${left - 6}" y="${y(t) + 4}" font-size="10" text-anchor="end">${label(t)}</text>`,
    );
  }
  parts.push(
    `<text x="14" y="${top + plotH / 2}" font-size="11" transform="rotate(-90 14 ${top + plotH / 2})" text-anchor="middle">${esc(chart.unit)}</text>`,
  );
  chart.groups.forEach((g, gi) => {
    const gx = left + 12 + gi * groupW;
    chart.series.forEach((s, si) => {
      const v = s.values[gi];
      if (typeof v !== "number") return;
      const y0 = y(0);
      const y1 = y(v);
      parts.push(
        `<rect x="${gx + si * barW}" y="${Math.min(y0, y1)}" width="${barW - 2}" height="${Math.max(1, Math.abs(y1 - y0))}" fill="${PALETTE[si % PALETTE.length]}"><title>${esc(`${g} ${s.name}: ${label(v)} ${chart.unit}`)}</title></rect>`,
      );
    });
    const cx = gx + (seriesCount * barW) / 2;
    parts.push(
      `<text x="${cx}" y="${top + plotH + 14}" font-size="10" text-anchor="end" transform="rotate(-30 ${cx} ${top + plotH + 14})">${esc(g)}</text>`,
    );
  });
  parts.push(`<line x1="${left}" x2="${width - 10}" y1="${y(0)}" y2="${y(0)}" stroke="#333"/>`);
  parts.push(
    legend(
      chart.series.map((s) => s.name),
      left,
      height - 18,
    ),
  );
  return svg(width, height, parts);
}

/** Renders lines over a shared x axis. */
export function renderLines(chart: LineChart): string {
  const left = 60;
  const top = 40;
  const plotW = 560;
  const plotH = 240;
  const width = left + plotW + 20;
  const height = top + plotH + 70;
  const xs = chart.series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = chart.series.flatMap((s) => s.points.map((p) => p[1]));
  const xMin = Math.min(0, ...xs);
  const { top: xTop, step: xStep } = niceScale(Math.max(1, ...xs) - xMin, 8);
  const { top: yTop, step: yStep } = niceScale(Math.max(0, ...ys));
  const X = (v: number) => left + ((v - xMin) / xTop) * plotW;
  const Y = (v: number) => top + plotH * (1 - v / yTop);
  const parts: string[] = [];
  parts.push(
    `<text x="${left}" y="20" font-size="14" font-weight="bold">${esc(chart.title)}</text>`,
  );
  for (let t = 0; t <= yTop + 1e-9; t += yStep) {
    parts.push(`<line x1="${left}" x2="${left + plotW}" y1="${Y(t)}" y2="${Y(t)}" stroke="#ddd"/>`);
    parts.push(
      `<text x="${left - 6}" y="${Y(t) + 4}" font-size="10" text-anchor="end">${label(t)}</text>`,
    );
  }
  for (let t = 0; t <= xTop + 1e-9; t += xStep) {
    parts.push(
      `<text x="${X(xMin + t)}" y="${top + plotH + 14}" font-size="10" text-anchor="middle">${label(xMin + t)}</text>`,
    );
  }
  parts.push(
    `<line x1="${left}" x2="${left + plotW}" y1="${top + plotH}" y2="${top + plotH}" stroke="#333"/>`,
  );
  parts.push(
    `<text x="${left + plotW / 2}" y="${top + plotH + 30}" font-size="11" text-anchor="middle">${esc(chart.xLabel)}</text>`,
  );
  parts.push(
    `<text x="14" y="${top + plotH / 2}" font-size="11" transform="rotate(-90 14 ${top + plotH / 2})" text-anchor="middle">${esc(chart.yLabel)}</text>`,
  );
  chart.series.forEach((s, i) => {
    if (s.points.length === 0) return;
    const d = s.points
      .map((p, k) => `${k === 0 ? "M" : "L"}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`)
      .join(" ");
    parts.push(
      `<path d="${d}" fill="none" stroke="${PALETTE[i % PALETTE.length]}" stroke-width="2"><title>${esc(s.name)}</title></path>`,
    );
  });
  parts.push(
    legend(
      chart.series.map((s) => s.name),
      left,
      height - 18,
    ),
  );
  return svg(width, height, parts);
}

function svg(width: number, height: number, parts: string[]): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">\n<rect width="100%" height="100%" fill="#fff"/>\n${parts.join("\n")}\n</svg>\n`;
}

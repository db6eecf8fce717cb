// Charts as inline SVG: a stacked bar for shares, and the timeline of ended
// deliveries. Colours come from CSS classes, text alternatives from <title>
// and aria-label, so the charts read without sight too.

import { h, s, num } from './dom.js';

/**
 * A horizontal bar split into `segments` ({ key, label, value }), each coloured by
 * the class `fill-<key>`. An empty total draws an empty track.
 */
export function stackedBar(segments, { label, height = 14 } = {}) {
  const total = segments.reduce((sum, x) => sum + x.value, 0);
  const parts = segments.filter((x) => x.value > 0);
  const summary = parts.map((x) => `${x.label} ${num(x.value)}`).join(', ') || 'nothing yet';
  const svg = s('svg', {
    class: 'stacked-bar', viewBox: `0 0 1000 ${height}`, preserveAspectRatio: 'none',
    role: 'img', 'aria-label': `${label}: ${summary}`, height,
  });
  svg.append(s('rect', { class: 'track', x: 0, y: 0, width: 1000, height, rx: 3 }));
  let x = 0;
  for (const part of parts) {
    const width = (part.value / total) * 1000;
    svg.append(s('rect', { class: `fill-${part.key}`, x, y: 0, width, height },
      s('title', {}, `${part.label}: ${num(part.value)} (${percent(part.value, total)})`)));
    x += width;
  }
  return svg;
}

export function percent(part, total) {
  if (!total) return '0%';
  const p = (part / total) * 100;
  return `${p > 0 && p < 1 ? '<1' : Math.round(p)}%`;
}

/** A legend for the same segments: a swatch, a label and a count each. */
export function legend(segments) {
  return h('ul', { class: 'legend' }, segments.map((x) =>
    h('li', {},
      h('span', { class: `swatch fill-${x.key}`, 'aria-hidden': 'true' }),
      h('span', {}, x.label), ' ', h('strong', {}, num(x.value)))));
}

const SERIES = [
  ['migrated', 'Migrated'],
  ['drill_passed', 'Drill passed'],
  ['failed', 'Failed'],
  ['expired', 'Expired'],
];

function clock(secs, withSeconds) {
  const d = new Date(secs * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}${withSeconds ? `:${pad(d.getSeconds())}` : ''}`;
}

/**
 * Ended deliveries per bucket, stacked by end state, with the cumulative count as
 * a line against the campaign's total.
 */
export function timelineChart(timeline, total) {
  const W = 760, H = 220, left = 44, right = 44, top = 14, bottom = 30;
  const width = W - left - right, height = H - top - bottom;
  const step = timeline.bucket_secs;
  const start = Math.floor(timeline.from / step) * step;
  // At least a dozen buckets wide, so that a short campaign's bars stay bars.
  const end = Math.max(start + 12 * step, Math.ceil((timeline.to + 1) / step) * step);
  const slots = Math.max(1, Math.round((end - start) / step));
  const byAt = new Map(timeline.buckets.map((b) => [b.at, b]));
  const peak = Math.max(1, ...timeline.buckets.map((b) => SERIES.reduce((n, [k]) => n + b[k], 0)));
  const x = (at) => left + ((at - start) / (end - start)) * width;
  const yBar = (n) => top + height - (n / peak) * height;
  const yCum = (n) => top + height - (n / Math.max(1, total)) * height;

  const ended = timeline.buckets.reduce((n, b) => n + SERIES.reduce((m, [k]) => m + b[k], 0), 0);
  const svg = s('svg', {
    class: 'timeline', viewBox: `0 0 ${W} ${H}`, role: 'img',
    'aria-label': `Deliveries ended over time: ${num(ended)} of ${num(total)}, in buckets of ${step} s`,
  });
  // Grid and axes.
  for (const frac of [0, 0.5, 1]) {
    const y = top + height - frac * height;
    const count = frac * peak;
    svg.append(s('line', { class: 'grid', x1: left, x2: left + width, y1: y, y2: y }));
    if (Number.isInteger(count)) {
      svg.append(s('text', { class: 'axis', x: left - 6, y: y + 4, 'text-anchor': 'end' }, num(count)));
    }
    svg.append(s('text', { class: 'axis axis-cum', x: left + width + 6, y: y + 4 }, `${Math.round(frac * 100)}%`));
  }
  const ticks = Math.min(6, slots);
  for (let i = 0; i <= ticks; i += 1) {
    const at = start + Math.round((i / ticks) * slots) * step;
    svg.append(s('text', { class: 'axis', x: x(at), y: H - 8, 'text-anchor': 'middle' }, clock(at, step < 60)));
  }
  // Bars, stacked per bucket.
  const barWidth = Math.max(2, (width / slots) * 0.72);
  for (let i = 0; i < slots; i += 1) {
    const at = start + i * step;
    const bucket = byAt.get(at);
    if (!bucket) continue;
    let base = 0;
    const cx = x(at) + (width / slots - barWidth) / 2;
    for (const [key, label] of SERIES) {
      if (!bucket[key]) continue;
      const y0 = yBar(base), y1 = yBar(base + bucket[key]);
      svg.append(s('rect', { class: `fill-${key}`, x: cx, y: y1, width: barWidth, height: Math.max(1, y0 - y1) },
        s('title', {}, `${clock(at, true)}: ${label} ${num(bucket[key])}`)));
      base += bucket[key];
    }
  }
  // Cumulative share of the campaign's deliveries that have ended.
  let cumulative = 0;
  const points = [[x(start), yCum(0)]];
  for (const bucket of timeline.buckets) {
    cumulative += SERIES.reduce((n, [k]) => n + bucket[k], 0);
    points.push([x(bucket.at + step), yCum(cumulative)]);
  }
  if (points.length > 1) {
    svg.append(s('polyline', { class: 'cumulative', points: points.map((p) => p.join(',')).join(' ') }));
  }
  svg.append(s('line', { class: 'axis-line', x1: left, x2: left + width, y1: top + height, y2: top + height }));
  return h('figure', { class: 'chart' }, svg,
    h('figcaption', {}, legend(SERIES.map(([key, label]) => ({ key, label,
      value: timeline.buckets.reduce((n, b) => n + b[key], 0) }))),
    h('span', { class: 'legend-line' }, h('span', { class: 'line-swatch', 'aria-hidden': 'true' }),
      'Cumulative share ended (right axis)')));
}

// Small SVG charts for the dashboard. Each one labels its values in text, carries a summary as
// its accessible name, and offers the numbers as a table, so no reader depends on colour.

import { h, s } from './dom.js';

/**
 * Horizontal bars: items = [{label, value, note?}]. `max` defaults to the largest value;
 * `marks` (optional, same order) draws a tick per bar, e.g. capacity.
 */
export function barChart(title, items, options = {}) {
  // Narrow screens get a narrower drawing, so its text is not scaled down to a smudge.
  const narrow = window.innerWidth < 600;
  const rowH = 28;
  const width = narrow ? 300 : 380;
  const labelW = Math.round((options.labelWidth || 120) * (narrow ? 0.85 : 1));
  const valueW = 64;
  const barMax = width - labelW - valueW;
  const height = Math.max(items.length, 1) * rowH + 8;
  const max = Math.max(1, options.max || 0, ...items.map((i) => i.value), ...items.map((i) => i.mark || 0));
  const summary = items.length
    ? `${title}: ${items.map((i) => `${i.label} ${i.text ?? i.value}`).join(', ')}`
    : `${title}: no data yet`;
  const svg = s('svg', {
    viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': summary, class: 'chart bar-chart',
    preserveAspectRatio: 'xMinYMin meet',
  }, s('title', null, summary));
  items.forEach((item, idx) => {
    const y = idx * rowH + 4;
    const w = Math.max(item.value > 0 ? 2 : 0, Math.round((item.value / max) * barMax));
    svg.append(
      s('text', { x: labelW - 8, y: y + rowH / 2 + 4, 'text-anchor': 'end', class: 'chart-label' }, clip(item.label, Math.floor((labelW - 8) / 7))),
      s('rect', { x: labelW, y: y + 4, width: w, height: rowH - 10, rx: 3, class: `bar ${item.cls || ''}` },
        s('title', null, `${item.label}: ${item.text ?? item.value}`)),
      s('text', { x: labelW + w + 6, y: y + rowH / 2 + 4, class: 'chart-value' }, String(item.text ?? item.value)),
    );
    if (item.mark) {
      const x = labelW + Math.round((item.mark / max) * barMax);
      svg.append(s('line', { x1: x, x2: x, y1: y + 1, y2: y + rowH - 3, class: 'chart-mark' },
        s('title', null, `${item.label}: limit ${item.mark}`)));
    }
  });
  if (!items.length) {
    svg.append(s('text', { x: 8, y: 22, class: 'chart-label' }, 'No data yet'));
  }
  return figure(title, svg, ['', options.valueName || 'Count'],
    items.map((i) => [i.label, i.text ?? i.value]), options.caption);
}

/** Created and resolved per day: bars for created, a line with dots for resolved. */
export function perDayChart(title, days) {
  const width = window.innerWidth < 600 ? 360 : 640;
  const height = 220;
  const pad = { left: 34, right: 10, top: 12, bottom: 36 };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const max = Math.max(1, ...days.map((d) => Math.max(d.created, d.resolved)));
  const step = innerW / Math.max(days.length, 1);
  const yOf = (v) => pad.top + innerH - (v / max) * innerH;
  const totalCreated = days.reduce((a, d) => a + d.created, 0);
  const totalResolved = days.reduce((a, d) => a + d.resolved, 0);
  const summary = `${title}: ${totalCreated} created and ${totalResolved} resolved over ${days.length} days`;
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': summary, class: 'chart day-chart' },
    s('title', null, summary));
  // Grid and axis labels.
  for (const v of new Set([0, Math.round(max / 2), max])) {
    const y = yOf(v);
    svg.append(
      s('line', { x1: pad.left, x2: width - pad.right, y1: y, y2: y, class: 'chart-grid' }),
      s('text', { x: pad.left - 6, y: y + 4, 'text-anchor': 'end', class: 'chart-axis' }, String(v)),
    );
  }
  const points = [];
  days.forEach((d, i) => {
    const x = pad.left + i * step;
    const barW = Math.max(2, step * 0.6);
    svg.append(s('rect', {
      x: x + (step - barW) / 2, y: yOf(d.created), width: barW, height: Math.max(0, pad.top + innerH - yOf(d.created)),
      class: 'bar bar-created',
    }, s('title', null, `${d.date}: ${d.created} created, ${d.resolved} resolved`)));
    points.push([x + step / 2, yOf(d.resolved), d]);
    if (i === 0 || i === days.length - 1 || i % 7 === 0) {
      svg.append(s('text', { x: x + step / 2, y: height - pad.bottom + 16, 'text-anchor': 'middle', class: 'chart-axis' }, d.date.slice(5)));
    }
  });
  if (points.length) {
    svg.append(s('polyline', { points: points.map(([x, y]) => `${x},${y}`).join(' '), class: 'line-resolved' }));
    for (const [x, y, d] of points) {
      svg.append(s('circle', { cx: x, cy: y, r: 3, class: 'dot-resolved' },
        s('title', null, `${d.date}: ${d.resolved} resolved`)));
    }
  }
  const legend = h('p', { class: 'legend' },
    h('span', { class: 'key key-created', 'aria-hidden': 'true' }), 'Bars: created  ',
    h('span', { class: 'key key-resolved', 'aria-hidden': 'true' }), 'Line with dots: resolved');
  return figure(title, svg, ['Day', 'Created', 'Resolved'],
    days.map((d) => [d.date, d.created, d.resolved]), legend);
}

function figure(title, svg, head, rows, caption) {
  return h('figure', { class: 'chart-card' },
    h('figcaption', null, title),
    svg,
    caption || null,
    h('details', { class: 'chart-table' },
      h('summary', null, 'Show as table'),
      h('table', null,
        h('thead', null, h('tr', null, head.map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', null, rows.map((r) => h('tr', null, r.map((c, i) => (i === 0 ? h('th', { scope: 'row' }, String(c)) : h('td', null, String(c)))))))),
    ));
}

function clip(text, n) {
  const t = String(text);
  return t.length > n ? `${t.slice(0, n - 1)}…` : t;
}

// The admin's numbers: GET /api/stats drawn as small SVG charts.

import { get } from '../api.js';
import { h, replace, pageHeader, duration, label, STATUS, PRIORITY, CATEGORY, ROLE, busy } from '../dom.js';
import { barChart, perDayChart } from '../charts.js';
import { staffList } from './list.js';

export async function dashboard(ctx) {
  const body = h('div', { id: 'dashboard' });
  const reload = h('button', { type: 'button', id: 'dashboard-refresh' }, 'Refresh');
  reload.addEventListener('click', () => busy(reload, 'Refreshing…', draw));
  replace(ctx.main, pageHeader('Dashboard', reload), body);

  let last = null;
  // The charts are drawn for the width they have; crossing to or from phone width redraws them.
  const narrow = window.matchMedia('(max-width: 599px)');
  const onWidth = () => { if (last && ctx.isCurrent()) render(...last); };
  narrow.addEventListener('change', onWidth);
  ctx.setCleanup(() => narrow.removeEventListener('change', onWidth));

  async function draw() {
    const [stats, staff] = await Promise.all([get('/api/stats'), staffList().catch(() => [])]);
    if (!ctx.isCurrent()) return;
    last = [stats, staff];
    render(stats, staff);
  }

  function render(stats, staff) {
    const names = Object.fromEntries(staff.map((u) => [u.id, u.name || u.email]));
    const count = (list, key) => (list || []).find((c) => c.key === key)?.count || 0;
    const ordered = (list, keys, labels) => keys.map((k) => ({ label: labels(k), value: count(list, k), cls: `bar-${k}` }));
    const sat = stats.satisfaction;
    const tiles = h('div', { class: 'tiles' },
      tile('Tickets', String(stats.total)),
      tile('Open now', String(count(stats.by_status, 'open') + count(stats.by_status, 'in_progress'))),
      tile('Mean time to first response', duration(stats.avg_first_response_secs)),
      tile('Mean time to resolution', duration(stats.avg_resolution_secs)),
      tile('SLA breaches', String(stats.sla_breaches ?? 0), stats.sla_breaches ? 'warn' : null),
      sat ? tile('Satisfaction', sat.average === null || sat.average === undefined ? '—' : `${sat.average.toFixed(1)} / 5`,
        null, `${sat.count} rating${sat.count === 1 ? '' : 's'}`) : null);

    const charts = [];
    charts.push(barChart('Tickets by status', ordered(stats.by_status, Object.keys(STATUS), (k) => label(STATUS, k))));
    charts.push(barChart('Tickets by priority', ordered(stats.by_priority, ['high', 'medium', 'low'], (k) => label(PRIORITY, k))));
    charts.push(barChart('Tickets by category',
      (stats.by_category || []).slice().sort((a, b) => b.count - a.count)
        .map((c) => ({ label: c.key === 'none' || !c.key ? 'Not triaged' : label(CATEGORY, c.key), value: c.count })),
      { labelWidth: 140 }));
    if (Array.isArray(stats.per_day)) {
      charts.push(perDayChart('Created and resolved per day (last 30 days, UTC)', stats.per_day));
    }
    if (sat && Array.isArray(sat.by_score)) {
      charts.push(barChart('Satisfaction ratings', ['5', '4', '3', '2', '1'].map((k) => ({
        label: `${'★'.repeat(Number(k))} (${k})`, value: count(sat.by_score, k),
      })), { labelWidth: 120, valueName: 'Ratings' }));
    }
    const load = (stats.moderator_load || []).map((l) => ({
      label: names[l.user_id] || l.email,
      value: l.open_tickets,
      mark: l.capacity ?? null,
      text: l.capacity === null || l.capacity === undefined ? `${l.open_tickets}` : `${l.open_tickets} of ${l.capacity}`,
    }));
    charts.push(barChart('Open tickets per staff member', load, {
      labelWidth: 150, valueName: 'Open tickets',
      caption: h('p', { class: 'legend' }, 'The tick on a bar marks that person\'s capacity.'),
    }));
    charts.push(barChart('Triage engine', (stats.by_triage_source || []).map((c) => ({
      label: { gemini: 'Gemini', openai: 'OpenAI-compatible', rules: 'Rules', none: 'Pending' }[c.key] || c.key, value: c.count,
    }))));
    charts.push(barChart('All tickets per assignee', (stats.by_assignee || []).map((c) => ({
      label: c.key === 'unassigned' ? 'Unassigned' : names[c.key] || `${label(ROLE, 'moderator')} …${c.key.slice(-6)}`,
      value: c.count,
    })), { labelWidth: 150 }));
    replace(body, tiles, h('div', { class: 'charts' }, charts));
  }

  await draw();
}

function tile(title, value, cls, note) {
  return h('div', { class: `tile${cls ? ` ${cls}` : ''}` },
    h('span', { class: 'tile-title' }, title),
    h('span', { class: 'tile-value' }, value),
    note ? h('span', { class: 'tile-note' }, note) : null);
}

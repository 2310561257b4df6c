// Ticket lists: my tickets, the moderator's queue, and the admin's all-tickets and unassigned
// views. One list component, configured per page; filters live in the URL.

import { get, query } from '../api.js';
import {
  h, replace, clear, field, select, input, link, time, statusBadge, priorityBadge, categoryText, busy,
  pageHeader, errorBox, announce, duration, shortId, STATUS, PRIORITY, CATEGORY, tickTimes,
} from '../dom.js';
import * as live from '../live.js';

const PAGE_SIZE = 25;

const STATUS_OPTIONS = [['', 'Any status'], ...Object.entries(STATUS).map(([k, v]) => [k, v[0]])];
const PRIORITY_OPTIONS = [['', 'Any priority'], ...Object.entries(PRIORITY).map(([k, v]) => [k, v[0]])];
const CATEGORY_OPTIONS = [['', 'Any category'], ...Object.entries(CATEGORY)];

export function myTickets(ctx) {
  const staff = ctx.user.role !== 'user';
  return ticketList(ctx, {
    title: 'My tickets',
    intro: staff ? 'Tickets you opened or that are assigned to you.' : 'Tickets you opened, newest first.',
    empty: () => h('div', { class: 'empty' },
      h('p', null, h('strong', null, 'You have no tickets yet.')),
      h('p', null, 'When something does not work or you have a question, open a ticket: it is triaged at once and a moderator picks it up.'),
      link('/tickets/new', 'Open a ticket')),
    newButton: true,
  });
}

export function queue(ctx) {
  return ticketList(ctx, {
    title: 'My queue',
    intro: 'Tickets assigned to you, the soonest deadline first.',
    fixed: { assignee: ctx.user.id, sort: 'sla_due' },
    sla: true,
    empty: () => h('div', { class: 'empty' }, h('p', null, h('strong', null, 'Nothing is assigned to you right now.')),
      h('p', null, 'New tickets that match your skills are routed to you automatically.')),
  });
}

export async function allTickets(ctx) {
  const staff = await staffList();
  return ticketList(ctx, {
    title: 'All tickets',
    intro: 'Every ticket, newest first.',
    assigneeFilter: staff,
    names: staffNames(staff),
    sla: true,
    empty: () => h('div', { class: 'empty' }, h('p', null, h('strong', null, 'No tickets yet.'))),
  });
}

export async function unassigned(ctx) {
  const staff = await staffList();
  return ticketList(ctx, {
    title: 'Unassigned',
    intro: 'Tickets routing could not place: nobody with the skills or capacity was free. Open one to assign it.',
    fixed: { assignee: 'none' },
    names: staffNames(staff),
    sla: true,
    empty: () => h('div', { class: 'empty' }, h('p', null, h('strong', null, 'Every ticket has someone on it.'))),
  });
}

/** Moderators and admins, for pickers and names (admins only may list people). */
export async function staffList() {
  const out = [];
  for (const role of ['moderator', 'admin']) {
    let cursor = null;
    do {
      const page = await get(`/api/users${query({ role, limit: 100, cursor })}`);
      out.push(...page.users);
      cursor = page.next_cursor;
    } while (cursor && out.length < 1000);
  }
  return out;
}

function staffNames(staff) {
  return Object.fromEntries(staff.map((u) => [u.id, u.name || u.email]));
}

export function assigneeName(t, me, names = {}) {
  if (!t.assigned_to) return 'Unassigned';
  if (t.assigned_to === me.id) return 'You';
  return t.assignee_name || names[t.assigned_to] || 'A moderator';
}

/** Time left before the SLA deadline, as text and a class; overdue ones stand out. */
export function slaState(t, now = Date.now()) {
  if (!t.sla_due_at || t.status === 'resolved' || t.status === 'closed') return null;
  const left = (Date.parse(t.sla_due_at) - now) / 1000;
  if (left < 0) return { overdue: true, text: `Overdue by ${duration(-left)}` };
  return { overdue: false, soon: left < 3600, text: `${duration(left)} left` };
}

export function slaBadge(t) {
  const sla = slaState(t);
  if (!sla) return h('span', { class: 'muted' }, '—');
  return h('span', { class: sla.overdue ? 'sla overdue' : sla.soon ? 'sla soon' : 'sla', title: `Due ${new Date(t.sla_due_at).toLocaleString()}` },
    sla.overdue ? h('span', { 'aria-hidden': 'true' }, '⚠ ') : null, sla.text);
}

async function ticketList(ctx, config) {
  const me = ctx.user;
  const names = config.names || {};
  const filters = {
    status: ctx.query.get('status') || '',
    priority: ctx.query.get('priority') || '',
    category: ctx.query.get('category') || '',
    q: ctx.query.get('q') || '',
    assignee: config.assigneeFilter ? ctx.query.get('assignee') || '' : '',
  };
  let cursor = null;
  let pages = 0;
  let request = 0;
  const tickets = new Map();

  const tbody = h('tbody');
  const table = h('table', { class: 'tickets', id: 'ticket-table' },
    h('caption', { class: 'sr-only' }, config.title),
    h('thead', null, h('tr', null,
      h('th', { scope: 'col' }, 'Ticket'),
      h('th', { scope: 'col' }, 'Status'),
      h('th', { scope: 'col' }, 'Priority'),
      h('th', { scope: 'col' }, 'Category'),
      h('th', { scope: 'col' }, 'Assignee'),
      config.sla ? h('th', { scope: 'col' }, 'Time left') : null,
      h('th', { scope: 'col' }, 'Opened'))),
    tbody);
  const results = h('div', { class: 'results', 'aria-live': 'polite', 'aria-busy': 'false' });
  const more = h('button', { type: 'button', id: 'load-more', hidden: true }, 'Load more');
  const count = h('p', { class: 'muted count' });

  function row(t) {
    const sla = config.sla ? slaState(t) : null;
    return h('tr', { dataset: { id: t.id }, class: sla && sla.overdue ? 'row-overdue' : null },
      h('td', { class: 'title-cell', dataset: { label: 'Ticket' } },
        h('a', { href: `/tickets/${t.id}`, dataset: { nav: '' }, class: 'ticket-link' }, t.title),
        h('span', { class: 'muted id' }, ` #${shortId(t.id)}`)),
      h('td', { dataset: { label: 'Status' } }, statusBadge(t.status)),
      h('td', { dataset: { label: 'Priority' } }, priorityBadge(t.priority)),
      h('td', { dataset: { label: 'Category' } }, t.triage_status === 'pending' && !t.category
        ? h('span', { class: 'muted' }, 'Being triaged…') : categoryText(t.category)),
      h('td', { dataset: { label: 'Assignee' } }, assigneeName(t, me, names)),
      config.sla ? h('td', { dataset: { label: 'Time left' } }, slaBadge(t)) : null,
      h('td', { dataset: { label: 'Opened' } }, time(t.created_at)));
  }

  function showRows(list, append) {
    if (!append) {
      clear(tbody);
      tickets.clear();
    }
    for (const t of list) {
      tickets.set(t.id, t);
      tbody.append(row(t));
    }
    const filtered = Object.values(filters).some(Boolean);
    if (!tickets.size) {
      replace(results, filtered
        ? h('div', { class: 'empty' }, h('p', null, h('strong', null, 'No tickets match these filters.')),
          h('button', { type: 'button', onclick: clearFilters }, 'Clear filters'))
        : config.empty());
    } else if (!results.contains(table)) {
      replace(results, table);
    }
    count.textContent = tickets.size ? `${tickets.size} shown${cursor ? ', more available' : ''}` : '';
    more.hidden = !cursor;
    tickTimes();
  }

  function params(extra = {}) {
    return query({ ...filters, ...(config.fixed || {}), limit: PAGE_SIZE, ...extra });
  }

  async function load(append) {
    request += 1;
    const mine = request;
    results.setAttribute('aria-busy', 'true');
    if (!append) replace(results, h('p', { class: 'loading', role: 'status' }, 'Loading tickets…'));
    try {
      const page = await get(`/api/tickets${params(append && cursor ? { cursor } : {})}`);
      if (mine !== request || !ctx.isCurrent()) return;
      cursor = page.next_cursor || null;
      pages = append ? pages + 1 : 1;
      showRows(page.tickets, append);
    } catch (e) {
      if (mine !== request || !ctx.isCurrent()) return;
      replace(results, errorBox(e.message));
      announce(e.message);
    } finally {
      results.setAttribute('aria-busy', 'false');
    }
  }

  // Fresh data without losing the place: one page shown -> redraw it; more -> update in place.
  async function refresh() {
    if (!ctx.isCurrent()) return;
    let page;
    try {
      page = await get(`/api/tickets${params()}`);
    } catch {
      return;
    }
    if (!ctx.isCurrent()) return;
    if (pages <= 1) {
      cursor = page.next_cursor || null;
      showRows(page.tickets, false);
      return;
    }
    for (const t of page.tickets) update(t, true);
  }

  function update(t, prependNew) {
    const existing = tbody.querySelector(`tr[data-id="${CSS.escape(t.id)}"]`);
    if (existing) {
      tickets.set(t.id, t);
      existing.replaceWith(row(t));
      tickTimes();
      return true;
    }
    if (prependNew) {
      tickets.set(t.id, t);
      tbody.prepend(row(t));
      if (!results.contains(table)) replace(results, table);
      tickTimes();
    }
    return false;
  }

  let refreshTimer = null;
  const unsubscribe = live.subscribe({
    event(ev) {
      if (!ev.ticket) return;
      if (!update(ev.ticket, false)) {
        // A ticket this view does not show yet may now belong in it: re-read soon, once.
        clearTimeout(refreshTimer);
        refreshTimer = setTimeout(refresh, 300);
      }
    },
    refresh,
  });
  ctx.setCleanup(() => {
    unsubscribe();
    clearTimeout(refreshTimer);
  });

  function syncUrl() {
    const q = query(filters);
    history.replaceState(null, '', location.pathname + q);
  }

  function clearFilters() {
    for (const k of Object.keys(filters)) filters[k] = '';
    for (const el of form.querySelectorAll('select, input')) el.value = '';
    syncUrl();
    load(false);
  }

  const onChange = (e) => {
    filters[e.target.name] = e.target.value;
    syncUrl();
    load(false);
  };
  const search = input('q', { type: 'search', id: 'filter-q', value: filters.q, placeholder: 'Title or description', maxlength: 200 });
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter tickets' },
    field('Status', select('status', STATUS_OPTIONS, filters.status, { id: 'filter-status', onchange: onChange })),
    field('Priority', select('priority', PRIORITY_OPTIONS, filters.priority, { id: 'filter-priority', onchange: onChange })),
    field('Category', select('category', CATEGORY_OPTIONS, filters.category, { id: 'filter-category', onchange: onChange })),
    config.assigneeFilter ? field('Assignee', select('assignee',
      [['', 'Anyone'], ['none', 'Unassigned'], ...config.assigneeFilter.map((u) => [u.id, u.name || u.email])],
      filters.assignee, { id: 'filter-assignee', onchange: onChange })) : null,
    h('div', { class: 'field search-field' },
      h('label', { for: 'filter-q' }, 'Search'),
      h('div', { class: 'search-row' }, search, h('button', { type: 'submit' }, 'Search'))));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    filters.q = search.value.trim();
    syncUrl();
    load(false);
  });
  more.addEventListener('click', () => busy(more, 'Loading more…', () => load(true)));

  replace(ctx.main,
    pageHeader(config.title, config.newButton ? h('a', { href: '/tickets/new', dataset: { nav: '' }, class: 'button primary' }, 'New ticket') : null),
    config.intro ? h('p', { class: 'intro' }, config.intro) : null,
    form, count, results, h('div', { class: 'more' }, more));
  await load(false);
}

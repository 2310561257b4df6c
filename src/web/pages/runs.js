// Durable runs (admins, embedded executor): the list with filters, and one run's steps as a
// timeline with attempts, durations and errors; re-run and cancel.

import { get, post, query, ApiError } from '../api.js';
import {
  h, replace, clear, field, select, link, time, busy, pageHeader, errorBox, announce, say, ms, exact, shortId, tickTimes,
} from '../dom.js';

const FUNCTIONS = ['on-ticket-created', 'on-ticket-updated', 'on-user-signup', 'retriage-ticket', 'on-ticket-created-failure'];
const STATUSES = ['queued', 'running', 'completed', 'failed', 'cancelled'];
const RUN_ICON = { queued: '…', running: '▶', completed: '✓', failed: '✕', cancelled: '⊘' };

function runBadge(status) {
  return h('span', { class: `badge run-${status}` }, h('span', { class: 'badge-icon', 'aria-hidden': 'true' }, RUN_ICON[status] || '•'),
    status ? status[0].toUpperCase() + status.slice(1) : '—');
}

function notEmbedded(e) {
  return e instanceof ApiError && e.code === 'not_embedded';
}

export async function runList(ctx) {
  const filters = { function: ctx.query.get('function') || '', status: ctx.query.get('status') || '' };
  let cursor = null;
  const tbody = h('tbody');
  const table = h('table', { class: 'runs', id: 'runs-table' },
    h('caption', { class: 'sr-only' }, 'Runs'),
    h('thead', null, h('tr', null,
      h('th', { scope: 'col' }, 'Run'), h('th', { scope: 'col' }, 'Function'), h('th', { scope: 'col' }, 'Status'),
      h('th', { scope: 'col' }, 'Event'), h('th', { scope: 'col' }, 'Started'), h('th', { scope: 'col' }, 'Took'))),
    tbody);
  const results = h('div', { class: 'results', 'aria-busy': 'false' });
  const more = h('button', { type: 'button', id: 'runs-more', hidden: true }, 'Load more');
  const form = h('form', { class: 'filters', 'aria-label': 'Filter runs' });

  function row(r) {
    const took = r.ended_at ? Date.parse(r.ended_at) - Date.parse(r.created_at) : null;
    return h('tr', { dataset: { id: r.id } },
      h('td', { dataset: { label: 'Run' } }, h('a', { href: `/admin/runs/${r.id}`, dataset: { nav: '' } }, `#${shortId(r.id)}`)),
      h('td', { dataset: { label: 'Function' } }, r.function),
      h('td', { dataset: { label: 'Status' } }, runBadge(r.status)),
      h('td', { dataset: { label: 'Event' } }, h('code', null, r.event_name)),
      h('td', { dataset: { label: 'Started' } }, time(r.created_at)),
      h('td', { dataset: { label: 'Took' } }, took === null ? (r.status === 'running' || r.status === 'queued' ? 'still going' : '—') : ms(took)));
  }

  async function load(append) {
    results.setAttribute('aria-busy', 'true');
    if (!append) replace(results, h('p', { class: 'loading', role: 'status' }, 'Loading runs…'));
    try {
      const page = await get(`/api/runs${query({ ...filters, limit: 50, cursor: append ? cursor : null })}`);
      if (!ctx.isCurrent()) return;
      cursor = page.next_cursor || null;
      if (!append) clear(tbody);
      for (const r of page.runs) tbody.append(row(r));
      replace(results, tbody.children.length ? table : h('p', { class: 'empty' }, 'No runs match.'));
      more.hidden = !cursor;
      tickTimes();
    } catch (e) {
      if (notEmbedded(e)) {
        replace(results, h('p', { class: 'notice' }, 'Runs are kept by Inngest in this mode: use the Inngest dashboard.'));
        return;
      }
      replace(results, errorBox(e.message));
      announce(e.message);
    } finally {
      results.setAttribute('aria-busy', 'false');
    }
  }

  const onChange = (e) => {
    filters[e.target.name] = e.target.value;
    history.replaceState(null, '', location.pathname + query(filters));
    load(false);
  };
  replace(form,
    field('Function', select('function', [['', 'Any function'], ...FUNCTIONS.map((f) => [f, f])], filters.function, { id: 'runs-function', onchange: onChange })),
    field('Status', select('status', [['', 'Any status'], ...STATUSES.map((s) => [s, s[0].toUpperCase() + s.slice(1)])], filters.status, { id: 'runs-status', onchange: onChange })));
  more.addEventListener('click', () => busy(more, 'Loading more…', () => load(true)));
  replace(ctx.main, pageHeader('Durable runs'),
    h('p', { class: 'intro' }, 'Every run of the durable functions: triage and routing, notifications, welcome mails. Open one to see its steps.'),
    form, results, h('div', { class: 'more' }, more));
  await load(false);
}

export async function runPage(ctx) {
  const id = ctx.params[0];
  const body = h('div', { id: 'run' });
  let timer = null;
  ctx.setCleanup(() => clearTimeout(timer));

  async function draw() {
    let run;
    try {
      run = (await get(`/api/runs/${id}`)).run;
    } catch (e) {
      if (!ctx.isCurrent()) return;
      if (e instanceof ApiError && e.status === 404) {
        replace(ctx.main, pageHeader('Run not found'), errorBox('There is no run with this id.'), h('p', null, link('/admin/runs', 'All runs')));
        return;
      }
      if (notEmbedded(e)) {
        replace(ctx.main, pageHeader('Run'), h('p', { class: 'notice' }, 'Runs are kept by Inngest in this mode: use the Inngest dashboard.'));
        return;
      }
      throw e;
    }
    if (!ctx.isCurrent()) return;
    render(run);
    clearTimeout(timer);
    if (run.status === 'queued' || run.status === 'running') timer = setTimeout(draw, 5000);
  }

  function render(run) {
    const rerun = h('button', { type: 'button', id: 'run-rerun' }, 'Re-run');
    rerun.addEventListener('click', async () => {
      try {
        const result = await busy(rerun, 'Starting…', () => post(`/api/runs/${run.id}/rerun`, {}));
        say('A new run started.');
        ctx.navigate(`/admin/runs/${result.run.id}`);
      } catch (e) {
        announce(e.message);
        rerun.after(errorBox(e.message));
      }
    });
    const active = run.status === 'queued' || run.status === 'running';
    const cancel = active ? h('button', { type: 'button', id: 'run-cancel', class: 'danger' }, 'Cancel run') : null;
    if (cancel) {
      cancel.addEventListener('click', async () => {
        try {
          const result = await busy(cancel, 'Cancelling…', () => post(`/api/runs/${run.id}/cancel`, {}));
          say('The run is cancelled.');
          render(result.run);
        } catch (e) {
          announce(e.message);
          cancel.after(errorBox(e.message));
        }
      });
    }
    const ticketId = run.event && run.event.data && typeof run.event.data.ticket_id === 'string' ? run.event.data.ticket_id : null;
    replace(body,
      h('dl', { class: 'meta' },
        h('div', null, h('dt', null, 'Status'), h('dd', { id: 'run-status' }, runBadge(run.status))),
        h('div', null, h('dt', null, 'Event'), h('dd', null, h('code', null, run.event_name))),
        h('div', null, h('dt', null, 'Created'), h('dd', null, time(run.created_at))),
        h('div', null, h('dt', null, 'Ended'), h('dd', null, run.ended_at ? time(run.ended_at) : 'not yet')),
        h('div', null, h('dt', null, 'Duration'), h('dd', null, ms(run.duration_ms))),
        run.rerun_of ? h('div', null, h('dt', null, 'Re-run of'), h('dd', null, link(`/admin/runs/${run.rerun_of}`, `#${shortId(run.rerun_of)}`))) : null,
        ticketId ? h('div', null, h('dt', null, 'Ticket'), h('dd', null, link(`/tickets/${ticketId}`, `#${shortId(ticketId)}`))) : null),
      h('div', { class: 'button-row' }, rerun, cancel),
      run.error ? h('div', { class: 'card' }, h('h2', null, 'Error'), json(run.error, 'run-error')) : null,
      h('section', { class: 'card', 'aria-labelledby': 'steps-h' }, h('h2', { id: 'steps-h' }, 'Steps'), steps(run)),
      h('details', { class: 'card' }, h('summary', null, `History (${run.history.length} entries)`), historyTable(run)),
      h('details', { class: 'card' }, h('summary', null, 'Event'), json(run.event)),
      run.output !== null && run.output !== undefined ? h('details', { class: 'card' }, h('summary', null, 'Output'), json(run.output)) : null);
    replace(ctx.main, pageHeader(`Run of ${run.function}`), h('p', { class: 'back' }, link('/admin/runs', '← All runs')), body);
    tickTimes();
  }

  await draw();
}

function steps(run) {
  if (!run.steps.length) return h('p', { class: 'muted' }, 'No steps yet.');
  const start = Math.min(...run.steps.map((st) => Date.parse(st.first_at)));
  const end = Math.max(...run.steps.map((st) => Date.parse(st.last_at) + (st.duration_ms || 0)), start + 1);
  const span = end - start;
  return h('ol', { class: 'steps', id: 'run-steps' }, run.steps.map((st) => {
    const offset = ((Date.parse(st.first_at) - start) / span) * 100;
    const width = Math.max(1, ((Date.parse(st.last_at) - Date.parse(st.first_at) + (st.duration_ms || 0)) / span) * 100);
    const bar = h('div', { class: 'step-track', 'aria-hidden': 'true' }, h('span', { class: `step-bar step-${st.status}` }));
    // Geometry through the CSSOM: allowed by the policy, unlike style attributes.
    bar.firstChild.style.marginLeft = `${Math.min(offset, 99)}%`;
    bar.firstChild.style.width = `${Math.min(width, 100 - Math.min(offset, 99))}%`;
    return h('li', { class: `step step-${st.status}` },
      h('div', { class: 'step-head' },
        h('strong', null, st.name || st.id), ' ',
        h('span', { class: 'badge' }, st.status || '—'), ' ',
        h('span', { class: 'muted' }, `${st.op}, ${st.attempts} attempt${st.attempts === 1 ? '' : 's'}, ${ms(st.duration_ms)}`)),
      bar,
      h('div', { class: 'muted step-times' }, h('span', { title: exact(st.first_at) }, `first ${new Date(st.first_at).toLocaleTimeString()}`),
        ', ', h('span', { title: exact(st.last_at) }, `last ${new Date(st.last_at).toLocaleTimeString()}`),
        st.until ? [', until ', time(st.until)] : null),
      st.error ? h('div', { class: 'step-error' }, h('span', { class: 'label-like' }, 'Last error'), json(st.error)) : null,
      st.result ? h('details', null, h('summary', null, 'Result'), json(st.result)) : null);
  }));
}

function historyTable(run) {
  if (!run.history.length) return h('p', { class: 'muted' }, 'Nothing yet.');
  return h('table', { class: 'history' },
    h('thead', null, h('tr', null, ['Time', 'Step', 'Attempt', 'Outcome', 'Took', 'Error'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', null, run.history.map((e) => h('tr', null,
      h('td', { dataset: { label: 'Time' } }, h('span', { title: exact(e.at) }, new Date(e.at).toLocaleTimeString())),
      h('td', { dataset: { label: 'Step' } }, e.name || e.op || e.step_id),
      h('td', { dataset: { label: 'Attempt' } }, String(e.attempt)),
      h('td', { dataset: { label: 'Outcome' } }, e.outcome),
      h('td', { dataset: { label: 'Took' } }, ms(e.duration_ms)),
      h('td', { dataset: { label: 'Error' } }, e.error ? json(e.error) : '—')))));
}

function json(value, id) {
  return h('pre', { class: 'json', id }, JSON.stringify(value, null, 2));
}

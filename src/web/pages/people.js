// People (admins): every account, its role, skills and capacity.

import { get, patch, query } from '../api.js';
import {
  h, replace, clear, field, select, link, time, busy, pageHeader, errorBox, announce, say, ROLE, label, tickTimes,
} from '../dom.js';

const ROLE_OPTIONS = Object.entries(ROLE);

export async function people(ctx) {
  const me = ctx.user;
  let role = ctx.query.get('role') || '';
  let cursor = null;
  const tbody = h('tbody');
  const table = h('table', { class: 'people', id: 'people-table' },
    h('caption', { class: 'sr-only' }, 'People'),
    h('thead', null, h('tr', null,
      h('th', { scope: 'col' }, 'Person'),
      h('th', { scope: 'col' }, 'Role'),
      h('th', { scope: 'col' }, 'Skills'),
      h('th', { scope: 'col' }, 'Capacity'),
      h('th', { scope: 'col' }, 'Joined'),
      h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Save')))),
    tbody);
  const results = h('div', { class: 'results', 'aria-busy': 'false' });
  const more = h('button', { type: 'button', id: 'people-more', hidden: true }, 'Load more');

  function row(u) {
    const who = u.name || u.email;
    const roleSel = select('role', ROLE_OPTIONS, u.role, { id: `role-${u.id}`, 'aria-label': `Role of ${who}` });
    const skills = h('input', {
      type: 'text', name: 'skills', id: `skills-${u.id}`, value: (u.skills || []).join(', '),
      'aria-label': `Skills of ${who}, separated by commas`, placeholder: 'e.g. SQL, Billing',
    });
    const capacity = h('input', {
      type: 'number', name: 'capacity', id: `capacity-${u.id}`, min: 0, max: 10000, step: 1,
      value: u.capacity === null || u.capacity === undefined ? '' : String(u.capacity),
      'aria-label': `Capacity of ${who} (open tickets at once; empty for no limit)`, placeholder: 'No limit',
    });
    const save = h('button', { type: 'button', class: 'primary', 'aria-label': `Save ${who}` }, 'Save');
    const status = h('span', { class: 'row-status', role: 'status' });
    const tr = h('tr', { dataset: { id: u.id } },
      h('td', { dataset: { label: 'Person' } }, h('div', { class: 'person-cell' },
        h('span', { class: 'person-name' }, u.name || '—'),
        u.id === me.id ? h('span', { class: 'badge' }, 'You') : null,
        h('span', { class: 'muted person-email' }, u.email))),
      h('td', { dataset: { label: 'Role' } }, roleSel),
      h('td', { dataset: { label: 'Skills' } }, skills),
      h('td', { dataset: { label: 'Capacity' } }, capacity),
      h('td', { dataset: { label: 'Joined' } }, time(u.created_at)),
      h('td', { dataset: { label: '' } }, save, status));
    save.addEventListener('click', async () => {
      const body = {};
      if (roleSel.value !== u.role) body.role = roleSel.value;
      const newSkills = skills.value.split(',').map((x) => x.trim()).filter(Boolean);
      if (newSkills.join('\n') !== (u.skills || []).join('\n')) body.skills = newSkills;
      const cap = capacity.value.trim() === '' ? null : Number(capacity.value);
      if (cap !== (u.capacity ?? null)) body.capacity = cap;
      status.textContent = '';
      status.className = 'row-status';
      if (!Object.keys(body).length) {
        status.textContent = 'No changes';
        return;
      }
      try {
        const result = await busy(save, 'Saving…', () => patch(`/api/users/${u.id}`, body));
        Object.assign(u, result.user);
        const fresh = row(u);
        tr.replaceWith(fresh);
        const freshStatus = fresh.querySelector('.row-status');
        freshStatus.textContent = 'Saved';
        say(`${who}: saved${body.role ? `, now ${label(ROLE, result.user.role).toLowerCase()}` : ''}.`);
        tickTimes();
      } catch (e) {
        status.textContent = e.message;
        status.className = 'row-status error';
        announce(`${who}: ${e.message}`);
      }
    });
    return tr;
  }

  async function load(append) {
    results.setAttribute('aria-busy', 'true');
    if (!append) replace(results, h('p', { class: 'loading', role: 'status' }, 'Loading people…'));
    try {
      const page = await get(`/api/users${query({ role, limit: 50, cursor: append ? cursor : null })}`);
      if (!ctx.isCurrent()) return;
      cursor = page.next_cursor || null;
      if (!append) clear(tbody);
      for (const u of page.users) tbody.append(row(u));
      replace(results, tbody.children.length ? table : h('p', { class: 'empty' }, 'Nobody has this role.'));
      more.hidden = !cursor;
      tickTimes();
    } catch (e) {
      replace(results, errorBox(e.message));
    } finally {
      results.setAttribute('aria-busy', 'false');
    }
  }

  const filter = select('role-filter', [['', 'Everyone'], ...ROLE_OPTIONS], role, { id: 'people-role' });
  filter.addEventListener('change', () => {
    role = filter.value;
    history.replaceState(null, '', location.pathname + query({ role }));
    load(false);
  });
  more.addEventListener('click', () => busy(more, 'Loading more…', () => load(true)));
  replace(ctx.main, pageHeader('People'),
    h('p', { class: 'intro' }, 'Moderators get tickets that match their skills while they have capacity left (open and in-progress tickets). ',
      'New moderators are made here from existing accounts, or with ', h('code', null, 'ticketing user create'), '. See the ', link('/admin/dashboard', 'dashboard'), ' for their load.'),
    h('div', { class: 'filters' }, field('Show', filter)),
    results, h('div', { class: 'more' }, more));
  await load(false);
}

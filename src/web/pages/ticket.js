// A new ticket, and the ticket page: conversation, reply box, the actions the viewer's role
// allows, the staff's triage panel and internal notes, the timeline, and the rating. Changes
// anyone makes (people or the durable functions) appear live.

import { get, post, patch, del, ApiError } from '../api.js';
import {
  h, val, replace, clear, field, input, select, link, time, statusBadge, priorityBadge, categoryText,
  busy, pageHeader, errorBox, announce, say, clearErrors, showError, shortId, label, exact, capitalise,
  STATUS, PRIORITY, ROLE, tickTimes, nextId,
} from '../dom.js';
import { renderMarkdown } from '../md.js';
import { assigneeName, slaBadge, staffList } from './list.js';
import * as live from '../live.js';
import * as files from '../files.js';

export async function newTicket(ctx) {
  const picker = files.filePicker();
  const f = h('form', { id: 'new-ticket-form', class: 'card form', novalidate: true },
    field('Title', input('title', { id: 'ticket-title', maxlength: 200, required: true, autocomplete: 'off' }),
      'One line: what is wrong or what you need (3 to 200 characters).'),
    field('Description', h('textarea', { name: 'description', id: 'ticket-description', rows: 8, required: true, maxlength: 20000 }),
      'What happened, what you expected, and anything you already tried.'),
    picker.element,
    h('div', { class: 'form-actions' },
      h('button', { type: 'submit', class: 'primary' }, 'Open ticket'),
      link('/', 'Cancel')));
  f.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(f);
    const button = f.querySelector('button[type=submit]');
    if (picker.count > files.MAX_FILES) {
      showError(f, new ApiError(409, 'too_many_attachments', `A ticket holds at most ${files.MAX_FILES} files; remove ${picker.count - files.MAX_FILES}.`, null));
      return;
    }
    let ticket;
    try {
      const result = await busy(button, 'Opening…', () => post('/api/tickets', {
        title: val(f, 'title').trim(),
        description: val(f, 'description').trim(),
      }));
      ticket = result.ticket;
    } catch (err) {
      showError(f, err);
      return;
    }
    // The ticket exists now; its files follow, each with its own progress bar.
    const { failed } = await busy(button, 'Sending files…', () => picker.uploadAll(ticket.id));
    if (failed.length) {
      const names = failed.map((x) => x.name).join(', ');
      replace(f, errorBox(`Your ticket was opened, but ${failed.length === 1 ? 'one file was' : `${failed.length} files were`} not attached (${names}): ${failed[0].error.message}`),
        h('p', null, link(`/tickets/${ticket.id}`, 'Open the ticket to add them again')));
      announce('Ticket opened, but some files were not attached.');
      return;
    }
    say('Ticket opened. Triage is running.');
    ctx.navigate(`/tickets/${ticket.id}`);
  });
  replace(ctx.main, pageHeader('Open a ticket'),
    h('p', { class: 'intro' }, 'Your ticket is triaged as soon as you send it and goes to a moderator with the right skills.'),
    h('div', { class: 'narrow wide' }, f));
}

/** The status changes this viewer may make, as [to, button label]. */
function allowedMoves(t, me) {
  if (me.role === 'admin') return [];
  const moves = [];
  const isCreator = t.created_by === me.id;
  const isAssignee = me.role === 'moderator' && t.assigned_to === me.id;
  if (isAssignee) {
    if (t.status === 'open') moves.push(['in_progress', 'Start work']);
    if (t.status === 'in_progress') moves.push(['resolved', 'Resolve'], ['open', 'Back to open']);
    if (t.status === 'open') moves.push(['resolved', 'Resolve']);
    if (t.status === 'resolved') moves.push(['in_progress', 'Reopen']);
  }
  if (isCreator) {
    if (t.status === 'resolved' || t.status === 'closed') moves.push(['open', 'Reopen']);
    if (t.status !== 'closed') moves.push(['closed', 'Close ticket']);
  }
  const seen = new Set();
  return moves.filter(([to]) => (seen.has(to) ? false : seen.add(to)));
}

export async function ticketPage(ctx) {
  const id = ctx.params[0].toLowerCase();
  const me = ctx.user;
  const staff = me.role !== 'user';
  const isAdmin = me.role === 'admin';
  const state = { ticket: null, comments: [], activity: null, attachments: [], staff: [], gone: false };
  const blobUrls = new Map();

  let loaded;
  try {
    loaded = await Promise.all([
      get(`/api/tickets/${id}`),
      get(`/api/tickets/${id}/comments`),
      loadActivity(id),
      isAdmin ? staffList().catch(() => []) : Promise.resolve([]),
      loadAttachments(id),
    ]);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      replace(ctx.main, pageHeader('Ticket not found'),
        errorBox('This ticket does not exist, or you cannot see it.'),
        h('p', null, link('/', 'Back to your tickets')));
      return;
    }
    throw e;
  }
  if (!ctx.isCurrent()) return;
  [state.ticket, state.comments, state.activity, state.staff, state.attachments] = [loaded[0].ticket, loaded[1].comments, loaded[2], loaded[3], loaded[4]];

  const head = h('section', { class: 'ticket-head', id: 'ticket-head', 'aria-label': 'Ticket' });
  const banner = h('div', { id: 'ticket-banner' });
  const description = h('div', { class: 'card description-card' });
  const attachmentsCard = h('section', { class: 'card attachments-card', id: 'attachments', 'aria-labelledby': 'attachments-h' });
  const actions = h('section', { class: 'card actions', id: 'ticket-actions', 'aria-labelledby': 'actions-h' });
  const conversation = h('ol', { class: 'conversation', id: 'conversation' });
  const rating = h('section', { id: 'rating', 'aria-live': 'polite' });
  const triage = h('section', { class: 'card triage', id: 'triage-panel', 'aria-labelledby': 'triage-h' });
  const timeline = h('section', { class: 'card timeline', id: 'timeline', 'aria-labelledby': 'timeline-h' });
  const reply = replyForm();

  function names() {
    const map = {};
    for (const u of state.staff) map[u.id] = u.name || u.email;
    for (const a of state.activity || []) {
      if (a.actor && a.actor.id) map[a.actor.id] = a.actor.name;
      if (a.kind === 'assigned' && a.data && a.data.assignee) map[a.data.assignee.id] = a.data.assignee.name;
    }
    const t = state.ticket;
    if (t.assigned_to && t.assignee_name) map[t.assigned_to] = t.assignee_name;
    return map;
  }

  function nameOf(userId) {
    if (userId === me.id) return 'You';
    const map = names();
    if (map[userId]) return map[userId];
    if (userId === state.ticket.created_by) return staff ? 'The customer' : 'You';
    return 'Support team';
  }

  function renderHead() {
    const t = state.ticket;
    const pending = t.triage_status === 'pending';
    const hadFocus = head.contains(document.activeElement);
    replace(head,
      h('div', { class: 'page-head' },
        h('h1', { tabindex: '-1', id: 'ticket-heading' }, t.title),
        h('span', { class: 'muted id' }, `#${shortId(t.id)}`)),
      h('dl', { class: 'meta' },
        h('div', null, h('dt', null, 'Status'), h('dd', { id: 'ticket-status' }, statusBadge(t.status))),
        h('div', null, h('dt', null, 'Priority'), h('dd', { id: 'ticket-priority' },
          pending && !t.priority_locked ? h('span', { class: 'muted' }, 'Being triaged…') : priorityBadge(t.priority),
          t.escalated_at ? h('span', { class: 'badge escalated', title: `Escalated ${exact(t.escalated_at)}` }, '⇧ Escalated') : null)),
        h('div', null, h('dt', null, 'Category'), h('dd', { id: 'ticket-category' },
          pending && !t.category ? h('span', { class: 'muted' }, 'Being triaged…') : categoryText(t.category))),
        h('div', null, h('dt', null, 'Assignee'), h('dd', { id: 'ticket-assignee' },
          pending && !t.assigned_to ? h('span', { class: 'muted' }, 'Being routed…') : assigneeName(t, me, names()))),
        h('div', null, h('dt', null, 'Opened'), h('dd', null, time(t.created_at),
          staff && t.created_by !== me.id ? [' by ', h('span', { class: 'person' }, nameOf(t.created_by))] : null)),
        t.sla_due_at && t.status !== 'resolved' && t.status !== 'closed'
          ? h('div', null, h('dt', null, 'Deadline'), h('dd', { id: 'ticket-sla' }, slaBadge(t))) : null),
      pending
        ? h('p', { class: 'triage-state', id: 'triage-state', role: 'status' },
          h('span', { class: 'spinner', 'aria-hidden': 'true' }),
          'Triage is running: the category, priority and assignee appear here in a moment.')
        : null);
    if (hadFocus) head.querySelector('h1').focus({ preventScroll: true });
  }

  function renderDescription() {
    const t = state.ticket;
    replace(description, h('h2', { class: 'sr-only' }, 'Description'),
      h('div', { class: 'comment-head' },
        h('strong', { class: 'person' }, nameOf(t.created_by)), ' ', time(t.created_at)),
      h('div', { class: 'body', id: 'ticket-description-text' }, t.description));
  }

  function renderAttachments() {
    const list = files.attachmentList(state.attachments, {
      urls: blobUrls,
      nameOf,
      canDelete: (a) => a.uploaded_by === me.id || isAdmin,
      onDelete: deleteAttachment,
    });
    attachmentsCard.hidden = !list;
    replace(attachmentsCard, h('h2', { id: 'attachments-h' }, `Files (${state.attachments.length})`), list);
  }

  async function deleteAttachment(a, button) {
    if (!window.confirm(`Delete ${a.filename}? Nobody will be able to open it again.`)) return;
    try {
      await busy(button, 'Deleting…', () => del(`/api/attachments/${a.id}`));
      state.attachments = state.attachments.filter((x) => x.id !== a.id);
      renderAttachments();
      say(`${a.filename} deleted.`);
    } catch (e) {
      announce(`Could not delete ${a.filename}: ${e.message}`);
      if (e.status === 404) refreshAttachments();
    }
  }

  async function refreshAttachments() {
    const list = await loadAttachments(id);
    if (!ctx.isCurrent()) return;
    const before = state.attachments.map((a) => a.id).join();
    state.attachments = list;
    if (list.map((a) => a.id).join() !== before) renderAttachments();
  }

  function renderActions() {
    const t = state.ticket;
    const parts = [h('h2', { id: 'actions-h' }, 'Actions')];
    const moves = allowedMoves(t, me);
    if (moves.length) {
      parts.push(h('div', { class: 'button-row' }, moves.map(([to, text]) =>
        h('button', { type: 'button', class: to === 'resolved' ? 'primary' : null, dataset: { to }, onclick: (e) => changeStatus(e.currentTarget, to) }, text))));
    }
    if (isAdmin) parts.push(adminControls(t));
    if (parts.length === 1) {
      parts.push(h('p', { class: 'muted' }, t.status === 'closed' ? 'This ticket is closed.' : 'Nothing to do here for you right now.'));
    }
    parts.push(h('div', { class: 'action-error', id: 'action-error' }));
    replace(actions, parts);
  }

  function adminControls(t) {
    const statusSel = select('status', Object.entries(STATUS).map(([k, v]) => [k, v[0]]), t.status, { id: 'admin-status' });
    const prioSel = select('priority', Object.entries(PRIORITY).map(([k, v]) => [k, v[0]]), t.priority, { id: 'admin-priority' });
    const people = state.staff.map((u) => [u.id, `${u.name || u.email} (${label(ROLE, u.role)})`]);
    if (t.assigned_to && !state.staff.some((u) => u.id === t.assigned_to)) people.push([t.assigned_to, assigneeName(t, me, names())]);
    const assignSel = select('assignee', [['', 'Unassigned'], ...people], t.assigned_to || '', { id: 'admin-assignee' });
    const control = (labelText, sel, buttonText, onClick) => h('div', { class: 'admin-control' },
      h('label', { for: sel.id }, labelText),
      h('div', { class: 'inline' }, sel, h('button', { type: 'button', onclick: (e) => onClick(e.currentTarget, sel.value) }, buttonText)));
    return h('div', { class: 'admin-controls' },
      control('Status', statusSel, 'Set status', (b, v) => changeStatus(b, v)),
      control(t.priority_locked ? 'Priority (set by a person)' : 'Priority', prioSel, 'Override priority',
        (b, v) => change(b, { priority: v }, `Priority set to ${label(PRIORITY, v)}.`)),
      control('Assignee', assignSel, 'Reassign', (b, v) => change(b, { assignee_id: v || null },
        v ? `Assigned to ${assignSel.selectedOptions[0].textContent}.` : 'Unassigned.')),
      h('div', { class: 'admin-control' },
        h('span', { class: 'label-like' }, 'Triage'),
        h('button', { type: 'button', id: 'retriage', onclick: (e) => retriage(e.currentTarget) }, 'Re-run triage')));
  }

  function actionError(e) {
    const slot = actions.querySelector('#action-error');
    if (slot) replace(slot, errorBox(e.message));
    announce(e.message);
  }

  async function changeStatus(button, to) {
    await change(button, { status: to }, `Status changed to ${label(STATUS, to)}.`);
  }

  async function change(button, body, done) {
    try {
      const result = await busy(button, 'Saving…', () => patch(`/api/tickets/${id}`, body));
      apply(result.ticket);
      say(done);
      refreshActivity();
    } catch (e) {
      actionError(e);
      if (e.status === 409) refresh();
    }
  }

  async function retriage(button) {
    try {
      const result = await busy(button, 'Starting…', () => post(`/api/tickets/${id}/retriage`, {}));
      if (result && result.ticket) apply(result.ticket);
      say('Triage runs again; the panel updates when it is done.');
    } catch (e) {
      actionError(e);
    }
  }

  function renderConversation() {
    clear(conversation);
    for (const c of state.comments) conversation.append(commentItem(c));
    if (!state.comments.length) {
      conversation.append(h('li', { class: 'muted no-replies' }, 'No replies yet.'));
    }
  }

  function commentItem(c) {
    return h('li', { class: `comment${c.internal ? ' internal' : ''}${c.author_id === me.id ? ' mine' : ''}`, dataset: { id: c.id } },
      h('div', { class: 'comment-head' },
        h('strong', { class: 'person' }, nameOf(c.author_id)), ' ', time(c.created_at),
        c.internal ? h('span', { class: 'badge internal-badge' }, h('span', { 'aria-hidden': 'true' }, '⚑ '), 'Internal note: staff only') : null),
      h('div', { class: 'body' }, c.body));
  }

  function replyForm() {
    const text = h('textarea', { name: 'body', id: 'reply-body', rows: 4, required: true, maxlength: 20000 });
    const internalBox = staff ? h('input', { type: 'checkbox', name: 'internal', id: 'reply-internal' }) : null;
    const button = h('button', { type: 'submit', class: 'primary', id: 'reply-send' }, 'Send reply');
    const picker = files.filePicker({ staff, internalDefault: () => Boolean(internalBox && internalBox.checked) });
    if (internalBox) {
      internalBox.addEventListener('change', () => {
        button.textContent = internalBox.checked ? 'Add internal note' : 'Send reply';
        f.classList.toggle('internal', internalBox.checked);
      });
    }
    const f = h('form', { class: 'card form reply', id: 'reply-form', novalidate: true, 'aria-labelledby': 'reply-h' },
      h('h2', { id: 'reply-h' }, 'Reply'),
      field(staff ? 'Your reply or note' : 'Your reply', text),
      internalBox ? h('div', { class: 'check' }, internalBox, h('label', { for: 'reply-internal' }, 'Internal note (only staff see it)')) : null,
      picker.element,
      h('div', { class: 'form-actions' }, button));
    f.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearErrors(f);
      const body = text.value.trim();
      if (!body && !picker.count) {
        showError(f, new ApiError(422, 'validation_failed', 'Write something or attach a file first.', { field: 'body', reason: 'write something or attach a file first' }));
        return;
      }
      if (state.attachments.length + picker.count > files.MAX_FILES) {
        showError(f, new ApiError(409, 'too_many_attachments', `A ticket holds at most ${files.MAX_FILES} files; it has ${state.attachments.length}.`, null));
        return;
      }
      // Files first, then the words: the reply's mail names the files that came with it.
      if (picker.count) {
        const { sent, failed } = await busy(button, 'Sending files…', () => picker.uploadAll(id));
        for (const a of sent) if (!state.attachments.some((x) => x.id === a.id)) state.attachments.push(a);
        if (sent.length) renderAttachments();
        if (failed.length) {
          showError(f, new ApiError(0, 'upload_failed', `${failed.length === 1 ? `${failed[0].name} was` : `${failed.length} files were`} not attached: ${failed[0].error.message}${body ? ' Your reply was not sent yet.' : ''}`, null));
          return;
        }
        if (!body) {
          say(`${sent.length === 1 ? 'File' : 'Files'} attached.`);
          refreshActivity();
          return;
        }
      }
      try {
        const internal = Boolean(internalBox && internalBox.checked);
        const result = await busy(button, 'Sending…', () => post(`/api/tickets/${id}/comments`, { body, internal }));
        text.value = '';
        addComment(result.comment);
        say(internal ? 'Internal note added.' : 'Reply sent.');
        refreshActivity();
      } catch (err) {
        showError(f, err);
      }
    });
    return f;
  }

  function addComment(c) {
    if (state.comments.some((x) => x.id === c.id)) return;
    state.comments.push(c);
    state.comments.sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.id < b.id ? -1 : 1));
    renderConversation();
    tickTimes();
  }

  function renderTriage() {
    const t = state.ticket;
    if (!staff) {
      triage.hidden = true;
      return;
    }
    triage.hidden = false;
    const tr = t.triage;
    const parts = [h('h2', { id: 'triage-h' }, 'Triage')];
    if (!tr) {
      parts.push(h('p', { class: 'muted' }, t.triage_status === 'pending' ? 'Triage is running…' :
        t.triage_status === 'failed' ? 'Triage failed; set the category and priority by hand or re-run it.' : 'No triage result.'));
    } else {
      const confidence = typeof tr.confidence === 'number' ? `${Math.round(tr.confidence * 100)} %` : '—';
      parts.push(h('dl', { class: 'facts' },
        h('dt', null, 'Summary'), h('dd', { id: 'triage-summary' }, tr.summary),
        h('dt', null, 'Category'), h('dd', null, categoryText(t.category)),
        h('dt', null, 'Priority'), h('dd', null, label(PRIORITY, t.priority)),
        h('dt', null, 'Sentiment'), h('dd', null, label({}, tr.sentiment)),
        h('dt', null, 'Confidence'), h('dd', null, confidence),
        h('dt', null, 'Skills needed'), h('dd', null, tr.required_skills && tr.required_skills.length
          ? h('ul', { class: 'chips' }, tr.required_skills.map((sk) => h('li', null, sk))) : 'None in particular'),
        h('dt', null, 'Engine'), h('dd', { id: 'triage-source' }, capitalise(engineName(tr.source)),
          t.triage_status === 'fallback' ? ' (rules stepped in after the AI failed)' : ''),
        h('dt', null, 'Triaged'), h('dd', null, time(tr.triaged_at)),
        t.routing_reason ? [h('dt', null, 'Routing'), h('dd', { id: 'routing-reason' }, t.routing_reason)] : null));
      if (tr.helpful_notes) {
        parts.push(h('h3', null, 'Notes for the moderator'), h('div', { class: 'markdown', id: 'triage-notes' }, renderMarkdown(tr.helpful_notes)));
      }
    }
    replace(triage, parts);
  }

  function renderTimeline() {
    const items = state.activity ? state.activity.map(activityItem) : derivedTimeline();
    replace(timeline, h('h2', { id: 'timeline-h' }, 'Timeline'),
      items.length ? h('ol', { class: 'events' }, items) : h('p', { class: 'muted' }, 'Nothing yet.'));
  }

  function who(actor) {
    if (!actor) return 'The system';
    return actor.id === me.id ? 'You' : actor.name;
  }

  function activityItem(a) {
    const d = a.data || {};
    const actor = who(a.actor);
    let text;
    let icon = '•';
    switch (a.kind) {
      case 'created': text = `${actor} opened the ticket`; icon = '✚'; break;
      case 'triaged':
        icon = '⚙';
        text = `Triaged by ${engineName(d.source)}${d.status === 'fallback' ? ' (fallback)' : d.status === 'failed' ? ' (failed)' : ''}`
          + (d.category ? `: ${categoryText(d.category)}, ${label(PRIORITY, d.priority)} priority` : '');
        break;
      case 'assigned':
        icon = '→';
        text = d.assignee ? `Assigned to ${d.assignee.id === me.id ? 'you' : d.assignee.name}` : 'Left unassigned';
        if (a.actor) text += ` by ${actor === 'You' ? 'you' : actor}`;
        break;
      case 'status_changed': icon = '◔'; text = `${actor} changed the status from ${label(STATUS, d.from)} to ${label(STATUS, d.to)}`; break;
      case 'priority_changed': icon = '◆'; text = `${actor} changed the priority from ${label(PRIORITY, d.from)} to ${label(PRIORITY, d.to)}`; break;
      case 'sla_set': icon = '◷'; text = 'Deadline set'; break;
      case 'escalated': icon = '⇧'; text = `Deadline passed: escalated to ${label(PRIORITY, d.priority)} priority`; break;
      case 'commented': icon = d.internal ? '⚑' : '✉'; text = d.internal ? `${actor} added an internal note` : `${actor} replied`; break;
      case 'rated': icon = '★'; text = `${actor} rated the help ${d.score} out of 5`; break;
      default: text = `${actor}: ${String(a.kind).replace(/_/g, ' ')}`;
    }
    return h('li', { class: `event event-${a.kind}`, dataset: { kind: a.kind } },
      h('span', { class: 'event-icon', 'aria-hidden': 'true' }, icon),
      h('div', null,
        h('span', { class: 'event-text' }, text),
        a.kind === 'sla_set' && d.due_at ? [': ', time(d.due_at, 'due ')] : null,
        a.kind === 'assigned' && d.reason ? h('span', { class: 'event-reason' }, d.reason) : null,
        h('span', { class: 'event-time' }, time(a.at))));
  }

  // Without the activity API (an older server) the ticket's own dates tell most of the story.
  function derivedTimeline() {
    const t = state.ticket;
    const rows = [[t.created_at, '✚', `${nameOf(t.created_by)} opened the ticket`]];
    if (t.triage && t.triage.triaged_at) rows.push([t.triage.triaged_at, '⚙', `Triaged by ${engineName(t.triage.source)}`]);
    if (t.assigned_at) rows.push([t.assigned_at, '→', `Assigned to ${assigneeName(t, me, names())}`]);
    if (t.escalated_at) rows.push([t.escalated_at, '⇧', 'Deadline passed: escalated']);
    for (const c of state.comments) rows.push([c.created_at, c.internal ? '⚑' : '✉', `${nameOf(c.author_id)} ${c.internal ? 'added an internal note' : 'replied'}`]);
    if (t.resolved_at) rows.push([t.resolved_at, '✓', 'Resolved']);
    rows.sort((a, b) => (a[0] < b[0] ? -1 : 1));
    return rows.map(([at, icon, text]) => h('li', { class: 'event' },
      h('span', { class: 'event-icon', 'aria-hidden': 'true' }, icon),
      h('div', null, h('span', { class: 'event-text' }, text), h('span', { class: 'event-time' }, time(at)))));
  }

  function renderRating() {
    const t = state.ticket;
    const done = t.status === 'resolved' || t.status === 'closed';
    const isCreator = t.created_by === me.id;
    if (t.rating) {
      replace(rating, h('div', { class: 'card rating-card', id: 'rating-result' },
        h('h2', null, 'Rating'),
        h('p', null, h('span', { class: 'stars', 'aria-hidden': 'true' }, '★'.repeat(t.rating.score) + '☆'.repeat(5 - t.rating.score)), ' ',
          `${isCreator ? 'You rated' : 'The customer rated'} the help ${t.rating.score} out of 5`),
        t.rating.comment ? h('blockquote', null, t.rating.comment) : null));
      return;
    }
    if (!isCreator || !done) {
      clear(rating);
      return;
    }
    replace(rating, ratingForm());
  }

  function ratingForm() {
    const name = nextId('score');
    const labels = ['Very poor', 'Poor', 'Fair', 'Good', 'Excellent'];
    const comment = h('textarea', { name: 'comment', id: 'rating-comment', rows: 3, maxlength: 2000 });
    const f = h('form', { class: 'card form rating-form', id: 'rating-form', novalidate: true },
      h('h2', null, 'Rate the help you got'),
      h('fieldset', { class: 'score' },
        h('legend', null, 'Your rating, 1 to 5'),
        h('div', { class: 'score-options' }, labels.map((text, i) => {
          const radioId = `${name}-${i + 1}`;
          return h('span', { class: 'score-option' },
            h('input', { type: 'radio', name: 'score', id: radioId, value: String(i + 1) }),
            h('label', { for: radioId }, h('span', { class: 'score-num' }, String(i + 1)), ' ', text));
        })),
        h('span', { class: 'field-error', id: 'score-error', hidden: true })),
      field('Comment (optional)', comment),
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'primary', id: 'rating-send' }, 'Send rating')));
    f.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearErrors(f);
      const picked = f.querySelector('input[name=score]:checked');
      if (!picked) {
        const slot = f.querySelector('#score-error');
        slot.textContent = 'Pick a score from 1 to 5.';
        slot.hidden = false;
        announce('Pick a score from 1 to 5.');
        f.querySelector('input[name=score]').focus();
        return;
      }
      const body = { score: Number(picked.value) };
      if (comment.value.trim()) body.comment = comment.value.trim();
      try {
        const result = await busy(f.querySelector('button[type=submit]'), 'Sending…', () => post(`/api/tickets/${id}/rating`, body));
        state.ticket = { ...state.ticket, rating: result.rating };
        renderRating();
        say('Thank you for your rating.');
        refreshActivity();
      } catch (err) {
        showError(f, err);
        if (err.status === 409) refresh();
      }
    });
    return f;
  }

  function apply(ticket) {
    if (!ticket || ticket.id !== id) return;
    const current = state.ticket;
    if (current && typeof ticket.version === 'number' && ticket.version < current.version) return;
    // A view without the staff-only fields never hides what a fuller read already showed.
    state.ticket = ticket;
    renderAll();
  }

  function renderAll() {
    const focused = document.activeElement;
    const keepFocus = focused && actions.contains(focused) ? focused.id || focused.dataset.to : null;
    renderHead();
    renderDescription();
    renderActions();
    renderTriage();
    renderTimeline();
    renderRating();
    if (keepFocus) {
      const again = actions.querySelector(`#${CSS.escape(keepFocus)}`) || actions.querySelector(`[data-to="${CSS.escape(keepFocus)}"]`);
      if (again) again.focus();
    }
    tickTimes();
  }

  let activityTimer = null;
  function refreshActivity() {
    clearTimeout(activityTimer);
    activityTimer = setTimeout(async () => {
      const [activity] = await Promise.all([loadActivity(id), refreshAttachments()]);
      if (!ctx.isCurrent()) return;
      state.activity = activity;
      // The log names people the ticket alone may not (the assignee, for its creator).
      renderHead();
      renderTimeline();
      renderConversation();
      tickTimes();
    }, 150);
  }

  // Changes made elsewhere are read out, not only drawn.
  function announceChange(before, after) {
    if (!before || !after || before === after) return;
    if (before.triage_status === 'pending' && after.triage_status !== 'pending') {
      say(`Triage finished: ${categoryText(after.category)}, ${label(PRIORITY, after.priority)} priority.`);
    } else if (before.status !== after.status) {
      say(`The status is now ${label(STATUS, after.status)}.`);
    }
  }

  async function refresh() {
    if (!ctx.isCurrent() || state.gone) return;
    const before = state.ticket;
    try {
      const [t, c, a] = await Promise.all([get(`/api/tickets/${id}`), get(`/api/tickets/${id}/comments`), loadActivity(id), refreshAttachments()]);
      if (!ctx.isCurrent()) return;
      state.comments = c.comments;
      state.activity = a;
      state.ticket = t.ticket;
      renderAll();
      renderConversation();
      announceChange(before, state.ticket);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        state.gone = true;
        replace(banner, errorBox('You can no longer see this ticket: it was reassigned or your access changed.'));
        announce('You can no longer see this ticket.');
      }
    }
  }

  const unsubscribe = live.subscribe({
    event(ev) {
      if (ev.ticket_id !== id || state.gone) return;
      const before = state.ticket;
      if (ev.ticket) apply(ev.ticket);
      announceChange(before, state.ticket);
      if (ev.type === 'comment.added' && ev.comment) addComment(ev.comment);
      refreshActivity();
    },
    refresh,
  });
  ctx.setCleanup(() => {
    unsubscribe();
    clearTimeout(activityTimer);
    files.forget(blobUrls);
  });

  replace(ctx.main,
    h('p', { class: 'back' }, link(me.role === 'admin' ? '/admin/tickets' : me.role === 'moderator' ? '/queue' : '/', '← Back to the list')),
    banner, head,
    h('div', { class: 'ticket-grid' },
      h('div', { class: 'ticket-main' },
        description, attachmentsCard, actions,
        h('section', { 'aria-labelledby': 'conv-h', class: 'conversation-wrap' },
          h('h2', { id: 'conv-h' }, 'Conversation'), conversation),
        reply, rating),
      h('aside', { class: 'ticket-side', 'aria-label': 'Details' }, triage, timeline)));
  renderAll();
  renderConversation();
  renderAttachments();
}

/** The ticket's files, or none when this server keeps none (an older one). */
async function loadAttachments(id) {
  try {
    const result = await get(`/api/tickets/${id}/attachments`);
    return Array.isArray(result.attachments) ? result.attachments : [];
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 405)) return [];
    throw e;
  }
}

/** The timeline from the API, or null when this server has none (the page derives one). */
async function loadActivity(id) {
  try {
    const result = await get(`/api/tickets/${id}/activity`);
    return Array.isArray(result.activity) ? result.activity : null;
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 405)) return null;
    throw e;
  }
}

function engineName(source) {
  return { gemini: 'Gemini', openai: 'an OpenAI-compatible model', rules: 'the rules engine' }[source] || source || 'unknown';
}

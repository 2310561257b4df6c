// Building the page. Every value reaches the DOM through createElement and text nodes, never
// through HTML parsing, so whatever a person typed shows as text.

/**
 * h('p', {class: 'x', onclick: fn}, 'text', child, [more]) -> element.
 * Attributes: `class`, `for`, `on*` handlers, booleans, `dataset` object; null/false skip.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  if (!attrs) return;
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'value' && 'value' in el && el.namespaceURI !== SVG_NS) {
      el.value = value;
    } else if (key === 'checked' || key === 'selected') {
      el[key] = Boolean(value);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function replace(el, ...children) {
  clear(el);
  return append(el, children);
}

// Announcements for screen readers: errors interrupt, progress waits its turn.
export function announce(message) {
  const region = document.getElementById('announcer');
  if (!region) return;
  region.textContent = '';
  // A fresh text node is read even when the message repeats.
  setTimeout(() => { region.textContent = message; }, 30);
}

export function say(message) {
  const region = document.getElementById('status-announcer');
  if (!region) return;
  region.textContent = '';
  setTimeout(() => { region.textContent = message; }, 30);
}

// ---- dates ----

const UNITS = [
  ['year', 365 * 24 * 3600],
  ['month', 30 * 24 * 3600],
  ['week', 7 * 24 * 3600],
  ['day', 24 * 3600],
  ['hour', 3600],
  ['minute', 60],
];

let formatter = null;
function rtf() {
  if (!formatter) formatter = new Intl.RelativeTimeFormat('en', { numeric: 'auto', style: 'short' });
  return formatter;
}

export function relative(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const diff = (t - now) / 1000;
  const abs = Math.abs(diff);
  if (abs < 45) return diff <= 0 ? 'just now' : 'in a moment';
  for (const [unit, secs] of UNITS) {
    if (abs >= secs || unit === 'minute') {
      return rtf().format(Math.round(diff / secs), unit);
    }
  }
  return '';
}

export function exact(iso) {
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return '';
  return t.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

/** <time> with a relative text and the exact time on hover; kept fresh by `tickTimes`. */
export function time(iso, prefix = '') {
  if (!iso) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: iso, title: exact(iso), dataset: { rel: '1', prefix } }, prefix + relative(iso));
}

export function tickTimes() {
  for (const el of document.querySelectorAll('time[data-rel]')) {
    el.textContent = (el.dataset.prefix || '') + relative(el.getAttribute('datetime'));
  }
}

/** "2 h 5 min" for a number of seconds. */
export function duration(secs) {
  if (secs === null || secs === undefined || Number.isNaN(secs)) return '—';
  const s = Math.round(Math.abs(secs));
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return m % 60 ? `${hours} h ${m % 60} min` : `${hours} h`;
  const days = Math.floor(hours / 24);
  return hours % 24 ? `${days} d ${hours % 24} h` : `${days} d`;
}

export function ms(n) {
  if (n === null || n === undefined) return '—';
  if (n < 1000) return `${n} ms`;
  return `${(n / 1000).toFixed(n < 10000 ? 2 : 1)} s`;
}

// ---- labels and badges: words first, colour only as a second cue ----

export const STATUS = {
  open: ['Open', '○'],
  in_progress: ['In progress', '◔'],
  resolved: ['Resolved', '✓'],
  closed: ['Closed', '■'],
};

export const PRIORITY = {
  high: ['High', '▲'],
  medium: ['Medium', '◆'],
  low: ['Low', '▽'],
};

export const CATEGORY = {
  bug: 'Bug',
  feature_request: 'Feature request',
  technical_issue: 'Technical issue',
  billing: 'Billing',
  account: 'Account',
  question: 'Question',
  other: 'Other',
};

export const ROLE = { user: 'User', moderator: 'Moderator', admin: 'Admin' };

export function label(map, key) {
  const v = map[key];
  if (Array.isArray(v)) return v[0];
  return v || String(key || '').replace(/_/g, ' ');
}

function badge(kind, map, key, extra) {
  const entry = map[key] || [label(map, key), '•'];
  return h('span', { class: `badge ${kind} ${kind}-${key}` },
    h('span', { class: 'badge-icon', 'aria-hidden': 'true' }, entry[1]),
    extra ? `${extra} ${entry[0].toLowerCase()}` : entry[0]);
}

export const statusBadge = (status) => badge('status', STATUS, status);
export const priorityBadge = (priority) => badge('priority', PRIORITY, priority, null);

export function categoryText(category) {
  return category ? label(CATEGORY, category) : '—';
}

// ---- forms ----

let uid = 0;
export function nextId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

/**
 * A labelled control with a slot for its error. `control` is an element; returns the wrapper.
 * The control gets `aria-describedby` pointing at the hint and error.
 */
export function field(labelText, control, hint) {
  if (!control.id) control.id = nextId('f');
  const errorId = `${control.id}-error`;
  const parts = [h('label', { for: control.id }, labelText)];
  const described = [];
  if (hint) {
    const hintId = `${control.id}-hint`;
    parts.push(h('span', { class: 'hint', id: hintId }, hint));
    described.push(hintId);
  }
  parts.push(control);
  parts.push(h('span', { class: 'field-error', id: errorId, hidden: true }));
  described.push(errorId);
  control.setAttribute('aria-describedby', described.join(' '));
  return h('div', { class: 'field', dataset: { field: control.name || '' } }, parts);
}

export function input(name, attrs = {}) {
  return h('input', { name, type: 'text', ...attrs });
}

export function select(name, options, value, attrs = {}) {
  const el = h('select', { name, ...attrs },
    options.map(([v, text]) => h('option', { value: v }, text)));
  el.value = value ?? '';
  return el;
}

/** Clears every error a form shows. */
export function clearErrors(form) {
  for (const el of form.querySelectorAll('.field-error')) {
    el.textContent = '';
    el.hidden = true;
  }
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  const summary = form.querySelector('.form-error');
  if (summary) {
    summary.textContent = '';
    summary.hidden = true;
  }
}

/**
 * Shows an API error: next to its field when the API names one the form has, else at the top of
 * the form. Either way it is announced.
 */
export function showError(form, err, fieldAliases = {}) {
  const fieldName = err && err.field ? (fieldAliases[err.field] || err.field) : null;
  const control = fieldName ? form.querySelector(`[name="${CSS.escape(fieldName)}"]`) : null;
  const message = (err && err.details && err.details.reason) || (err && err.message) || 'Something went wrong.';
  if (control) {
    const slot = document.getElementById(`${control.id}-error`);
    if (slot) {
      slot.textContent = capitalise(message);
      slot.hidden = false;
    }
    control.setAttribute('aria-invalid', 'true');
    control.focus();
    announce(`${labelOf(control)}: ${message}`);
    return;
  }
  let summary = form.querySelector('.form-error');
  if (!summary) {
    summary = h('p', { class: 'form-error' });
    form.prepend(summary);
  }
  summary.textContent = (err && err.message) ? capitalise(err.message) : 'Something went wrong.';
  summary.hidden = false;
  announce(summary.textContent);
}

function labelOf(control) {
  const l = control.id ? document.querySelector(`label[for="${CSS.escape(control.id)}"]`) : null;
  return l ? l.textContent : control.name;
}

export function capitalise(text) {
  const t = String(text || '');
  return t ? t[0].toUpperCase() + t.slice(1) : t;
}

/** Runs `work` with the button busy and disabled; its label says what is happening. */
export async function busy(button, busyText, work) {
  const original = button.textContent;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  button.textContent = busyText;
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    button.textContent = original;
  }
}

export function loading(text = 'Loading…') {
  return h('p', { class: 'loading', role: 'status' }, text);
}

export function errorBox(message) {
  return h('p', { class: 'error-box', role: 'alert' }, message);
}

export function link(href, ...children) {
  return h('a', { href, dataset: { nav: '' } }, children);
}

/** The visible part of an id, for people: the last 8 characters. */
export function shortId(id) {
  return String(id || '').slice(-8);
}

export function pageHeader(title, ...actions) {
  return h('div', { class: 'page-head' },
    h('h1', { tabindex: '-1' }, title),
    actions.length ? h('div', { class: 'page-actions' }, actions) : null);
}

/** The value of a form's control by name. */
export function val(form, name) {
  const el = form.elements.namedItem(name);
  return el ? el.value : '';
}

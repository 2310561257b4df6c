// Live updates: one Server-Sent Events stream per signed-in tab, read with fetch and a stream
// reader so the token travels in a header, never in a URL. Where the stream is missing or keeps
// failing (several instances behind a load balancer, an old server), pages are refreshed by
// polling instead.

import { session } from './api.js';

const POLL_MS = 5000;
const RETRY_STREAM_MS = 60000;
const MAX_FAILURES = 3;

const subscribers = new Set();
let controller = null;
let mode = 'off'; // 'connecting' | 'stream' | 'poll' | 'off'
let pollTimer = null;
let retryTimer = null;
let lastEventId = null;
let failures = 0;
let generation = 0;
const modeListeners = new Set();

/**
 * A page subscribes with `event(ev)` for pushed changes and `refresh()` to re-fetch what it
 * shows (after a resync, and on every poll). Returns the unsubscribe function.
 */
export function subscribe(handlers) {
  subscribers.add(handlers);
  return () => subscribers.delete(handlers);
}

export function onModeChange(fn) {
  modeListeners.add(fn);
  fn(mode);
}

export function currentMode() {
  return mode;
}

function setMode(next) {
  mode = next;
  for (const fn of modeListeners) fn(mode);
}

// Where several instances serve (Vercel), a stream sees only its own instance's changes: the
// server says so in the page, and the page polls.
function serverPolls() {
  const meta = document.querySelector('meta[name="ticketing-live"]');
  return Boolean(meta && meta.getAttribute('content') === 'poll');
}

export function start() {
  stop();
  if (!session.token) return;
  generation += 1;
  failures = 0;
  if (serverPolls()) {
    setMode('poll');
    pollTimer = setInterval(refreshAll, POLL_MS);
    return;
  }
  connect(generation);
}

export function stop() {
  generation += 1;
  if (controller) controller.abort();
  controller = null;
  clearInterval(pollTimer);
  clearTimeout(retryTimer);
  pollTimer = null;
  retryTimer = null;
  lastEventId = null;
  setMode('off');
}

function refreshAll() {
  for (const s of subscribers) {
    if (s.refresh) {
      try {
        s.refresh();
      } catch (e) {
        reportError(e);
      }
    }
  }
}

function dispatch(event) {
  for (const s of subscribers) {
    if (s.event) {
      try {
        s.event(event);
      } catch (e) {
        reportError(e);
      }
    }
  }
}

function reportError(e) {
  // A page's handler failing must not stop the stream for the others.
  setTimeout(() => { throw e; });
}

function startPolling() {
  if (!pollTimer) {
    setMode('poll');
    pollTimer = setInterval(refreshAll, POLL_MS);
  }
  // Try the stream again now and then: the server may have come back or been upgraded.
  clearTimeout(retryTimer);
  retryTimer = setTimeout(() => {
    if (mode === 'poll') connect(generation, true);
  }, RETRY_STREAM_MS);
}

function stopPolling() {
  clearInterval(pollTimer);
  pollTimer = null;
  clearTimeout(retryTimer);
}

async function connect(gen, probing = false) {
  if (gen !== generation || !session.token) return;
  if (!probing) setMode('connecting');
  controller = new AbortController();
  const headers = { Accept: 'text/event-stream', Authorization: `Bearer ${session.token}` };
  if (lastEventId) headers['Last-Event-ID'] = lastEventId;
  let response;
  try {
    response = await fetch('/api/stream', { headers, signal: controller.signal, cache: 'no-store' });
  } catch (e) {
    if (gen !== generation) return;
    return retry(gen);
  }
  if (gen !== generation) return;
  if (response.status === 401) {
    // The next API call reports the ended session; nothing to stream meanwhile.
    setMode('off');
    return;
  }
  const type = response.headers.get('content-type') || '';
  if (!response.ok || !type.startsWith('text/event-stream') || !response.body) {
    // 404/405/501: this server has no stream. Poll, and look again later.
    failures = MAX_FAILURES;
    return retry(gen);
  }
  stopPolling();
  failures = 0;
  setMode('stream');
  // Whatever changed before the stream was up (or while it was down) is fetched once.
  refreshAll();
  try {
    await read(response.body, gen);
  } catch {
    // A dropped connection: reconnect below.
  }
  if (gen !== generation) return;
  retry(gen);
}

function retry(gen) {
  failures += 1;
  if (failures >= MAX_FAILURES) {
    startPolling();
    return;
  }
  const delay = 500 * 2 ** failures;
  retryTimer = setTimeout(() => connect(gen), delay);
}

async function read(body, gen) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let event = { type: 'message', data: [], id: null };
  for (;;) {
    const { value, done } = await reader.read();
    if (done || gen !== generation) return;
    buffer += value;
    let newline;
    while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, newline);
      const sep = buffer[newline] === '\r' && buffer[newline + 1] === '\n' ? 2 : 1;
      buffer = buffer.slice(newline + sep);
      if (line === '') {
        deliver(event);
        event = { type: 'message', data: [], id: null };
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const name = colon < 0 ? line : line.slice(0, colon);
      let val = colon < 0 ? '' : line.slice(colon + 1);
      if (val.startsWith(' ')) val = val.slice(1);
      if (name === 'event') event.type = val;
      else if (name === 'data') event.data.push(val);
      else if (name === 'id') event.id = val;
    }
  }
}

function deliver(event) {
  if (event.id) lastEventId = event.id;
  if (event.type === 'resync') {
    refreshAll();
    return;
  }
  if (event.type !== 'ticket' || !event.data.length) return;
  let data;
  try {
    data = JSON.parse(event.data.join('\n'));
  } catch {
    return;
  }
  if (data && typeof data.ticket_id === 'string') dispatch(data);
}

// The app's entry: who is signed in, the navigation, and which page a path shows.

import { api, post, session, ApiError } from './api.js';
import { h, clear, replace, link, announce, say, busy, loading, errorBox, tickTimes, pageHeader, ROLE } from './dom.js';
import * as live from './live.js';
import * as auth from './pages/auth.js';

// Pages other than the account ones load when first opened, so the first page a visitor sees
// fetches only what it needs.
const lazy = (load, name) => Object.assign((ctx) => load().then((m) => m[name](ctx)), { load });
const list = () => import('./pages/list.js');
const ticket = () => import('./pages/ticket.js');
const people = () => import('./pages/people.js');
const dashboard = () => import('./pages/dashboard.js');
const runs = () => import('./pages/runs.js');

// path pattern, page, who may see it ('anon' = signed-out only, null = anyone signed in).
const ROUTES = [
  [/^\/signin$/, auth.signIn, 'anon'],
  [/^\/signup$/, auth.signUp, 'anon'],
  [/^\/forgot$/, auth.forgot, 'anon'],
  [/^\/reset$/, auth.reset, 'any'],
  [/^\/verify$/, auth.verify, 'any'],
  [/^\/account$/, auth.account, null],
  [/^\/$/, lazy(list, 'myTickets'), null],
  [/^\/tickets\/new$/, lazy(ticket, 'newTicket'), null],
  [/^\/tickets\/([0-9a-fA-F-]{1,64})$/, lazy(ticket, 'ticketPage'), null],
  [/^\/queue$/, lazy(list, 'queue'), ['moderator', 'admin']],
  [/^\/admin\/tickets$/, lazy(list, 'allTickets'), ['admin']],
  [/^\/admin\/unassigned$/, lazy(list, 'unassigned'), ['admin']],
  [/^\/admin\/people$/, lazy(people, 'people'), ['admin']],
  [/^\/admin\/dashboard$/, lazy(dashboard, 'dashboard'), ['admin']],
  [/^\/admin\/runs$/, lazy(runs, 'runList'), ['admin']],
  [/^\/admin\/runs\/([0-9a-zA-Z-]{1,64})$/, lazy(runs, 'runPage'), ['admin']],
];

const main = document.getElementById('main');
let cleanup = null;
let renderSeq = 0;

export function navigate(path, { replace: replaceState = false } = {}) {
  if (replaceState) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  render();
}

async function render() {
  renderSeq += 1;
  const seq = renderSeq;
  if (cleanup) {
    try {
      cleanup();
    } catch {
      // A page that failed to clean up must not block the next one.
    }
    cleanup = null;
  }
  const url = new URL(location.href);
  const path = url.pathname.replace(/\/+$/, '') || '/';
  renderNav();
  let match = null;
  let route = null;
  for (const r of ROUTES) {
    match = path.match(r[0]);
    if (match) {
      route = r;
      break;
    }
  }
  if (!route) {
    replace(main, pageHeader('Page not found'),
      h('p', null, 'There is nothing at this address. ', link('/', 'Go to your tickets'), '.'));
    finish(seq, 'Page not found');
    return;
  }
  const [, page, access] = route;
  const user = session.user;
  if (access === 'anon' && user) {
    navigate(home(user), { replace: true });
    return;
  }
  if (access !== 'anon' && access !== 'any' && !user) {
    const next = url.pathname + url.search;
    navigate(`/signin?next=${encodeURIComponent(next)}`, { replace: true });
    return;
  }
  if (Array.isArray(access) && !access.includes(user.role)) {
    replace(main, pageHeader('Not allowed'),
      errorBox(`This page is for ${access.map((r) => ROLE[r].toLowerCase() + 's').join(' and ')}.`),
      h('p', null, link('/', 'Go to your tickets')));
    finish(seq, 'Not allowed');
    return;
  }
  replace(main, loading());
  const ctx = {
    main,
    params: match.slice(1),
    query: url.searchParams,
    user,
    navigate,
    signedIn,
    home,
    isCurrent: () => seq === renderSeq,
    setCleanup: (fn) => {
      if (seq === renderSeq) cleanup = fn;
      else fn();
    },
  };
  try {
    await page(ctx);
  } catch (e) {
    if (seq !== renderSeq) return;
    if (e instanceof ApiError && e.status === 401) return;
    replace(main, pageHeader('Something went wrong'), errorBox(e && e.message ? e.message : String(e)));
  }
  if (seq === renderSeq) finish(seq);
}

function finish(seq) {
  if (seq !== renderSeq) return;
  const heading = main.querySelector('h1');
  document.title = heading ? `${heading.textContent} · Help desk` : 'Help desk';
  tickTimes();
  // Move focus to the new page for keyboard and screen-reader users, but not on first load.
  if (document.body.dataset.navigated && heading) heading.focus({ preventScroll: false });
  // The first page is drawn and its controls work: the benchmark's time to interactive.
  if (!document.body.dataset.navigated) performance.mark('interactive');
  document.body.dataset.navigated = '1';
}

export function home(user) {
  if (!user) return '/signin';
  if (user.role === 'admin') return '/admin/tickets';
  if (user.role === 'moderator') return '/queue';
  return '/';
}

// With e-mail verification on, an unconfirmed account may sign in but not open tickets.
function renderBanner() {
  const banner = document.getElementById('account-banner');
  const user = session.user;
  if (!banner) return;
  if (!user || user.email_verified !== false || location.pathname === '/verify') {
    clear(banner);
    return;
  }
  const resend = h('button', { type: 'button', class: 'link-like', id: 'resend-verification' }, 'Send the link again');
  resend.addEventListener('click', async () => {
    try {
      await busy(resend, 'Sending…', () => post('/api/auth/verify/resend', { email: user.email }));
      say('A new confirmation link is on its way.');
      resend.replaceWith(h('span', null, 'A new link is on its way.'));
    } catch (e) {
      announce(e.message);
    }
  });
  replace(banner, h('p', { class: 'notice banner', role: 'status' },
    'Please confirm your e-mail address: open the link we sent to ', h('strong', null, user.email),
    '. Until then you cannot open tickets. ', resend));
}

function renderNav() {
  renderBanner();
  const nav = document.getElementById('nav');
  const user = session.user;
  const path = location.pathname;
  const item = (href, text) => h('li', null, h('a', {
    href, dataset: { nav: '' }, 'aria-current': path === href ? 'page' : null,
  }, text));
  if (!user) {
    replace(nav, h('ul', null, item('/signin', 'Sign in'), item('/signup', 'Sign up')));
    return;
  }
  const items = [];
  if (user.role === 'admin') {
    items.push(item('/admin/tickets', 'All tickets'), item('/admin/unassigned', 'Unassigned'),
      item('/queue', 'My queue'), item('/admin/dashboard', 'Dashboard'), item('/admin/people', 'People'),
      item('/admin/runs', 'Runs'));
  } else if (user.role === 'moderator') {
    items.push(item('/queue', 'My queue'));
  }
  items.push(item('/', 'My tickets'), item('/tickets/new', 'New ticket'));
  replace(nav,
    h('ul', null, items),
    h('div', { class: 'who' },
      h('a', { href: '/account', dataset: { nav: '' }, class: 'who-name', 'aria-current': path === '/account' ? 'page' : null },
        h('span', { class: 'sr-only' }, 'Account: '), user.name || user.email),
      h('span', { class: 'role-tag' }, ROLE[user.role] || user.role),
      h('button', { type: 'button', class: 'link-button', id: 'sign-out', onclick: signOut }, 'Sign out')));
}

export function signedIn(result) {
  session.token = result.token;
  session.user = result.user;
  live.start();
}

function signOut() {
  session.forget();
  live.stop();
  announce('You are signed out.');
  navigate('/signin');
}

function onLinkClick(e) {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest('a[data-nav]');
  if (!a || a.target) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin) return;
  e.preventDefault();
  if (url.pathname + url.search !== location.pathname + location.search) navigate(url.pathname + url.search);
}

async function boot() {
  document.addEventListener('click', onLinkClick);
  window.addEventListener('popstate', render);
  // Signing out in another tab signs out here too.
  window.addEventListener('storage', (e) => {
    if (e.key === 'ticketing.token' && !e.newValue && session.user) {
      session.user = null;
      live.stop();
      navigate('/signin', { replace: true });
    }
  });
  live.onModeChange((mode) => {
    const el = document.getElementById('live-state');
    if (!el) return;
    const text = { stream: 'Live', poll: 'Polling', connecting: 'Connecting…', off: '' }[mode];
    el.textContent = text;
    el.dataset.mode = mode;
    el.title = mode === 'stream' ? 'Changes appear as they happen' : mode === 'poll' ? 'The page refreshes itself every 5 seconds' : '';
  });
  setInterval(tickTimes, 30000);
  // Fetch the page's module while asking who is signed in, not after.
  const first = ROUTES.find(([pattern]) => pattern.test(location.pathname.replace(/\/+$/, '') || '/'));
  if (first && first[1].load && session.token) first[1].load().catch(() => {});
  if (session.token) {
    try {
      const me = await api('GET', '/api/auth/me');
      session.user = me.user;
      live.start();
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) {
        // The server is unreachable: show the error on the page rather than signing out.
        replace(main, pageHeader('Cannot reach the server'), errorBox(e.message));
        return;
      }
    }
  }
  // Registered after the first check, which handles its own 401.
  session.onExpired((message) => {
    live.stop();
    const next = location.pathname + location.search;
    const target = location.pathname === '/signin' ? '/signin' : `/signin?next=${encodeURIComponent(next)}`;
    history.replaceState(null, '', target);
    render().then(() => announce(message));
  });
  await render();
}

boot();

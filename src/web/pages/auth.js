// Accounts: sign in, sign up, forgotten password, reset, e-mail verification, and the account
// page (change password, sign out everywhere).

import { api, post, session, ApiError } from '../api.js';
import {
  h, val, replace, field, input, clearErrors, showError, busy, link, pageHeader, say, announce, errorBox, ROLE,
} from '../dom.js';
import * as live from '../live.js';

function form(id, onSubmit, ...children) {
  const f = h('form', { id, novalidate: true, class: 'card form' }, children);
  f.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(f);
    const button = f.querySelector('button[type=submit]');
    try {
      await busy(button, button.dataset.busy || 'Working…', () => onSubmit(f));
    } catch (err) {
      if (err && err.name === 'AbortError') return;
      showError(f, err, f.fieldAliases || {});
    }
  });
  return f;
}

function submit(text, busyText) {
  return h('button', { type: 'submit', class: 'primary', dataset: { busy: busyText } }, text);
}

/** The page to open after signing in: `next` when it is a path of this app. */
function nextPath(ctx, user) {
  const next = ctx.query.get('next');
  if (next && next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/signin')) return next;
  return ctx.home(user);
}

export async function signIn(ctx) {
  const f = form('signin-form', async (f) => {
    const body = { email: val(f, 'email').trim(), password: val(f, 'password') };
    if (!body.email) throw new ApiError(422, 'validation_failed', 'email: enter your e-mail address', { field: 'email', reason: 'enter your e-mail address' });
    const result = await post('/api/auth/login', body);
    ctx.signedIn(result);
    say(`Signed in as ${result.user.name || result.user.email}.`);
    ctx.navigate(nextPath(ctx, result.user), { replace: true });
  },
  field('E-mail', input('email', { type: 'email', id: 'signin-email', autocomplete: 'username', required: true })),
  field('Password', input('password', { type: 'password', id: 'signin-password', autocomplete: 'current-password', required: true })),
  h('div', { class: 'form-actions' }, submit('Sign in', 'Signing in…'), link('/forgot', 'Forgot your password?')));
  replace(ctx.main, pageHeader('Sign in'),
    h('div', { class: 'narrow' }, f,
      h('p', null, 'No account yet? ', link('/signup', 'Sign up'), '.')));
}

export async function signUp(ctx) {
  const f = form('signup-form', async (f) => {
    const body = { email: val(f, 'email').trim(), password: val(f, 'password') };
    const name = val(f, 'name').trim();
    if (name) body.name = name;
    const result = await post('/api/auth/register', body);
    if (result && result.token) {
      ctx.signedIn(result);
      say('Your account is ready.');
      ctx.navigate(nextPath(ctx, result.user), { replace: true });
      return;
    }
    // With verification on, the account waits for the link in the mail.
    replace(ctx.main, pageHeader('Check your inbox'),
      h('div', { class: 'narrow card' },
        h('p', { role: 'status' }, (result && result.message) || 'We sent you a mail with a link to confirm your address.'),
        h('p', null, 'After confirming, ', link('/signin', 'sign in'), '.')));
  },
  field('Name', input('name', { id: 'signup-name', autocomplete: 'name', maxlength: 100 }), 'How moderators will address you.'),
  field('E-mail', input('email', { type: 'email', id: 'signup-email', autocomplete: 'email', required: true })),
  field('Password', input('password', { type: 'password', id: 'signup-password', autocomplete: 'new-password', required: true, minlength: 8 }), 'At least 8 characters.'),
  h('div', { class: 'form-actions' }, submit('Create account', 'Creating your account…')));
  replace(ctx.main, pageHeader('Create an account'),
    h('div', { class: 'narrow' }, f, h('p', null, 'Have an account? ', link('/signin', 'Sign in'), '.')));
}

export async function forgot(ctx) {
  const f = form('forgot-form', async (f) => {
    await post('/api/auth/password/forgot', { email: val(f, 'email').trim() });
    replace(ctx.main, pageHeader('Check your inbox'),
      h('div', { class: 'narrow card' },
        h('p', { role: 'status' }, 'If an account uses that address, a mail with a link to choose a new password is on its way. The link works once and expires soon.'),
        h('p', null, link('/signin', 'Back to sign in'))));
  },
  field('E-mail', input('email', { type: 'email', id: 'forgot-email', autocomplete: 'email', required: true })),
  h('div', { class: 'form-actions' }, submit('Send the link', 'Sending…')));
  replace(ctx.main, pageHeader('Forgot your password?'),
    h('div', { class: 'narrow' }, h('p', null, 'Enter your e-mail address and we will send you a link to choose a new password.'), f));
}

export async function reset(ctx) {
  const token = ctx.query.get('token') || '';
  if (!token) {
    replace(ctx.main, pageHeader('Choose a new password'),
      h('div', { class: 'narrow' }, errorBox('This link has no token. Open the link from the mail again, or ask for a new one.'),
        h('p', null, link('/forgot', 'Ask for a new link'))));
    return;
  }
  const f = form('reset-form', async (f) => {
    if (val(f, 'password') !== val(f, 'confirm')) {
      throw new ApiError(422, 'validation_failed', 'The two passwords differ.', { field: 'confirm', reason: 'the two passwords differ' });
    }
    await post('/api/auth/password/reset', { token, password: val(f, 'password') });
    session.forget();
    live.stop();
    replace(ctx.main, pageHeader('Password changed'),
      h('div', { class: 'narrow card' },
        h('p', { role: 'status' }, 'Your password is changed. Sessions on other devices were signed out.'),
        h('p', null, link('/signin', 'Sign in with the new password'))));
  },
  field('New password', input('password', { type: 'password', id: 'reset-password', autocomplete: 'new-password', required: true, minlength: 8 }), 'At least 8 characters.'),
  field('Repeat the new password', input('confirm', { type: 'password', id: 'reset-confirm', autocomplete: 'new-password', required: true })),
  h('div', { class: 'form-actions' }, submit('Change password', 'Changing…')));
  f.fieldAliases = { new_password: 'password' };
  replace(ctx.main, pageHeader('Choose a new password'), h('div', { class: 'narrow' }, f));
}

export async function verify(ctx) {
  const token = ctx.query.get('token') || '';
  const body = h('div', { class: 'narrow' });
  replace(ctx.main, pageHeader('Confirm your e-mail address'), body);
  const resend = form('resend-form', async (f) => {
    await post('/api/auth/verify/resend', { email: val(f, 'email').trim() });
    replace(f, h('p', { role: 'status' }, 'If that address has an unconfirmed account, a new link is on its way.'));
  },
  field('E-mail', input('email', { type: 'email', id: 'resend-email', autocomplete: 'email', required: true })),
  h('div', { class: 'form-actions' }, submit('Send a new link', 'Sending…')));
  if (!token) {
    replace(body, errorBox('This link has no token. Ask for a new one below.'), resend);
    return;
  }
  replace(body, h('p', { class: 'loading', role: 'status' }, 'Confirming…'));
  try {
    const result = await post('/api/auth/verify', { token });
    if (session.user && result && result.user && result.user.id === session.user.id) {
      session.user = result.user;
      document.getElementById('account-banner')?.replaceChildren();
    }
    replace(body, h('div', { class: 'card' },
      h('p', { role: 'status' }, 'Your address is confirmed.'),
      h('p', null, session.user ? link('/', 'Go to your tickets') : link('/signin', 'Sign in'))));
  } catch (e) {
    replace(body, errorBox(e.status === 0 ? e.message : 'This link is invalid or has expired.'),
      h('p', null, 'Ask for a new link:'), resend);
  }
}

export async function account(ctx) {
  const user = ctx.user;
  const change = form('password-form', async (f) => {
    const result = await post('/api/auth/password/change', {
      current_password: val(f, 'current_password'),
      new_password: val(f, 'new_password'),
    });
    if (result && result.token) {
      session.token = result.token;
      if (result.user) session.user = result.user;
      live.start();
    }
    f.reset();
    say('Your password is changed. Other sessions were signed out.');
    const done = f.querySelector('.form-done') || h('p', { class: 'form-done', role: 'status' });
    done.textContent = 'Password changed. Other devices were signed out.';
    f.append(done);
  },
  field('Current password', input('current_password', { type: 'password', id: 'current-password', autocomplete: 'current-password', required: true })),
  field('New password', input('new_password', { type: 'password', id: 'new-password', autocomplete: 'new-password', required: true, minlength: 8 }), 'At least 8 characters.'),
  h('div', { class: 'form-actions' }, submit('Change password', 'Changing…')));

  change.fieldAliases = { password: 'new_password', current: 'current_password' };

  const everywhere = h('button', { type: 'button', id: 'sign-out-everywhere' }, 'Sign out everywhere');
  everywhere.addEventListener('click', async () => {
    try {
      await busy(everywhere, 'Signing out…', () => api('POST', '/api/auth/sign-out-everywhere', {}));
      session.forget();
      live.stop();
      announce('You are signed out on every device.');
      ctx.navigate('/signin');
    } catch (e) {
      announce(e.message);
      everywhere.after(errorBox(e.message));
    }
  });

  replace(ctx.main, pageHeader('Your account'),
    h('div', { class: 'narrow' },
      h('dl', { class: 'card facts' },
        h('dt', null, 'Name'), h('dd', null, user.name || '—'),
        h('dt', null, 'E-mail'), h('dd', null, user.email),
        h('dt', null, 'Role'), h('dd', null, ROLE[user.role] || user.role),
        user.skills && user.skills.length ? [h('dt', null, 'Skills'), h('dd', null, user.skills.join(', '))] : null),
      h('h2', null, 'Change your password'), change,
      h('h2', null, 'Other devices'),
      h('div', { class: 'card' },
        h('p', null, 'Signs out every session of this account, this one included.'), everywhere)));
}

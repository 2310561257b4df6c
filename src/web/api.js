// The REST API as the app uses it: one fetch wrapper, the token, and the error shape
// {"error":{"code","message","details"}}.

const TOKEN_KEY = 'ticketing.token';

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }

  /** The field a 422 names, if any. */
  get field() {
    return this.details && typeof this.details.field === 'string' ? this.details.field : null;
  }
}

const listeners = new Set();

export const session = {
  get token() {
    try {
      return localStorage.getItem(TOKEN_KEY);
    } catch {
      return null;
    }
  },
  set token(value) {
    try {
      if (value) localStorage.setItem(TOKEN_KEY, value);
      else localStorage.removeItem(TOKEN_KEY);
    } catch {
      // Storage can be disabled; the app then forgets the token on reload.
    }
  },
  user: null,
  /** Called with the reason when the server no longer accepts the token. */
  onExpired(fn) {
    listeners.add(fn);
  },
  forget() {
    this.token = null;
    this.user = null;
  },
};

/** Calls the API; resolves with the parsed body, rejects with an ApiError. */
export async function api(method, path, body, options = {}) {
  const headers = { Accept: 'application/json' };
  const token = session.token;
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers, signal: options.signal, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'The server cannot be reached. Check your connection and try again.', null);
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const err = data && data.error ? data.error : {};
    const message = err.message || `The server answered ${response.status}.`;
    if (response.status === 401 && token) {
      session.forget();
      for (const fn of listeners) fn('Your session has ended. Please sign in again.');
    }
    throw new ApiError(response.status, err.code || 'http_' + response.status, message, err.details || null);
  }
  return data;
}

export const get = (path, options) => api('GET', path, undefined, options);
export const post = (path, body, options) => api('POST', path, body === undefined ? {} : body, options);
export const patch = (path, body, options) => api('PATCH', path, body, options);
export const del = (path, options) => api('DELETE', path, undefined, options);

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

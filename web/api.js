// The orchestrator's admin API as the dashboard uses it: bearer-token calls,
// problem+json errors, and server-sent events read through fetch (EventSource
// cannot send an Authorization header, and tokens never go into URLs).

const TOKEN_KEY = 'pqescape.token';

/** The token lives in sessionStorage: gone when the browser session ends. */
export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

/** An API failure: the HTTP status and the problem document, if there was one. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `request failed (${status})`);
    this.status = status;
    this.problem = problem;
  }

  /** Field-level messages of a 422, as "field: rule" strings. */
  get fieldErrors() {
    return (this.problem?.errors ?? []).map((e) => `${e.field}: ${e.rule}`);
  }
}

let onUnauthenticated = () => {};

/** Called when the token stops working (revoked, or a restarted store). */
export function whenUnauthenticated(handler) {
  onUnauthenticated = handler;
}

function headers(extra = {}) {
  return { Authorization: `Bearer ${session.token ?? ''}`, ...extra };
}

/** Calls `/api/v1{path}` and returns the decoded JSON (null for 204). */
export async function api(path, { method = 'GET', body, signal } = {}) {
  const init = { method, signal, cache: 'no-store', headers: headers({ Accept: 'application/json' }) };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(`/api/v1${path}`, init);
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (response.status === 401) onUnauthenticated(error);
    throw error;
  }
  return data;
}

/** Builds a query string from the defined, non-empty values of `params`. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const text = q.toString();
  return text ? `?${text}` : '';
}

/**
 * Reads a server-sent event stream at `/api/v1{path}`, calling `onEvent(name, data)`
 * for each event, until the server ends it or `signal` aborts.
 */
export async function streamEvents(path, onEvent, signal) {
  const response = await fetch(`/api/v1${path}`, {
    signal,
    cache: 'no-store',
    headers: headers({ Accept: 'text/event-stream' }),
  });
  if (!response.ok) {
    const error = new ApiError(response.status, await response.json().catch(() => null));
    if (response.status === 401) onUnauthenticated(error);
    throw error;
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = eventParser(onEvent);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    parser(value);
  }
}

/** The text/event-stream format: `field: value` lines, events ended by a blank line. */
function eventParser(onEvent) {
  let buffer = '';
  let name = 'message';
  let data = [];
  const line = (text) => {
    if (text === '') {
      if (data.length) onEvent(name, data.join('\n'));
      name = 'message';
      data = [];
      return;
    }
    if (text.startsWith(':')) return; // a comment: keep-alive
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') name = value;
    else if (field === 'data') data.push(value);
  };
  return (chunk) => {
    buffer += chunk;
    let end;
    while ((end = buffer.search(/\r\n|\n|\r/)) >= 0) {
      const newline = buffer.startsWith('\r\n', end) ? 2 : 1;
      line(buffer.slice(0, end));
      buffer = buffer.slice(end + newline);
    }
  };
}

// Small DOM helpers. Every piece of data goes in as text (textContent or an
// attribute), never as HTML, so nothing from the API can inject markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'value' && 'value' in el) {
      el.value = value;
    } else if (key === 'checked' || key === 'disabled' || key === 'selected') {
      el[key] = Boolean(value);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

/** `h('a', { href: '#/x' }, 'text', child)`: an HTML element. */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** The same for SVG elements. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Appends strings, numbers, nodes and (nested) arrays of them; skips null and false. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Replaces the element's content. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

const numberFormat = new Intl.NumberFormat('en');
export const num = (n) => numberFormat.format(n ?? 0);

/** Unix seconds as a local date and time, to the second. */
export function dateTime(secs) {
  if (secs === null || secs === undefined) return '—';
  const d = new Date(secs * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** "3 min ago", "in 2 h": a duration relative to now, for Unix seconds. */
export function relative(secs) {
  if (secs === null || secs === undefined) return 'never';
  const delta = Math.round(secs - Date.now() / 1000);
  const abs = Math.abs(delta);
  const [value, unit] =
    abs < 60 ? [abs, 's'] : abs < 3600 ? [Math.round(abs / 60), 'min'] :
    abs < 86400 ? [Math.round(abs / 3600), 'h'] : [Math.round(abs / 86400), 'd'];
  if (abs < 5) return 'just now';
  return delta < 0 ? `${value} ${unit} ago` : `in ${value} ${unit}`;
}

/** A <time> element showing a relative time, with the exact time on hover. */
export function timeAgo(secs) {
  if (secs === null || secs === undefined) return h('span', { class: 'muted' }, 'never');
  return h('time', { datetime: new Date(secs * 1000).toISOString(), title: dateTime(secs) },
    relative(secs));
}

/** A status badge; `kind` picks its colour (see style.css). */
export function badge(text, kind = text) {
  return h('span', { class: `badge badge-${kind}` }, text.replaceAll('_', ' '));
}

/** An alert box: `role="alert"` for errors so screen readers announce them. */
export function alertBox(message, kind = 'error', details = []) {
  return h('div', { class: `alert alert-${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('p', {}, message),
    details.length ? h('ul', {}, details.map((d) => h('li', {}, d))) : null);
}

/** Explains an error from `api()` in one alert box. */
export function errorBox(error, what) {
  const details = error.fieldErrors ?? [];
  return alertBox(`${what}: ${error.message}`, 'error', details);
}

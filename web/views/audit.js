// The audit log, newest first, with the result of walking its hash chain.

import { api, query } from '../api.js';
import { h, replace, dateTime, num, errorBox } from '../dom.js';

const PAGE = 50;

function verification(report) {
  if (report.valid) {
    return h('div', { class: 'alert alert-success', role: 'status', id: 'chain-status' },
      h('strong', {}, 'Chain verified. '),
      `All ${num(report.entries)} entries link by SHA-256 to the one before; none was altered, removed or reordered.`);
  }
  return h('div', { class: 'alert alert-error', role: 'alert', id: 'chain-status' },
    h('strong', {}, 'Chain broken. '),
    `Entry ${report.first_invalid_seq} does not match the hash chain: the log was altered at or before it. ${num(report.entries)} entries checked.`);
}

function detail(text) {
  let pretty = text;
  try { pretty = JSON.stringify(JSON.parse(text), null, 1); } catch { /* shown as stored */ }
  const short = text.length > 80 ? `${text.slice(0, 80)}…` : text;
  if (text === '{}') return h('span', { class: 'muted' }, '—');
  return h('details', {}, h('summary', { class: 'mono' }, short), h('pre', {}, pretty));
}

/** "name (token id)" as the name, with the id shortened beside it. */
function actor(text) {
  const match = text.match(/^(.*) \(([0-9a-f-]{36})\)$/);
  if (!match) return text;
  return h('span', {}, match[1], ' ', h('span', { class: 'muted mono', title: `token ${match[2]}` }, match[2].slice(0, 8)));
}

function row(e) {
  const target = /^[0-9a-f-]{36}$/.test(e.target) && e.action.startsWith('campaign.')
    ? h('a', { href: `#/campaigns/${e.target}`, class: 'mono' }, e.target.slice(0, 8))
    : h('span', { class: 'mono', title: e.target }, e.target.length > 12 ? `${e.target.slice(0, 8)}…` : e.target);
  return h('tr', {},
    h('td', { class: 'num mono' }, e.seq),
    h('td', { class: 'nowrap' }, dateTime(e.at)),
    h('td', {}, actor(e.actor)),
    h('td', {}, h('code', { class: 'action' }, e.action)),
    h('td', {}, target),
    h('td', { class: 'detail' }, detail(e.detail)),
    h('td', { class: 'mono', title: e.hash }, e.hash.slice(0, 10)));
}

export async function auditView(root, { signal }) {
  const status = h('div', {}, h('p', { class: 'muted' }, 'Verifying the chain…'));
  const body = h('tbody');
  const pageInfo = h('p', { class: 'table-status' });
  const newer = h('button', { type: 'button', class: 'button-quiet' }, '← Newer');
  const older = h('button', { type: 'button', class: 'button-quiet' }, 'Older →');
  const refresh = h('button', { type: 'button', class: 'button-quiet', id: 'audit-refresh' }, 'Refresh');
  let total = 0;
  let offset = 0; // entries skipped from the newest

  async function load() {
    const report = await api('/audit/verify', { signal });
    total = report.entries;
    const after = Math.max(0, total - offset - PAGE);
    const count = Math.min(PAGE, total - offset);
    const page = count > 0 ? await api(`/audit${query({ after, limit: count })}`, { signal }) : { items: [] };
    // The verdict and the entries appear together, so they always describe the same log.
    replace(status, verification(report));
    replace(body, page.items.length ? page.items.reverse().map(row)
      : h('tr', {}, h('td', { colspan: 7, class: 'empty' }, 'The log is empty.')));
    newer.disabled = offset === 0;
    older.disabled = after === 0;
    pageInfo.textContent = total ? `Entries ${num(total - offset)} to ${num(after + 1)} of ${num(total)}` : '';
  }
  const run = () => load().catch((e) => { if (e.name !== 'AbortError') replace(status, errorBox(e, 'Could not read the audit log')); });
  newer.addEventListener('click', () => { offset = Math.max(0, offset - PAGE); run(); });
  older.addEventListener('click', () => { offset += PAGE; run(); });
  refresh.addEventListener('click', run);

  replace(root,
    h('div', { class: 'view-header' },
      h('div', {}, h('h1', {}, 'Audit log'),
        h('p', { class: 'muted' }, 'Every administrative action and every state change the engine made, append-only and hash-chained.')),
      refresh),
    status,
    h('section', { class: 'panel' },
      h('div', { class: 'table-wrap' }, h('table', { class: 'table compact', id: 'audit' },
        h('thead', {}, h('tr', {}, ['#', 'Time', 'Actor', 'Action', 'Target', 'Detail', 'Hash'].map((x, i) =>
          h('th', { scope: 'col', class: i === 0 ? 'num' : '' }, x)))),
        body)),
      h('div', { class: 'pager' }, pageInfo, h('div', {}, newer, older))));
  await load();
}

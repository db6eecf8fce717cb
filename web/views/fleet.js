// Fleet overview: post-quantum readiness at a glance, consumers by state and
// suite, and the consumer list with search, label filters and pages.

import { api, query } from '../api.js';
import { h, replace, num, timeAgo, badge, errorBox } from '../dom.js';
import { stackedBar, legend, percent } from '../chart.js';
import { isPostQuantum, suiteLabel } from '../suites.js';

/** An agent heartbeats every 20 s; a consumer seen within this is shown online. */
const ONLINE_SECS = 90;

function tally(counts) {
  const t = { total: 0, enrolled: 0, pending: 0, revoked: 0, pq: 0, suites: new Map() };
  for (const { state, suite, count } of counts) {
    t.total += count;
    if (state === 'pending_enrollment') t.pending += count;
    if (state === 'revoked') t.revoked += count;
    if (state !== 'enrolled') continue;
    t.enrolled += count;
    if (isPostQuantum(suite)) t.pq += count;
    t.suites.set(suite, (t.suites.get(suite) ?? 0) + count);
  }
  return t;
}

function kpi(label, value, note, kind = '') {
  return h('div', { class: `kpi ${kind}` },
    h('span', { class: 'kpi-label' }, label),
    h('span', { class: 'kpi-value' }, value),
    note ? h('span', { class: 'kpi-note' }, note) : null);
}

function summaryPanel(counts) {
  const t = tally(counts);
  const classical = t.enrolled - t.pq;
  const segments = [...t.suites.entries()]
    .sort(([a], [b]) => (isPostQuantum(a) ? 1 : 0) - (isPostQuantum(b) ? 1 : 0) || a.localeCompare(b))
    .map(([suite, value]) => ({ key: isPostQuantum(suite) ? `suite-${suite}` : 'suite-classical',
      label: suiteLabel(suite), value }));
  const states = ['enrolled', 'pending_enrollment', 'revoked'];
  const suites = [...new Set(counts.map((c) => c.suite))].sort();
  const cell = (state, suite) =>
    counts.find((c) => c.state === state && c.suite === suite)?.count ?? 0;
  return h('section', { class: 'panel', 'aria-labelledby': 'readiness-title' },
    h('div', { class: 'kpis' },
      kpi('Post-quantum ready', percent(t.pq, t.enrolled),
        `${num(t.pq)} of ${num(t.enrolled)} enrolled consumers`, t.enrolled && t.pq === t.enrolled ? 'kpi-good' : ''),
      kpi('Still classical', num(classical), 'exposed to harvest-now, decrypt-later', classical ? 'kpi-warn' : ''),
      kpi('Consumers', num(t.total), `${num(t.enrolled)} enrolled`),
      kpi('Awaiting enrollment', num(t.pending), 'registered, agent not enrolled yet'),
      kpi('Revoked', num(t.revoked), 'never served again')),
    h('h2', { id: 'readiness-title', class: 'subtle-heading' }, 'Enrolled consumers by suite'),
    stackedBar(segments, { label: 'Enrolled consumers by suite', height: 18 }),
    legend(segments),
    h('details', { class: 'matrix' },
      h('summary', {}, 'Consumers by state and suite'),
      h('table', { class: 'table compact' },
        h('caption', { class: 'visually-hidden' }, 'Consumers by state and suite'),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'State'),
          suites.map((x) => h('th', { scope: 'col', class: 'num' }, suiteLabel(x))))),
        h('tbody', {}, states.map((state) => h('tr', {},
          h('th', { scope: 'row' }, state.replaceAll('_', ' ')),
          suites.map((x) => h('td', { class: 'num' }, num(cell(state, x))))))))));
}

function labelChips(labels, onPick) {
  return h('ul', { class: 'chips' }, Object.entries(labels).map(([k, v]) =>
    h('li', {}, h('button', {
      type: 'button', class: 'chip', title: `Filter by ${k}=${v}`, onclick: () => onPick(`${k}=${v}`),
    }, `${k}=${v}`))));
}

function consumerRow(c, onPick) {
  const now = Date.now() / 1000;
  const online = c.state === 'enrolled' && c.last_seen && now - c.last_seen < ONLINE_SECS;
  return h('tr', {},
    h('th', { scope: 'row' }, h('span', { class: 'name' }, c.name),
      h('span', { class: 'id mono', title: c.id }, c.id.slice(0, 8))),
    h('td', {}, labelChips(c.labels, onPick)),
    h('td', {}, badge(c.state)),
    h('td', {}, h('span', { class: `suite ${isPostQuantum(c.suite) ? 'suite-pq' : 'suite-classical'}` },
      isPostQuantum(c.suite) ? '● ' : '○ ', suiteLabel(c.suite))),
    h('td', { class: 'num mono' }, c.key_id),
    h('td', { class: 'mono' }, c.agent_version ?? '—'),
    h('td', {}, h('span', { class: `presence ${online ? 'online' : 'offline'}` },
      h('span', { class: 'visually-hidden' }, online ? 'online, ' : 'offline, ')), timeAgo(c.last_seen)));
}

export async function fleetView(root, { signal }) {
  const summary = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const filters = { name: '', selector: '', state: '', limit: 25 };
  let cursors = [null]; // cursor of each page visited; the last one is shown
  const status = h('p', { class: 'table-status', 'aria-live': 'polite' });
  const body = h('tbody');
  const error = h('div');
  const prev = h('button', { type: 'button', class: 'button-quiet' }, '← Previous');
  const next = h('button', { type: 'button', class: 'button-quiet' }, 'Next →');

  const nameInput = h('input', { id: 'f-name', type: 'search', placeholder: 'e.g. vpn-gw', 'data-search': true, autocomplete: 'off' });
  const selectorInput = h('input', { id: 'f-selector', type: 'text', placeholder: 'env=prod,role=vpn', autocomplete: 'off', spellcheck: 'false' });
  const stateSelect = h('select', { id: 'f-state' },
    h('option', { value: '' }, 'Any state'),
    ['enrolled', 'pending_enrollment', 'revoked'].map((x) => h('option', { value: x }, x.replaceAll('_', ' '))));
  const limitSelect = h('select', { id: 'f-limit' }, [25, 50, 100].map((n) => h('option', { value: n }, n)));

  async function load() {
    replace(error);
    const page = cursors.length;
    try {
      const result = await api(`/consumers${query({ ...filters, after: cursors.at(-1) })}`, { signal });
      const pick = (term) => {
        const terms = new Set(selectorInput.value.split(',').map((x) => x.trim()).filter(Boolean));
        terms.add(term);
        selectorInput.value = [...terms].join(',');
        apply();
      };
      replace(body, result.items.length
        ? result.items.map((c) => consumerRow(c, pick))
        : h('tr', {}, h('td', { colspan: 7, class: 'empty' }, 'No consumer matches these filters.')));
      next.disabled = !result.next;
      next.onclick = () => { cursors.push(result.next); load(); };
      prev.disabled = page === 1;
      status.textContent = `Page ${page} · ${result.items.length} consumer${result.items.length === 1 ? '' : 's'} shown${result.next ? ', more on the next page' : ''}`;
    } catch (e) {
      if (e.name !== 'AbortError') replace(error, errorBox(e, 'Could not list consumers'));
    }
  }

  function apply() {
    Object.assign(filters, { name: nameInput.value.trim(), selector: selectorInput.value.trim(),
      state: stateSelect.value, limit: limitSelect.value });
    cursors = [null];
    load();
  }
  prev.addEventListener('click', () => { cursors.pop(); load(); });

  let typing;
  for (const input of [nameInput, selectorInput]) {
    input.addEventListener('input', () => { clearTimeout(typing); typing = setTimeout(apply, 300); });
  }
  stateSelect.addEventListener('change', apply);
  limitSelect.addEventListener('change', apply);

  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter consumers', onsubmit: (e) => { e.preventDefault(); apply(); } },
    h('div', { class: 'field' }, h('label', { for: 'f-name' }, 'Name contains'), nameInput),
    h('div', { class: 'field grow' }, h('label', { for: 'f-selector' }, 'Labels (key=value, all must match)'), selectorInput),
    h('div', { class: 'field' }, h('label', { for: 'f-state' }, 'State'), stateSelect),
    h('div', { class: 'field' }, h('label', { for: 'f-limit' }, 'Per page'), limitSelect),
    h('button', { type: 'reset', class: 'button-quiet', onclick: () => setTimeout(apply) }, 'Clear'));

  replace(root,
    h('div', { class: 'view-header' }, h('h1', {}, 'Fleet overview'),
      h('p', { class: 'muted' }, 'Every consumer the orchestrator serves, and how far the fleet is on post-quantum key exchange.')),
    summary,
    h('section', { class: 'panel', 'aria-labelledby': 'consumers-title' },
      h('h2', { id: 'consumers-title' }, 'Consumers'),
      form, error,
      h('div', { class: 'table-wrap' },
        h('table', { class: 'table', id: 'consumers' },
          h('thead', {}, h('tr', {},
            ['Name', 'Labels', 'State', 'Suite', 'Key id', 'Agent', 'Last seen'].map((x, i) =>
              h('th', { scope: 'col', class: i === 4 ? 'num' : '' }, x)))),
          body)),
      h('div', { class: 'pager' }, status, h('div', {}, prev, next))));

  const [counts] = await Promise.all([api('/fleet/summary', { signal }), load()]);
  replace(summary, summaryPanel(counts.counts));
}

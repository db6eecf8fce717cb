// One campaign: its plan, the actions its state and the caller's role allow,
// and, once fired, live progress from server-sent events: counts, a progress
// bar, the timeline of ended deliveries, failures with reasons, every delivery.

import { api, query, streamEvents } from '../api.js';
import { h, replace, num, badge, timeAgo, dateTime, errorBox, alertBox } from '../dom.js';
import { stackedBar, timelineChart, percent } from '../chart.js';
import { DELIVERY_STATES, END_STATES, OPEN_STATES, explainReason, suiteLabel } from '../suites.js';
import { targetsPanel } from './targets.js';
import { confirmDialog } from './dialog.js';

const FINAL = ['completed', 'cancelled'];
const STATE_LABELS = {
  pending: 'Pending', sent: 'Sent', acknowledged: 'Acknowledged', negotiating: 'Negotiating',
  migrated: 'Migrated', drill_passed: 'Drill passed', failed: 'Failed', expired: 'Expired',
};

function meta(c) {
  const item = (term, ...value) => h('div', {}, h('dt', {}, term), h('dd', {}, ...value));
  return h('dl', { class: 'meta' },
    item('Target suite', suiteLabel(c.target_suite)),
    item('Selector', c.selector ? h('code', {}, c.selector) : 'every consumer'),
    item('Waves', c.waves.map((w) => `${w}%`).join(' → ')),
    item('In-flight cap', num(c.max_in_flight)),
    item('Failure threshold', `${c.failure_threshold_percent}%`),
    item('Deadline', h('span', { title: dateTime(c.deadline) }, dateTime(c.deadline)), ' (', timeAgo(c.deadline), ')'),
    item('Created', timeAgo(c.created_at), ` by ${c.created_by}`),
    item('Manifest', c.manifest_digest
      ? h('code', { title: `SHA-256 ${c.manifest_digest}` }, `${c.manifest_digest.slice(0, 16)}…`)
      : h('span', { class: 'muted' }, 'signed when armed')));
}

/** Buttons for what this state allows; none for viewers. */
function actions(c, can, act) {
  if (!can('operator')) {
    return h('p', { class: 'muted role-note', id: 'read-only-note' }, 'Read-only: your role is viewer.');
  }
  const button = (label, kind, handler, id) =>
    h('button', { type: 'button', class: kind, id, onclick: handler }, label);
  const list = {
    draft: [button('Arm plan', 'button-primary', () => act('arm'), 'arm-button')],
    armed: [button('Fire…', 'button-danger', () => act('fire'), 'fire-button')],
    running: [button('Pause', '', () => act('pause'), 'pause-button')],
    paused: [button('Resume', 'button-primary', () => act('resume'), 'resume-button')],
  }[c.state] ?? [];
  if (!FINAL.includes(c.state)) {
    list.push(button(c.state === 'draft' || c.state === 'armed' ? 'Discard plan' : 'Cancel campaign',
      'button-quiet button-danger-quiet', () => act('cancel'), 'cancel-button'));
  }
  return h('div', { class: 'actions' }, list);
}

function countsGrid(progress) {
  return h('ul', { class: 'counts', id: 'counts' }, DELIVERY_STATES.map((state) =>
    h('li', { class: `count count-${state}`, dataset: { state } },
      h('span', { class: 'count-value' }, num(progress.deliveries[state])),
      h('span', { class: 'count-label' }, STATE_LABELS[state]))));
}

function progressSummary(progress) {
  const ended = END_STATES.reduce((n, s) => n + progress.deliveries[s], 0);
  const head = `${num(ended)} of ${num(progress.total)} deliveries ended (${percent(ended, progress.total)})`;
  const parts = END_STATES.filter((s) => progress.deliveries[s])
    .map((s) => `${num(progress.deliveries[s])} ${STATE_LABELS[s].toLowerCase()}`);
  const waiting = progress.deliveries.pending;
  const tail = parts.length ? `: ${parts.join(', ')}` : '';
  return `${head}${tail}.${waiting ? ` ${num(waiting)} pending: waiting for their wave or for their agent to connect.` : ''}`;
}

function progressBar(progress) {
  const segments = [
    ...END_STATES.map((key) => ({ key, label: STATE_LABELS[key], value: progress.deliveries[key] })),
    { key: 'open', label: 'In progress', value: OPEN_STATES.reduce((n, s) => n + progress.deliveries[s], 0) },
  ];
  return stackedBar(segments, { label: 'Campaign progress', height: 16 });
}

function failuresTable(rows) {
  if (!rows.length) return h('p', { class: 'muted', id: 'no-failures' }, 'No failed or expired delivery.');
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table compact', id: 'failures' },
    h('thead', {}, h('tr', {}, ['Consumer', 'State', 'Code', 'Reason', 'When'].map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, rows.map((d) => {
      const why = explainReason(d.reason, d.state);
      return h('tr', {},
        h('th', { scope: 'row' }, d.consumer_name),
        h('td', {}, badge(d.state)),
        h('td', { class: 'mono' }, why.code || '—'),
        h('td', {}, h('strong', { class: 'reason-name' }, why.name.replaceAll('_', ' ')), h('span', { class: 'reason-text' }, ` — ${why.text}`)),
        h('td', {}, timeAgo(d.updated_at)));
    }))));
}

/** Every delivery, filterable by state, a page at a time. */
function deliveriesSection(id, signal) {
  const select = h('select', { id: 'd-state' }, h('option', { value: '' }, 'Any state'),
    DELIVERY_STATES.map((s) => h('option', { value: s }, STATE_LABELS[s])));
  const body = h('tbody');
  const status = h('p', { class: 'table-status' });
  const prev = h('button', { type: 'button', class: 'button-quiet' }, '← Previous');
  const next = h('button', { type: 'button', class: 'button-quiet' }, 'Next →');
  let cursors = [null];
  async function load() {
    const page = await api(`/campaigns/${id}/deliveries${query({ state: select.value, after: cursors.at(-1), limit: 50 })}`, { signal });
    replace(body, page.items.length ? page.items.map((d) => h('tr', {},
      h('th', { scope: 'row' }, d.consumer_name),
      h('td', { class: 'num' }, d.wave),
      h('td', { class: 'num mono' }, d.sequence),
      h('td', {}, badge(d.state)),
      h('td', {}, timeAgo(d.updated_at))))
      : h('tr', {}, h('td', { colspan: 5, class: 'empty' }, 'No delivery in this state.')));
    prev.disabled = cursors.length === 1;
    next.disabled = !page.next;
    next.onclick = () => { cursors.push(page.next); load(); };
    status.textContent = `Page ${cursors.length}`;
  }
  prev.addEventListener('click', () => { cursors.pop(); load(); });
  select.addEventListener('change', () => { cursors = [null]; load(); });
  const section = h('section', { class: 'panel', 'aria-labelledby': 'deliveries-title' },
    h('div', { class: 'panel-header' }, h('h2', { id: 'deliveries-title' }, 'Deliveries'),
      h('div', { class: 'field inline' }, h('label', { for: 'd-state' }, 'State'), select)),
    h('div', { class: 'table-wrap' }, h('table', { class: 'table compact', id: 'deliveries' },
      h('thead', {}, h('tr', {}, ['Consumer', 'Wave', 'Sequence', 'State', 'Last change'].map((x, i) =>
        h('th', { scope: 'col', class: i === 1 || i === 2 ? 'num' : '' }, x)))),
      body)),
    h('div', { class: 'pager' }, status, h('div', {}, prev, next)));
  return { section, load };
}

/** The live part of a fired campaign. Returns a function that updates it. */
function liveSections(c, signal) {
  const live = h('span', { class: 'live', id: 'live-status' }, 'Connecting…');
  const summary = h('p', { class: 'progress-summary', id: 'progress-summary', 'aria-live': 'polite' });
  const wave = h('span', { class: 'muted', id: 'wave' });
  const counts = h('div');
  const bar = h('div', { class: 'progress-bar', id: 'progress-bar' });
  const chart = h('div', { id: 'timeline' });
  const failures = h('div', { id: 'failures-area' });
  const deliveries = deliveriesSection(c.id, signal);

  const progressPanel = h('section', { class: 'panel', 'aria-labelledby': 'progress-title' },
    h('div', { class: 'panel-header' }, h('h2', { id: 'progress-title' }, 'Progress'), h('div', {}, wave, live)),
    summary, bar, counts);
  const sections = [
    progressPanel,
    h('div', { class: 'two-columns wide-left' },
      h('section', { class: 'panel', 'aria-labelledby': 'timeline-title' },
        h('h2', { id: 'timeline-title' }, 'Deliveries ended over time'), chart),
      h('section', { class: 'panel', 'aria-labelledby': 'failures-title' },
        h('h2', { id: 'failures-title' }, 'Failures'), failures)),
    deliveries.section,
  ];

  let refreshing = null;
  let again = false;
  /** Reloads what the progress counts do not carry; at most one load at a time. */
  async function refreshDetails(total) {
    if (refreshing) { again = true; return; }
    refreshing = (async () => {
      const [timeline, failed, expired] = await Promise.all([
        api(`/campaigns/${c.id}/timeline`, { signal }),
        api(`/campaigns/${c.id}/deliveries?state=failed&limit=100`, { signal }),
        api(`/campaigns/${c.id}/deliveries?state=expired&limit=100`, { signal }),
        deliveries.load(),
      ]);
      replace(chart, timelineChart(timeline, total));
      replace(failures, failuresTable([...failed.items, ...expired.items]));
    })();
    try { await refreshing; } finally {
      refreshing = null;
      if (again) { again = false; refreshDetails(total); }
    }
  }

  function update(progress) {
    replace(counts, countsGrid(progress));
    replace(bar, progressBar(progress));
    summary.textContent = progressSummary(progress);
    wave.textContent = `Wave ${progress.current_wave + 1} of ${c.waves.length} · `;
    refreshDetails(progress.total).catch((e) => {
      if (e.name !== 'AbortError') replace(failures, errorBox(e, 'Could not load details'));
    });
  }
  const setLive = (text, kind) => { live.textContent = text; live.className = `live live-${kind}`; };
  return { sections, update, setLive };
}

export async function campaignView(root, ctx, id) {
  // Each rendering owns a controller, aborted when the view goes or redraws itself.
  root.renderController?.abort();
  const controller = new AbortController();
  root.renderController = controller;
  ctx.signal.addEventListener('abort', () => controller.abort(), { once: true });
  const { signal } = controller;
  const { can, announce } = ctx;
  const redraw = () => campaignView(root, ctx, id).catch((e) => {
    if (e.name !== 'AbortError') replace(root, errorBox(e, 'Could not reload the campaign'));
  });
  const c = await api(`/campaigns/${id}`, { signal });
  const notice = h('div', { id: 'notice' });

  async function act(step) {
    replace(notice);
    if (step === 'fire' && !(await confirmFire(c, signal))) return;
    if (step === 'cancel') {
      const ok = await confirmDialog({
        title: `Cancel “${c.name}”?`, confirmLabel: c.state === 'running' || c.state === 'paused' ? 'Cancel campaign' : 'Discard plan', danger: true,
        body: h('p', {}, 'Deliveries not yet finished stop where they are. This cannot be undone.'),
      });
      if (!ok) return;
    }
    try {
      const body = step === 'fire' ? { confirm: c.id } : undefined;
      await api(`/campaigns/${c.id}/${step}`, { method: 'POST', body, signal });
      announce(`Campaign ${step === 'arm' ? 'armed' : step === 'fire' ? 'fired' : `${step}d`}`);
      redraw();
    } catch (e) {
      if (e.name !== 'AbortError') replace(notice, errorBox(e, `Could not ${step} the campaign`));
    }
  }

  const header = h('div', { class: 'view-header' },
    h('div', {},
      h('p', { class: 'breadcrumb' }, h('a', { href: '#/campaigns' }, 'Campaigns'), ' / '),
      h('h1', {}, c.name, ' ', badge(c.state), c.drill ? h('span', { class: 'tag tag-drill' }, 'drill') : null)),
    actions(c, can, act));
  const fired = !['draft', 'armed'].includes(c.state) || c.fired_at;

  if (!fired) {
    const preview = await api(`/campaigns/${id}/preview`, { signal });
    const explain = c.state === 'draft'
      ? 'An escape plan, not signed yet. Arming signs its ML-DSA-65 manifest; it can then be fired in one step.'
      : 'Armed: the manifest is signed. Firing sends the escape to the targets below, wave by wave.';
    replace(root, header, notice,
      h('section', { class: 'panel' }, h('p', { class: 'lead' }, explain), meta(c)),
      h('section', { class: 'panel' }, await targetsPanel({ selector: c.selector, suite: c.target_suite, waves: c.waves, preview, signal })));
    return;
  }

  const live = liveSections(c, signal);
  replace(root, header, notice,
    h('section', { class: 'panel' }, meta(c)),
    live.sections);
  live.update(await api(`/campaigns/${id}/progress`, { signal }));
  if (FINAL.includes(c.state)) live.setLive(c.state === 'completed' ? 'Completed' : 'Cancelled', 'final');
  else follow(c, live, signal, redraw);
}

/** Follows the event stream, reconnecting until the campaign is final or the view goes. */
async function follow(c, live, signal, rerender) {
  let state = c.state;
  let delay = 1000;
  while (!signal.aborted) {
    try {
      live.setLive('Live', 'on');
      await streamEvents(`/campaigns/${c.id}/events`, (name, data) => {
        if (name !== 'progress') return;
        const progress = JSON.parse(data);
        live.update(progress);
        delay = 1000;
        if (progress.state !== state && !FINAL.includes(progress.state)) {
          // Paused or resumed (by the engine or another operator): redraw the actions.
          rerender();
        }
        state = progress.state;
      }, signal);
    } catch (e) {
      if (signal.aborted || e.name === 'AbortError') return;
    }
    if (signal.aborted) return;
    if (FINAL.includes(state)) {
      rerender();
      return;
    }
    live.setLive('Reconnecting…', 'off');
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 15000);
  }
}

async function confirmFire(c, signal) {
  const preview = await api(`/campaigns/${c.id}/preview`, { signal });
  const mode = c.drill
    ? h('p', { class: 'alert alert-info' }, h('strong', {}, 'Drill. '), 'Every step runs; nothing is migrated and no key changes.')
    : h('p', { class: 'alert alert-warning' }, h('strong', {}, 'Real migration. '), `Targets switch to ${suiteLabel(c.target_suite)} and ratchet their PSKs.`);
  return confirmDialog({
    title: `Fire “${c.name}”?`,
    confirmLabel: `Fire at ${num(preview.targets)} consumer${preview.targets === 1 ? '' : 's'}`,
    danger: !c.drill,
    typed: c.name,
    body: h('div', {}, mode,
      h('ul', { class: 'fire-summary' },
        h('li', {}, h('strong', {}, num(preview.targets)), ' targets', c.selector ? [' matching ', h('code', {}, c.selector)] : ' in the whole fleet'),
        h('li', {}, 'First wave (canary): ', h('strong', {}, num(preview.first_wave))),
        h('li', {}, 'Target suite: ', suiteLabel(c.target_suite)),
        h('li', {}, 'Deadline: ', dateTime(c.deadline))),
      preview.targets === 0 ? alertBox('No consumer would receive this escape.', 'warning') : null),
  });
}

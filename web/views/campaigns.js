// The campaigns: escape plans (drafts), armed plans ready to fire, running and
// finished campaigns, newest first.

import { api, query } from '../api.js';
import { h, replace, badge, timeAgo, errorBox } from '../dom.js';
import { suiteLabel } from '../suites.js';

const ORDER = { running: 0, paused: 1, armed: 2, draft: 3, completed: 4, cancelled: 5 };

/** Every campaign (pages of 500), sorted: active first, then newest. */
export async function allCampaigns(signal) {
  const items = [];
  let after = null;
  do {
    const page = await api(`/campaigns${query({ limit: 500, after })}`, { signal });
    items.push(...page.items);
    after = page.next;
  } while (after && items.length < 5000);
  return items.sort((a, b) => ORDER[a.state] - ORDER[b.state] || b.created_at - a.created_at);
}

function row(c) {
  const link = h('a', { href: `#/campaigns/${c.id}` }, c.name);
  return h('tr', {},
    h('th', { scope: 'row' }, link, c.drill ? h('span', { class: 'tag tag-drill' }, 'drill') : null),
    h('td', {}, badge(c.state)),
    h('td', { class: 'mono' }, c.selector || h('span', { class: 'muted' }, 'every consumer')),
    h('td', {}, suiteLabel(c.target_suite)),
    h('td', { class: 'mono' }, c.waves.map((w) => `${w}%`).join(' → ')),
    h('td', {}, timeAgo(c.created_at), h('span', { class: 'muted' }, ` by ${c.created_by}`)),
    h('td', {}, c.finished_at ? timeAgo(c.finished_at) : c.fired_at ? h('span', {}, 'fired ', timeAgo(c.fired_at)) : '—'));
}

export async function campaignsView(root, { signal, can }) {
  const body = h('tbody', {}, h('tr', {}, h('td', { colspan: 7, class: 'empty' }, 'Loading…')));
  replace(root,
    h('div', { class: 'view-header' },
      h('div', {}, h('h1', {}, 'Campaigns'),
        h('p', { class: 'muted' }, 'Escape plans are prepared and armed ahead of time, then fired in one step.')),
      can('operator') ? h('a', { class: 'button button-primary', href: '#/campaigns/new', id: 'new-campaign' }, 'New campaign') : null),
    h('section', { class: 'panel' },
      h('div', { class: 'table-wrap' },
        h('table', { class: 'table', id: 'campaigns' },
          h('thead', {}, h('tr', {},
            ['Name', 'State', 'Selector', 'Target suite', 'Waves', 'Created', 'Fired / finished'].map((x) => h('th', { scope: 'col' }, x)))),
          body))));
  try {
    const items = await allCampaigns(signal);
    replace(body, items.length ? items.map(row)
      : h('tr', {}, h('td', { colspan: 7, class: 'empty' }, 'No campaign yet.', can('operator') ? ' Prepare the first escape plan with “New campaign”.' : '')));
  } catch (e) {
    if (e.name !== 'AbortError') replace(body, h('tr', {}, h('td', { colspan: 7 }, errorBox(e, 'Could not list campaigns'))));
  }
}

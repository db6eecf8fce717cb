// Exactly whom a campaign would target now: the orchestrator's preview (its
// count and the canary's size) and the full list of those consumers.

import { api, query } from '../api.js';
import { h, num, timeAgo, errorBox } from '../dom.js';
import { suiteLabel } from '../suites.js';

/** Most targets listed one by one; the count above the list is always exact. */
const LIST_CAP = 1000;

/** Enrolled consumers the selector picks that are not on `suite` yet, as the engine picks them. */
async function targetList(selector, suite, signal) {
  const items = [];
  let after = null;
  do {
    const page = await api(`/consumers${query({ selector, state: 'enrolled', limit: 500, after })}`, { signal });
    items.push(...page.items.filter((c) => c.suite !== suite));
    after = page.next;
  } while (after && items.length < LIST_CAP);
  return items.slice(0, LIST_CAP);
}

/**
 * A panel previewing a plan. `preview` is the API's answer for the plan; the list
 * is read alongside.
 */
export async function targetsPanel({ selector, suite, waves, preview, signal }) {
  const list = await targetList(selector, suite, signal).catch((e) => e);
  const table = list instanceof Error
    ? errorBox(list, 'Could not list the targets')
    : h('div', { class: 'table-wrap scroll' },
      h('table', { class: 'table compact', id: 'targets' },
        h('caption', { class: 'visually-hidden' }, 'Consumers this plan targets'),
        h('thead', {}, h('tr', {}, ['Consumer', 'Labels', 'Current suite', 'Last seen'].map((x) => h('th', { scope: 'col' }, x)))),
        h('tbody', {}, list.map((c) => h('tr', {},
          h('th', { scope: 'row' }, c.name),
          h('td', { class: 'mono' }, Object.entries(c.labels).map(([k, v]) => `${k}=${v}`).join(', ')),
          h('td', {}, suiteLabel(c.suite)),
          h('td', {}, timeAgo(c.last_seen)))))));
  const shown = list instanceof Error ? 0 : list.length;
  return h('section', { class: 'preview', id: 'preview', 'aria-labelledby': 'preview-title' },
    h('h2', { id: 'preview-title' }, 'Targets'),
    h('p', { class: 'preview-summary' },
      h('strong', { id: 'target-count' }, num(preview.targets)),
      ` enrolled consumer${preview.targets === 1 ? '' : 's'} not yet on ${suiteLabel(suite)} `,
      selector ? h('span', {}, 'match ', h('code', {}, selector)) : 'in the whole fleet',
      '. ',
      h('span', {}, 'The first wave (', waves?.[0] ?? 100, '%, the canary) reaches ', h('strong', {}, num(preview.first_wave)), '.')),
    preview.targets === 0
      ? h('p', { class: 'alert alert-warning', role: 'status' }, 'No consumer would receive this escape.')
      : table,
    shown < preview.targets
      ? h('p', { class: 'help' }, `Listing the first ${num(shown)} of ${num(preview.targets)}.`) : null);
}

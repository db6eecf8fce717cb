// API tokens (admins only): who holds access, issue one (its secret is shown
// once, here, and never again), revoke.

import { api } from '../api.js';
import { h, replace, badge, timeAgo, errorBox } from '../dom.js';
import { confirmDialog } from './dialog.js';

function secretPanel(created) {
  const field = h('input', { id: 'new-secret', class: 'mono', readonly: true, value: created.secret, 'aria-describedby': 'new-secret-help' });
  const copy = h('button', { type: 'button', onclick: async () => {
    await navigator.clipboard?.writeText(created.secret).catch(() => {});
    field.select();
    copy.textContent = 'Copied';
  } }, 'Copy');
  return h('div', { class: 'alert alert-success', role: 'status' },
    h('p', {}, h('strong', {}, `Token “${created.token.name}” (${created.token.role}) created. `),
      'Copy it now: it is shown once and cannot be read again.'),
    h('div', { class: 'secret-row' }, h('label', { for: 'new-secret', class: 'visually-hidden' }, 'New token'), field, copy),
    h('p', { class: 'help', id: 'new-secret-help' }, 'It disappears when you leave this page.'));
}

export async function tokensView(root, { signal, can, me }) {
  if (!can('admin')) {
    replace(root, h('h1', {}, 'API tokens'), h('p', { class: 'alert alert-warning' }, 'Managing API tokens needs an admin token.'));
    return;
  }
  const body = h('tbody');
  const result = h('div', { 'aria-live': 'polite' });
  const name = h('input', { id: 't-name', required: true, maxlength: 128, placeholder: 'wallboard', autocomplete: 'off' });
  const role = h('select', { id: 't-role' }, ['viewer', 'operator', 'admin'].map((r) => h('option', { value: r }, r)));

  async function load() {
    const { items } = await api('/api-tokens', { signal });
    items.sort((a, b) => (a.revoked_at ? 1 : 0) - (b.revoked_at ? 1 : 0) || b.created_at - a.created_at);
    replace(body, items.map((t) => h('tr', {},
      h('th', { scope: 'row' }, t.name, t.id === me.id ? h('span', { class: 'tag' }, 'you') : null),
      h('td', {}, badge(t.role, `role-${t.role}`)),
      h('td', {}, timeAgo(t.created_at)),
      h('td', {}, t.revoked_at ? h('span', {}, badge('revoked'), ' ', timeAgo(t.revoked_at)) : badge('active')),
      h('td', {}, t.revoked_at || t.id === me.id ? null : h('button', { type: 'button', class: 'button-quiet button-danger-quiet', onclick: () => revoke(t) }, 'Revoke')))));
  }

  async function revoke(t) {
    const ok = await confirmDialog({ title: `Revoke “${t.name}”?`, confirmLabel: 'Revoke', danger: true,
      body: h('p', {}, 'Anything using this token loses access at once.') });
    if (!ok) return;
    try {
      await api(`/api-tokens/${t.id}/revoke`, { method: 'POST', signal });
      await load();
    } catch (e) { replace(result, errorBox(e, 'Could not revoke')); }
  }

  const form = h('form', { class: 'filters' },
    h('div', { class: 'field grow' }, h('label', { for: 't-name' }, 'Name'), name),
    h('div', { class: 'field' }, h('label', { for: 't-role' }, 'Role'), role),
    h('button', { type: 'submit', class: 'button-primary' }, 'Create token'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const created = await api('/api-tokens', { method: 'POST', body: { name: name.value.trim(), role: role.value }, signal });
      replace(result, secretPanel(created));
      form.reset();
      await load();
    } catch (e) { replace(result, errorBox(e, 'The token was not created')); }
  });

  replace(root,
    h('div', { class: 'view-header' }, h('div', {}, h('h1', {}, 'API tokens'),
      h('p', { class: 'muted' }, 'Viewers read everything but secrets; operators also run campaigns; admins also manage tokens and revoke consumers.'))),
    h('section', { class: 'panel', 'aria-labelledby': 'new-token-title' }, h('h2', { id: 'new-token-title' }, 'New token'), form, result),
    h('section', { class: 'panel' }, h('div', { class: 'table-wrap' }, h('table', { class: 'table compact', id: 'tokens' },
      h('thead', {}, h('tr', {}, ['Name', 'Role', 'Created', 'Status', ''].map((x) => h('th', { scope: 'col' }, x)))),
      body))));
  await load();
}

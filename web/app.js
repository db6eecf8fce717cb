// The console's shell: sign-in, the signed-in caller and their role, the
// hash router that mounts one view at a time, and keyboard shortcuts.

import { api, session, whenUnauthenticated } from './api.js';
import { h, replace } from './dom.js';
import { signInView } from './views/signin.js';
import { fleetView } from './views/fleet.js';
import { campaignsView } from './views/campaigns.js';
import { newCampaignView } from './views/campaign-new.js';
import { campaignView } from './views/campaign.js';
import { auditView } from './views/audit.js';
import { tokensView } from './views/tokens.js';

const ROLES = ['viewer', 'operator', 'admin'];

const routes = [
  [/^\/fleet$/, 'fleet', fleetView],
  [/^\/campaigns$/, 'campaigns', campaignsView],
  [/^\/campaigns\/new$/, 'campaigns', newCampaignView],
  [/^\/campaigns\/([0-9a-f-]{36})$/, 'campaigns', campaignView],
  [/^\/audit$/, 'audit', auditView],
  [/^\/tokens$/, 'tokens', tokensView],
];

const main = document.getElementById('main');
let me = null;
let current = null; // the mounted view's AbortController

/** Whether the signed-in caller's role is at least `role`. */
export function can(role) {
  return me !== null && ROLES.indexOf(me.role) >= ROLES.indexOf(role);
}

/** Says `text` to screen readers through the polite live region. */
export function announce(text) {
  const region = document.getElementById('announcer');
  region.textContent = '';
  setTimeout(() => { region.textContent = text; }, 50);
}

export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function showChrome(signedIn) {
  document.getElementById('nav').hidden = !signedIn;
  document.getElementById('who').hidden = !signedIn;
  if (!signedIn) return;
  document.getElementById('who-name').textContent = me.name;
  const role = document.getElementById('who-role');
  role.textContent = me.role;
  role.className = `badge badge-role-${me.role}`;
  for (const link of document.querySelectorAll('#nav [data-min-role]')) {
    link.hidden = !can(link.dataset.minRole);
  }
}

async function signIn(token) {
  session.set(token);
  me = await api('/whoami');
  showChrome(true);
}

function signOut(message) {
  session.clear();
  me = null;
  showChrome(false);
  mount(signInView, { onSignIn: signIn, message });
}

function mount(view, ctx, ...params) {
  current?.abort();
  current = new AbortController();
  const root = h('div', { class: 'view' });
  replace(main, root);
  const context = { ...ctx, me, signal: current.signal, navigate, announce, can };
  Promise.resolve(view(root, context, ...params)).catch((error) => {
    if (error.name === 'AbortError') return;
    console.error(error);
    replace(root, h('div', { class: 'alert alert-error', role: 'alert' },
      `This view failed to load: ${error.message}`));
  });
  // Move focus to the new view's heading so keyboard and screen reader users follow.
  requestAnimationFrame(() => {
    const heading = root.querySelector('h1');
    if (heading && !root.contains(document.activeElement)) {
      heading.tabIndex = -1;
      heading.focus({ preventScroll: true });
    }
  });
}

function route() {
  if (!me) return;
  const path = location.hash.replace(/^#/, '') || '/fleet';
  for (const [pattern, section, view] of routes) {
    const match = path.match(pattern);
    if (!match) continue;
    for (const link of document.querySelectorAll('#nav a')) {
      if (link.dataset.route === section) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    document.title = `${section[0].toUpperCase()}${section.slice(1)} · pqescape console`;
    mount(view, {}, ...match.slice(1));
    return;
  }
  navigate('#/fleet');
}

/** g then f/c/a/t jumps to a section; "/" focuses the view's search field. */
function shortcuts() {
  let pending = false;
  document.addEventListener('keydown', (event) => {
    const typing = event.target.closest('input, textarea, select, [contenteditable]');
    if (typing || event.ctrlKey || event.metaKey || event.altKey || !me) return;
    if (event.key === '/') {
      const search = main.querySelector('[data-search]');
      if (search) {
        event.preventDefault();
        search.focus();
      }
      return;
    }
    if (pending) {
      pending = false;
      const target = { f: '#/fleet', c: '#/campaigns', a: '#/audit', t: '#/tokens', n: '#/campaigns/new' }[event.key];
      if (target) navigate(target);
      return;
    }
    pending = event.key === 'g';
  });
}

async function start() {
  // Only a signed-in session can end; a refused sign-in is answered by its form.
  whenUnauthenticated(() => {
    if (me) signOut('Your session ended: the token is no longer valid. Sign in again.');
  });
  document.getElementById('sign-out').addEventListener('click', () => signOut());
  window.addEventListener('hashchange', route);
  shortcuts();
  if (session.token) {
    try {
      await signIn(session.token);
      route();
      return;
    } catch {
      session.clear();
    }
  }
  signOut();
}

start();

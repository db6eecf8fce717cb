// Sign-in with an API token. The token is kept in sessionStorage only, and the
// field never shows it back.

import { h, replace, alertBox } from '../dom.js';

export function signInView(root, { onSignIn, message, navigate }) {
  const error = h('div', { id: 'signin-error' });
  const field = h('input', {
    id: 'token', name: 'token', type: 'password', required: true, autocomplete: 'off',
    spellcheck: 'false', 'aria-describedby': 'token-help signin-error', placeholder: 'pqe_…',
  });
  const submit = h('button', { type: 'submit', class: 'button-primary' }, 'Sign in');
  const form = h('form', { class: 'signin-card', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in to the pqescape console'),
    h('p', { class: 'muted' },
      'Escape campaigns move your fleet to post-quantum key exchange on demand.'),
    message ? alertBox(message, 'warning') : null,
    h('label', { for: 'token' }, 'API token'),
    field,
    h('p', { id: 'token-help', class: 'help' },
      'An admin, operator or viewer token. It is kept for this browser tab only and cleared when you sign out or close it.'),
    error,
    submit);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    replace(error);
    submit.disabled = true;
    try {
      await onSignIn(field.value.trim());
      field.value = '';
      if (!location.hash || location.hash === '#/') navigate('#/fleet');
      else navigate(location.hash);
    } catch (e) {
      const why = e.status === 401 ? 'This token is not valid, or it was revoked.' : e.message;
      replace(error, alertBox(why));
      field.focus();
      field.select();
    } finally {
      submit.disabled = false;
    }
  });
  replace(root, h('section', { class: 'signin' }, form));
  requestAnimationFrame(() => field.focus());
}

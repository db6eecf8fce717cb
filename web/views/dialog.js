// Confirmation dialogs on <dialog>: focus is trapped by the browser, Escape
// cancels, and the confirming button can require typed confirmation.

import { h } from '../dom.js';

/**
 * Shows a modal and resolves true when confirmed. With `typed`, the confirm button
 * stays disabled until that exact text is typed.
 */
export function confirmDialog({ title, body, confirmLabel, danger = false, typed = null }) {
  return new Promise((resolve) => {
    const input = typed ? h('input', { id: 'confirm-text', autocomplete: 'off', spellcheck: 'false' }) : null;
    const ok = h('button', { type: 'submit', class: danger ? 'button-danger' : 'button-primary', id: 'confirm-ok', disabled: Boolean(typed) }, confirmLabel);
    const cancel = h('button', { type: 'button', class: 'button-quiet', id: 'confirm-cancel' }, 'Back');
    const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': 'dialog-title' },
      h('form', { method: 'dialog' },
        h('h2', { id: 'dialog-title' }, title),
        body,
        typed ? h('div', { class: 'field' },
          h('label', { for: 'confirm-text' }, 'Type ', h('code', {}, typed), ' to confirm'), input) : null,
        h('div', { class: 'actions' }, cancel, ok)));
    input?.addEventListener('input', () => { ok.disabled = input.value.trim() !== typed; });
    let confirmed = false;
    ok.addEventListener('click', () => { confirmed = true; });
    cancel.addEventListener('click', () => dialog.close());
    dialog.addEventListener('close', () => { dialog.remove(); resolve(confirmed); });
    document.body.append(dialog);
    dialog.showModal();
    (input ?? cancel).focus();
  });
}

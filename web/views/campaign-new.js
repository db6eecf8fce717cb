// A new escape plan: what to target, how fast, until when. The plan is saved as
// a draft; it is armed (its manifest signed) and fired from its own page.

import { api } from '../api.js';
import { h, replace, errorBox } from '../dom.js';
import { SUITES } from '../suites.js';
import { targetsPanel } from './targets.js';

function localInput(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function field(id, label, input, help) {
  return h('div', { class: 'field' },
    h('label', { for: id }, label), input,
    help ? h('p', { class: 'help', id: `${id}-help` }, help) : null);
}

export async function newCampaignView(root, { signal, navigate, can, announce }) {
  if (!can('operator')) {
    replace(root, h('h1', {}, 'New campaign'),
      h('p', { class: 'alert alert-warning', role: 'status' }, 'Your role is viewer: preparing campaigns needs an operator or admin token.'));
    return;
  }
  const input = (id, attrs) => h('input', { id, name: id, 'aria-describedby': `${id}-help`, ...attrs });
  const name = input('c-name', { required: true, maxlength: 128, placeholder: 'Q-day drill, EU VPN gateways' });
  const selector = input('c-selector', { placeholder: 'env=prod,role=vpn', spellcheck: 'false', autocomplete: 'off' });
  const suite = h('select', { id: 'c-suite', name: 'c-suite' }, SUITES.map((x) => h('option', { value: x.name }, x.label)));
  const waves = input('c-waves', { value: '5,25,100', pattern: '\\s*\\d+(\\s*,\\s*\\d+)*\\s*', required: true });
  const inFlight = input('c-in-flight', { type: 'number', min: 1, max: 1000000, value: 1000, required: true });
  const threshold = input('c-threshold', { type: 'number', min: 0, max: 100, value: 5, required: true });
  const deadline = input('c-deadline', { type: 'datetime-local', required: true,
    value: localInput(new Date(Date.now() + 24 * 3600 * 1000)) });
  const drill = h('input', { id: 'c-drill', type: 'checkbox', checked: true });
  const signed = h('input', { id: 'c-signed', type: 'checkbox' });
  const directives = h('textarea', { id: 'c-directives', rows: 1, maxlength: 512, 'aria-describedby': 'c-directives-help', placeholder: '{"reload": "strongswan"}' });

  const previewArea = h('div', { 'aria-live': 'polite' });
  const errors = h('div');
  const previewButton = h('button', { type: 'button', id: 'preview-button' }, 'Preview targets');
  const saveButton = h('button', { type: 'submit', class: 'button-primary', id: 'save-plan' }, 'Save escape plan');

  const plan = () => ({
    name: name.value.trim(),
    selector: selector.value.trim(),
    target_suite: suite.value,
    waves: waves.value.split(',').map((x) => Number(x.trim())).filter((x) => !Number.isNaN(x)),
    max_in_flight: Number(inFlight.value),
    failure_threshold_percent: Number(threshold.value),
    deadline: Math.floor(new Date(deadline.value).getTime() / 1000),
    drill: drill.checked,
    sign_handshakes: signed.checked,
    directives: directives.value,
  });

  async function preview() {
    replace(errors);
    const p = plan();
    replace(previewArea, h('p', { class: 'muted' }, 'Computing the targets…'));
    try {
      const answer = await api('/campaigns/preview', { method: 'POST', signal,
        body: { selector: p.selector, target_suite: p.target_suite, first_wave_percent: p.waves[0] || 100 } });
      replace(previewArea, await targetsPanel({ selector: p.selector, suite: p.target_suite, waves: p.waves, preview: answer, signal }));
      announce(`${answer.targets} consumers targeted`);
    } catch (e) {
      replace(previewArea);
      if (e.name !== 'AbortError') replace(errors, errorBox(e, 'Preview failed'));
    }
  }
  previewButton.addEventListener('click', preview);

  const form = h('form', { class: 'campaign-form', novalidate: false },
    h('fieldset', {}, h('legend', {}, 'What'),
      field('c-name', 'Name', name),
      field('c-selector', 'Label selector', selector, 'key=value pairs, all must match; empty means every consumer.'),
      field('c-suite', 'Target suite', suite, 'Consumers already on it are left out.')),
    h('fieldset', {}, h('legend', {}, 'How fast'),
      field('c-waves', 'Waves (cumulative %)', waves, 'Rising, ending at 100; the first is the canary.'),
      field('c-in-flight', 'In-flight cap', inFlight, 'Most deliveries open at once.'),
      field('c-threshold', 'Failure threshold (%)', threshold, 'More failures than this pause it.'),
      field('c-deadline', 'Deadline', deadline, 'Unfinished deliveries expire then.')),
    h('fieldset', {}, h('legend', {}, 'Mode'),
      h('div', { class: 'check' }, drill, h('label', { for: 'c-drill' }, h('strong', {}, 'Drill'), ' — run every protocol step without migrating anyone')),
      h('div', { class: 'check' }, signed, h('label', { for: 'c-signed' }, 'Sign every handshake response with ML-DSA-65 (about 1.5 ms each)')),
      field('c-directives', 'Directives for agent hooks (optional)', directives, 'At most 512 bytes, sent encrypted inside the escape.')),
    errors,
    h('div', { class: 'actions' }, previewButton, saveButton,
      h('a', { href: '#/campaigns', class: 'button button-quiet' }, 'Cancel')));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    replace(errors);
    saveButton.disabled = true;
    try {
      const created = await api('/campaigns', { method: 'POST', body: plan(), signal });
      announce('Escape plan saved as a draft');
      navigate(`#/campaigns/${created.id}`);
    } catch (e) {
      if (e.name !== 'AbortError') replace(errors, errorBox(e, 'The plan was not saved'));
    } finally {
      saveButton.disabled = false;
    }
  });

  replace(root,
    h('div', { class: 'view-header' },
      h('div', {}, h('h1', {}, 'New escape plan'),
        h('p', { class: 'muted' }, 'Saved as a draft. You review its targets, arm it (the manifest is signed) and fire it from its page.'))),
    h('div', { class: 'two-columns' },
      h('section', { class: 'panel' }, form),
      h('section', { class: 'panel sticky' },
        h('p', { class: 'muted', id: 'preview-hint' }, 'Preview the targets to see exactly which consumers this plan reaches.'),
        previewArea)));
  const hint = root.querySelector('#preview-hint');
  previewButton.addEventListener('click', () => hint?.remove(), { once: true });
}

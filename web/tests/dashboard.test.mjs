// The dashboard in headless Chromium against a real orchestrator and real agents:
// sign in, fire a drill from the console and watch it complete live, read a
// failure's reason, check the audit chain, and see that a viewer cannot fire.
//
//   cd web/tests && npm ci && node --test dashboard.test.mjs
//
// Needs /usr/bin/chromium (Debian's chromium package) and the debug binaries
// (cargo build -p pqescape-orchestrator -p pqescape-agent).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { Fleet, screenshotDir } from './harness.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const WEB = ['web-1', 'web-2', 'web-3'];

let fleet, context, page, shots, profile, viewerToken;
const problems = []; // console errors (CSP violations among them) and page errors

async function shot(name) {
  const path = join(shots, `${name}.png`);
  await page.screenshot({ path, fullPage: false });
  console.log(`screenshot: ${path}`);
}

async function signIn(token) {
  await page.goto(fleet.base + '/');
  await page.locator('#token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#who-role').waitFor();
}

/** A link of the main navigation (the page has others with the same names). */
function nav(name) {
  return page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name });
}

async function signOut() {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.locator('#token').waitFor();
}

before(async () => {
  shots = await screenshotDir();
  fleet = await Fleet.create();
  await fleet.startOrchestrator();
  for (const name of WEB) await fleet.startAgent(name, { env: 'demo', role: 'web' });
  await fleet.startAgent('vpn-1', { env: 'demo', role: 'vpn' });
  await fleet.call('POST', '/consumers', { name: 'edge-7', labels: { env: 'demo', role: 'edge' } });
  const { agent: offline } = await fleet.startAgent('db-1', { env: 'lab', role: 'db' });
  await fleet.waitAttached([...WEB, 'vpn-1', 'db-1']);
  await fleet.stopAgent(offline); // enrolled, but offline: its deliveries wait
  // vpn-1 goes ahead to ML-KEM-1024: a later campaign to ML-KEM-768 would be a
  // downgrade, which its agent refuses and reports with a reason.
  const ahead = await fleet.campaign({ name: 'vpn gateways to ML-KEM-1024', selector: 'role=vpn',
    target_suite: 'x25519-mlkem1024', waves: [100], drill: false });
  await fleet.waitCampaign(ahead);

  profile = await mkdtemp(join(tmpdir(), 'pqescape-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1366, height: 768 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = context.pages()[0] ?? await context.newPage();
  page.setDefaultTimeout(15000);
  page.on('console', (m) => {
    // The browser logs the 401 of the refused sign-in below itself; that one is expected.
    const refusedSignIn = m.text().includes('status of 401') && m.location().url.endsWith('/api/v1/whoami');
    if (m.type() === 'error' && !refusedSignIn) problems.push(`${m.text()} (${m.location().url})`);
  });
  page.on('pageerror', (e) => problems.push(e.message));
  // Nothing may leave the machine: only the orchestrator's origin is requested.
  page.on('request', (r) => {
    if (!r.url().startsWith(fleet.base)) problems.push(`request outside the orchestrator: ${r.url()}`);
  });
});

after(async () => {
  await context?.close();
  if (profile) await rm(profile, { recursive: true, force: true });
  if (process.exitCode) console.log(fleet?.logs());
  await fleet?.stop();
});

test('an admin signs in and sees the fleet and its post-quantum readiness', async () => {
  await page.goto(fleet.base + '/');
  await page.locator('#token').waitFor();
  await shot('01-sign-in');
  await page.locator('#token').fill('pqe_' + '0'.repeat(64));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'not valid' }).waitFor();

  await signIn(fleet.token);
  assert.equal(await page.locator('#who-role').textContent(), 'admin');
  await page.getByRole('heading', { name: 'Fleet overview' }).waitFor();
  const stored = await page.evaluate(() => ({ session: sessionStorage.length, local: localStorage.length }));
  assert.deepEqual(stored, { session: 1, local: 0 }, 'the token is kept for the session only');
  assert.ok(!(await page.content()).includes(fleet.token), 'the token is never rendered');

  const ready = page.locator('.kpi', { hasText: 'Post-quantum ready' });
  await ready.locator('.kpi-note', { hasText: '1 of 5 enrolled' }).waitFor();
  assert.equal(await ready.locator('.kpi-value').textContent(), '20%');
  const rows = page.locator('#consumers tbody tr');
  await rows.nth(5).waitFor();
  assert.equal(await rows.count(), 6);
  await shot('02-fleet');

  // Search by name, then filter by a label chip.
  await page.locator('#f-name').fill('web');
  await page.waitForFunction(() => document.querySelectorAll('#consumers tbody tr').length === 3);
  await page.locator('#f-name').fill('');
  await page.locator('#consumers .chip', { hasText: 'role=vpn' }).click();
  await page.waitForFunction(() => document.querySelectorAll('#consumers tbody tr').length === 1);
  assert.match(await rows.first().textContent(), /vpn-1.*X25519 \+ ML-KEM-1024/s);
});

test('a drill prepared, previewed, armed and confirmed completes live, with a failure and its reason', async () => {
  await nav('Campaigns').click();
  await page.getByRole('link', { name: 'New campaign' }).click();
  await page.getByLabel('Name').fill('Q-day drill');
  await page.getByLabel('Label selector').fill('env=demo');
  await page.getByLabel('Waves (cumulative %)').fill('50,100');
  await page.getByLabel('Failure threshold (%)').fill('60');
  assert.ok(await page.getByLabel(/Drill/).isChecked(), 'a drill by default');
  await page.getByRole('button', { name: 'Preview targets' }).click();
  await page.locator('#target-count').waitFor();
  assert.equal(await page.locator('#target-count').textContent(), '4');
  const targets = (await page.locator('#targets tbody th').allTextContents()).sort();
  assert.deepEqual(targets, [...WEB, 'vpn-1'].sort(), 'exactly the enrolled demo consumers');
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot('03-new-campaign-preview');

  await page.getByRole('button', { name: 'Save escape plan' }).click();
  await page.locator('h1 .badge-draft').waitFor();
  await page.getByRole('button', { name: 'Arm plan' }).click();
  await page.locator('h1 .badge-armed').waitFor();

  await page.evaluate(() => { window.notReloaded = true; });
  await page.getByRole('button', { name: 'Fire…' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  const fire = dialog.getByRole('button', { name: /^Fire at 4 consumers/ });
  assert.ok(await fire.isDisabled(), 'firing needs the name typed');
  await dialog.getByLabel(/to confirm/).fill('Q-day drill');
  await shot('04-fire-confirmation');
  await fire.click();

  await page.locator('#live-status', { hasText: 'Completed' }).waitFor({ timeout: 30000 });
  assert.equal(await page.evaluate(() => window.notReloaded), true, 'updated without reloading');
  const count = (state) => page.locator(`#counts [data-state="${state}"] .count-value`).textContent();
  assert.equal(await count('drill_passed'), '3');
  assert.equal(await count('failed'), '1');
  assert.match(await page.locator('#progress-summary').textContent(), /4 of 4 deliveries ended \(100%\)/);

  const failure = page.locator('#failures tbody tr');
  await failure.first().waitFor();
  assert.equal(await failure.count(), 1);
  const text = await failure.first().textContent();
  assert.match(text, /vpn-1/);
  assert.match(text, /0x0030/);
  assert.match(text, /downgrade.*stronger suite/);
  assert.ok(await page.locator('#timeline svg rect.fill-drill_passed').count() > 0, 'the timeline charts the drill');
  assert.ok(await page.locator('#timeline svg rect.fill-failed').count() > 0, 'and the failure');
  assert.equal(await page.locator('#deliveries tbody tr').count(), 4);
  assert.equal(await page.locator('#fire-button').count(), 0, 'nothing to fire any more');
  await shot('05-campaign-live-completed');
});

test('an operator pauses, resumes and cancels a running campaign from its page', async () => {
  const id = await fleet.campaign({ name: 'lab databases', selector: 'role=db',
    target_suite: 'x25519-mlkem768', drill: true });
  await nav('Campaigns').click();
  await page.locator('#campaigns tbody tr').nth(2).waitFor();
  assert.deepEqual(await page.locator('#campaigns tbody .badge').allTextContents(),
    ['running', 'completed', 'completed'], 'active campaigns first');
  await shot('06-campaigns');
  await page.getByRole('link', { name: 'lab databases' }).click();
  await page.locator('#live-status', { hasText: 'Live' }).waitFor();
  assert.equal(new URL(page.url()).hash, `#/campaigns/${id}`);
  await page.locator('#counts [data-state="pending"] .count-value', { hasText: '1' }).waitFor();
  assert.match(await page.locator('#progress-summary').textContent(), /0 of 1 deliveries ended/);
  await shot('07-campaign-running');

  await page.getByRole('button', { name: 'Pause' }).click();
  await page.locator('h1 .badge-paused').waitFor();
  await page.getByRole('button', { name: 'Resume' }).click();
  await page.locator('h1 .badge-running').waitFor();
  await page.getByRole('button', { name: 'Cancel campaign' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel campaign' }).click();
  await page.locator('h1 .badge-cancelled').waitFor();
  await page.locator('#live-status', { hasText: 'Cancelled' }).waitFor();
  assert.equal(await page.getByRole('button', { name: /pause|resume|cancel/i }).count(), 0);
  const p = await fleet.call('GET', `/campaigns/${id}/progress`);
  assert.equal(p.state, 'cancelled');
});

test('the audit log shows every action and a verified chain', async () => {
  // Reached from the keyboard: "g a".
  await page.locator('h1').focus();
  await page.keyboard.press('g');
  await page.keyboard.press('a');
  await page.locator('#chain-status', { hasText: 'Chain verified' }).waitFor();
  await page.locator('#audit tbody .action').first().waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Audit log',
    'focus moves to the new view\'s heading');
  const actions = await page.locator('#audit tbody .action').allTextContents();
  for (const action of ['campaign.create', 'campaign.arm', 'campaign.fire', 'campaign.complete',
    'campaign.pause', 'campaign.resume']) {
    assert.ok(actions.includes(action), `${action} in ${actions}`);
  }
  assert.equal(actions[0], 'campaign.cancel', 'newest first');
  await shot('08-audit');
});

test('an admin issues a viewer token, shown once', async () => {
  await nav('API tokens').click();
  await page.getByLabel('Name').fill('wallboard');
  await page.getByLabel('Role').selectOption('viewer');
  await page.getByRole('button', { name: 'Create token' }).click();
  const secret = await page.locator('#new-secret').inputValue();
  assert.match(secret, /^pqe_[0-9a-f]{64}$/);
  await page.locator('#tokens tbody tr', { hasText: 'wallboard' }).waitFor();
  await shot('09-api-tokens');
  viewerToken = secret;
  await nav('Fleet').click();
  await nav('API tokens').click();
  assert.equal(await page.locator('#new-secret').count(), 0, 'never shown again');
  assert.ok(!(await page.content()).includes(secret));
});

test('a viewer sees campaigns but has no button to fire, arm or create them', async () => {
  const armed = await fleet.campaign({ name: 'armed for Q-day', selector: 'role=web',
    target_suite: 'x25519-mlkem768', drill: false }, { fire: false });
  await signOut();
  await signIn(viewerToken);
  assert.equal(await page.locator('#who-role').textContent(), 'viewer');
  assert.equal(await nav('API tokens').count(), 0);

  await nav('Campaigns').click();
  await page.locator('#campaigns tbody tr', { hasText: 'armed for Q-day' }).waitFor();
  assert.equal(await page.locator('#new-campaign').count(), 0);
  await page.getByRole('link', { name: 'armed for Q-day' }).click();
  await page.locator('#read-only-note').waitFor();
  await page.locator('#target-count').waitFor();
  assert.equal(await page.locator('#target-count').textContent(), '3');
  assert.equal(await page.getByRole('button', { name: /fire|arm|cancel|discard/i }).count(), 0);
  await shot('10-viewer-armed-campaign');

  await page.goto(`${fleet.base}/#/campaigns/new`);
  await page.getByText('Your role is viewer').waitFor();
  assert.equal(await page.locator('form.campaign-form').count(), 0);
  // The API agrees with the page.
  await assert.rejects(fleet.call('POST', `/campaigns/${armed}/fire`, { confirm: armed }, viewerToken), /403/);
});

test('no console error, CSP violation or request outside the orchestrator', () => {
  assert.deepEqual(problems, []);
});

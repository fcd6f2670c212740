// End-to-end in a real browser against a real server process: the user journeys of the
// foundation issue.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  startServer, launchBrowser, newPage, register, login, createClinic, savePatient, patientRows, OUTPUT,
} from './harness.mjs';

let server;
let browser;
const alice = { username: `alice-${Date.now()}`, password: 'violet tractor sings 42 ferns' };
const bob = { username: `bob-${Date.now()}`, password: 'copper lantern drifts 17 owls' };
let aliceClinicUrl;

before(async () => {
  server = await startServer('e2e');
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test('register, create a clinic, add two patients, search, edit, log out, log in: all intact', async () => {
  const page = await newPage(browser);
  await register(page, server.url, alice.username, alice.password);
  const clinic = await createClinic(page, 'Lakeside Optometry');
  await clinic.click();
  await page.waitForURL(/\/patients$/);
  aliceClinicUrl = page.url();

  await page.click('#new-patient');
  await savePatient(page, {
    given_name: 'Jane', family_name: 'Doe', date_of_birth: '1980-02-29', sex: 'female',
    phone: '+1 555 010 2030', email: 'jane@example.org', insurance_member_id: 'VSP-1001',
  });
  await page.click('#new-patient');
  await savePatient(page, {
    given_name: 'Omar', family_name: 'Haddad', date_of_birth: '1955-07-14', sex: 'male',
    phone: '555 222 3333', email: 'omar@example.org',
  });
  await assert.doesNotReject(patientRows(page).nth(1).waitFor());
  assert.equal(await patientRows(page).count(), 2);

  await page.fill('#search', 'hadd');
  await page.waitForFunction(() => document.querySelectorAll('tr.patient-row').length === 1);
  assert.match(await patientRows(page).first().innerText(), /Haddad/);
  await page.fill('#search', '5550102030');
  await page.waitForFunction(() => document.querySelectorAll('tr.patient-row').length === 1);
  assert.match(await patientRows(page).first().innerText(), /Doe/);

  // Edit Jane: new phone number.
  await patientRows(page).first().locator('a.patient-link').click();
  await page.waitForSelector('#given_name');
  assert.equal(await page.inputValue('#family_name'), 'Doe');
  await savePatient(page, { phone: '+1 555 999 0000' });
  await page.fill('#search', '');
  await page.waitForFunction(() => document.querySelectorAll('tr.patient-row').length === 2);
  await page.screenshot({ path: join(OUTPUT, 'patients.png'), fullPage: true });

  await page.click('#logout');
  await page.waitForURL(/\/login$/);
  // Keys are memory-only: the patients page now sends us to log in.
  await page.goto(aliceClinicUrl);
  await page.waitForURL(/\/login$/);

  await login(page, server.url, alice.username, alice.password);
  await page.waitForURL(/\/clinics$/);
  await page.locator('a.clinic-item', { hasText: 'Lakeside Optometry' }).click();
  await page.waitForFunction(() => document.querySelectorAll('tr.patient-row').length === 2);
  const text = await page.locator('table').innerText();
  assert.match(text, /Doe/);
  assert.match(text, /Haddad/);
  assert.match(text, /555 999 0000/);
  assert.doesNotMatch(text, /010 2030/);
  assert.deepEqual(page.consoleErrors.filter((e) => /Content Security Policy|Refused/.test(e)), []);
  await page.context().close();
});

test('a wrong password is rejected with one clear message, the same as an unknown user', async () => {
  const page = await newPage(browser);
  await login(page, server.url, alice.username, 'not the right password at all');
  await page.waitForSelector('#login-error');
  const wrongPassword = (await page.innerText('#login-error')).trim();
  assert.equal(wrongPassword, 'Wrong username or password.');
  assert.ok(!page.url().includes('/clinics'));

  await login(page, server.url, `nobody-${Date.now()}`, 'not the right password at all');
  await page.waitForSelector('#login-error');
  assert.equal((await page.innerText('#login-error')).trim(), wrongPassword);
  await page.context().close();
});

test('a second account sees nothing of the first clinic', async () => {
  const page = await newPage(browser);
  await register(page, server.url, bob.username, bob.password);
  assert.equal(await page.locator('a.clinic-item').count(), 0);
  assert.doesNotMatch(await page.locator('body').innerText(), /Lakeside/);
  // Even asking the API directly for Alice's clinic gets nothing.
  const clinicId = aliceClinicUrl.match(/clinics\/([0-9a-f-]{36})/)[1];
  const answers = await page.evaluate(async (id) => {
    const out = [];
    for (const path of [`/api/clinics/${id}`, `/api/clinics/${id}/changes?since=0`, `/api/clinics/${id}/records`]) {
      const r = await fetch(path);
      out.push({ status: r.status, body: await r.text() });
    }
    return out;
  }, clinicId);
  for (const a of answers) {
    assert.equal(a.status, 404, JSON.stringify(a));
    assert.match(a.body, /"code":"not_found"/);
  }
  await page.context().close();
});

test('the page carries a strict CSP and starts without inline script', async () => {
  const page = await newPage(browser);
  const response = await page.goto(`${server.url}/login`);
  const csp = response.headers()['content-security-policy'];
  assert.match(csp, /script-src 'self' 'wasm-unsafe-eval'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline/);
  assert.equal(response.headers()['x-content-type-options'], 'nosniff');
  assert.equal(response.headers()['referrer-policy'], 'no-referrer');
  const inline = await page.evaluate(() => [...document.scripts].filter((s) => !s.src && s.textContent.trim()).length);
  assert.equal(inline, 0);
  await page.waitForSelector('#login-submit');
  assert.deepEqual(page.consoleErrors.filter((e) => /Content Security Policy|Refused/.test(e)), []);
  await page.context().close();
});

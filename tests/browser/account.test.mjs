// Account security in real browsers against a real server: the login backoff and its message,
// the sessions list with revocation, password change, the idle lock that drops every key, and the
// owner clearing a member's lockout (and signing them out everywhere).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  startServer, launchBrowser, newPage, register, login, createClinic, savePatient, patientRows,
  createInvitation, registerThroughLink, acceptInvitation, admitInvitee, attemptLogin,
  navigateInApp, sleep, OUTPUT,
} from './harness.mjs';

const stamp = Date.now();
const WRONG = 'Wrong username or password.';
const TOO_MANY = /^Too many login attempts\. Try again in (\d+) seconds\.$/;
const ENDED = /Your session has ended/;

let server;
let browser;

before(async () => {
  server = await startServer('account');
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Counts the page's requests to a path. */
function countRequests(page, path) {
  const counter = { n: 0 };
  page.on('request', (r) => { if (new URL(r.url()).pathname === path) counter.n += 1; });
  return counter;
}

async function logout(page) {
  await page.click('#logout');
  await page.waitForURL(/\/login$/);
  await page.waitForSelector('#login-submit');
}

/** Wrong guesses until the backoff answers; returns the seconds to wait. */
async function guessUntilLocked(page, username, { wrongFirst }) {
  for (let i = 1; i <= wrongFirst; i++) {
    assert.equal(await attemptLogin(page, username, `not the password ${i} at all`), WRONG, `attempt ${i}`);
  }
  const msg = await attemptLogin(page, username, 'not the password again either');
  const m = msg.match(TOO_MANY);
  assert.ok(m, `attempt ${wrongFirst + 1} answered: ${msg}`);
  return Number(m[1]);
}

test('repeated wrong passwords back off with a clear message; after the wait the right one works', async () => {
  const user = { username: `backoff-${stamp}`, password: 'amber falcon weaves 58 reeds' };
  const page = await newPage(browser);
  await register(page, server.url, user.username, user.password);
  await logout(page);
  const aborts = countRequests(page, '/api/session/login/abort');

  // Six wrong guesses are answered "wrong"; the seventh is refused before any password check.
  const wait = await guessUntilLocked(page, user.username, { wrongFirst: 6 });
  assert.ok(wait >= 1 && wait <= 4, `wait ${wait}`);
  // Every wrong guess was reported to the server; the refused attempt started nothing to abort.
  assert.equal(aborts.n, 6);
  await sleep(wait * 1000 + 500);
  assert.equal(await attemptLogin(page, user.username, user.password), null);
  await page.context().close();
});

test('the account page lists this account\'s sessions; revoking one ends it at its next action', async () => {
  const user = { username: `multi-${stamp}`, password: 'cobalt heron skims 73 dunes' };
  const a = await newPage(browser);
  await register(a, server.url, user.username, user.password);
  const b = await newPage(browser);
  await login(b, server.url, user.username, user.password);
  await b.waitForURL(/\/clinics$/);

  await a.click('#account-link');
  await a.waitForURL(/\/account$/);
  await a.waitForFunction(() => document.querySelectorAll('tr.session-row').length === 2);
  const current = a.locator('tr.session-row[data-current="true"]');
  assert.equal(await current.count(), 1);
  assert.match(await current.innerText(), /this browser/);
  assert.match(await current.innerText(), /127\.0\.0\.1/);
  assert.equal(await current.locator('.session-revoke').count(), 0);
  const other = a.locator('tr.session-row:not([data-current])');
  assert.doesNotMatch(await other.innerText(), /this browser/);
  assert.match(await a.innerText('#current-password-note'), /10 minutes/);
  // For the screenshot: the strength meter at work on a new password.
  await a.fill('#new-password', 'lantern quietly');
  await a.screenshot({ path: join(OUTPUT, 'account.png'), fullPage: true });
  await a.fill('#new-password', '');

  await other.locator('.session-revoke').click();
  await a.waitForFunction(() => document.querySelectorAll('tr.session-row').length === 1);
  assert.equal(await a.locator('tr.session-row[data-current="true"]').count(), 1);
  assert.equal(await a.locator('#revoke-others').isDisabled(), true);

  // B's next action finds its session gone: back to the login page, keys dropped.
  await b.click('#account-link');
  await b.waitForURL(/\/login$/);
  assert.match(await b.locator('.notice').innerText(), ENDED);

  // "Sign out all other sessions" ends every other one at once.
  const c = await newPage(browser);
  await login(c, server.url, user.username, user.password);
  await c.waitForURL(/\/clinics$/);
  await login(b, server.url, user.username, user.password);
  await b.waitForURL(/\/clinics$/);
  await a.click('#sessions-refresh');
  await a.waitForFunction(() => document.querySelectorAll('tr.session-row').length === 3);
  await a.click('#revoke-others');
  await a.waitForFunction(() => document.querySelectorAll('tr.session-row').length === 1);
  assert.match(await a.innerText('#sessions-note'), /Every other session was signed out/);
  for (const page of [b, c]) {
    await page.click('#account-link');
    await page.waitForURL(/\/login$/);
  }
  // A is untouched.
  await a.click('#sessions-refresh');
  await a.waitForFunction(() => document.querySelectorAll('tr.session-row').length === 1);
  assert.ok(a.url().endsWith('/account'));
  for (const page of [a, b, c]) await page.context().close();
});

test('changing the password keeps every key and record; the old password stops working', async () => {
  const user = { username: `changer-${stamp}`, password: 'tidal orchid hums 19 bells' };
  const fresh = 'granite swallow counts 86 moons';
  const page = await newPage(browser);
  await register(page, server.url, user.username, user.password);
  await (await createClinic(page, 'Northgate Vision')).click();
  await page.waitForURL(/\/patients$/);
  await page.click('#new-patient');
  await savePatient(page, { given_name: 'Grace', family_name: 'Hopper', date_of_birth: '1946-12-09' });
  await patientRows(page).first().waitFor();
  const elsewhere = await newPage(browser);
  await login(elsewhere, server.url, user.username, user.password);
  await elsewhere.waitForURL(/\/clinics$/);

  await page.click('#account-link');
  await page.waitForURL(/\/account$/);
  await page.waitForSelector('tr.session-row');
  assert.match(await page.innerText('#current-password-note'), /10 minutes.*You logged in at .*change it before/s);

  // The same policy and meter as registration, and the new password typed twice.
  await page.fill('#new-password', 'password1234');
  await page.fill('#new-password-confirm', 'password1234');
  await page.click('#change-password');
  assert.match(await page.innerText('#password-error'), /Choose a stronger password/);
  assert.notEqual(await page.getAttribute('#strength', 'data-score'), '4');
  await page.fill('#new-password', fresh);
  await page.fill('#new-password-confirm', `${fresh}!`);
  await page.click('#change-password');
  await page.waitForFunction(() => /do not match/.test(document.querySelector('#password-error')?.textContent ?? ''));

  // A login older than 10 minutes is refused by the server (simulated here: the answer it gives).
  await page.route('**/api/account/password/start', (route) => route.fulfill({
    status: 403,
    contentType: 'application/json',
    body: JSON.stringify({ code: 'reauthentication_required', message: 'Log in again to change your password.' }),
  }), { times: 1 });
  await page.fill('#new-password-confirm', fresh);
  await page.click('#change-password');
  await page.waitForFunction(() => /Log in again/.test(document.querySelector('#password-error')?.textContent ?? ''));
  assert.equal((await page.innerText('#password-error')).trim(),
    'Log in again, then change your password within 10 minutes.');
  await page.unrouteAll();

  await page.click('#change-password');
  await page.waitForSelector('#password-changed', { timeout: 60000 });
  assert.equal((await page.innerText('#password-changed')).trim(),
    'Password changed. Other sessions were signed out.');
  assert.equal(await page.locator('#password-error').count(), 0);
  assert.equal(await page.inputValue('#new-password'), '');
  await page.waitForFunction(() => document.querySelectorAll('tr.session-row').length === 1);
  // The other browser was signed out.
  await elsewhere.click('#account-link');
  await elsewhere.waitForURL(/\/login$/);

  await logout(page);
  assert.equal(await attemptLogin(page, user.username, user.password), WRONG);
  assert.equal(await attemptLogin(page, user.username, fresh), null);
  await page.locator('a.clinic-item', { hasText: 'Northgate Vision' }).click();
  await patientRows(page).first().waitFor();
  assert.match(await patientRows(page).first().innerText(), /Grace Hopper|Hopper/);
  assert.equal(await page.locator('tr.patient-row[data-flagged]').count(), 0);
  await page.context().close();
  await elsewhere.context().close();
});

test('left idle, the page drops every key and shows a lock screen; the password brings it back', async () => {
  const user = { username: `idle-${stamp}`, password: 'willow rocket hums 35 pears' };
  const page = await newPage(browser);
  await register(page, server.url, user.username, user.password);
  await (await createClinic(page, 'Quiet Street Eyes')).click();
  await page.waitForURL(/\/patients$/);
  const clinicId = page.url().match(/clinics\/([0-9a-f-]{36})/)[1];
  await page.click('#new-patient');
  await savePatient(page, { given_name: 'Ida', family_name: 'Lindqvist', date_of_birth: '1972-03-04' });
  await patientRows(page).first().waitFor();
  const patientsPath = `/clinics/${clinicId}/patients`;

  // Three seconds instead of ten minutes (read on every tick; no rebuild, no reload).
  await page.evaluate(() => localStorage.setItem('ov_idle_lock_seconds', '3'));
  const t0 = Date.now();
  await page.waitForSelector('#lock-screen', { timeout: 15000 });
  const lockedAfter = Date.now() - t0;
  assert.ok(lockedAfter < 10000, `locked after ${lockedAfter} ms`);
  assert.equal(await patientRows(page).count(), 0);
  const body = await page.locator('body').innerText();
  assert.doesNotMatch(body, /Lindqvist|Quiet Street Eyes/);
  assert.equal(await page.inputValue('#unlock-username'), user.username);
  await page.screenshot({ path: join(OUTPUT, 'lock-screen.png'), fullPage: true });
  assert.equal(await page.locator('#logout').count(), 0);

  // Any page of the clinic now shows the lock screen: the keys are gone, nothing can be opened.
  const noData = async (where) => {
    await page.waitForSelector('#lock-screen');
    await sleep(300);
    assert.equal(await page.locator('#lock-screen').count(), 1, where);
    assert.equal(await page.locator('tr.patient-row, tr.member-row, a.clinic-item, tr.session-row, #given_name').count(), 0, where);
    assert.doesNotMatch(await page.locator('body').innerText(), /Lindqvist|Quiet Street Eyes/, where);
  };
  // With the browser's Back and Forward buttons: the new-patient form, the clinic list…
  await page.goBack();
  await page.waitForURL(/\/patients\/new$/);
  await noData('back to the patient form');
  await page.goBack();
  await page.waitForURL(/\/patients$/);
  await page.goBack();
  await page.waitForURL(/\/clinics$/);
  await noData('back to the clinics');
  await page.goForward();
  await page.waitForURL(/\/patients$/);
  await noData('forward to the patients');
  // … and to any other address of the app without reloading it.
  for (const path of [`/clinics/${clinicId}/members`, '/account']) {
    await navigateInApp(page, path);
    await noData(path);
  }

  // A wrong password does not unlock.
  await page.fill('#unlock-password', 'certainly not my password');
  await page.click('#unlock-submit');
  await page.waitForSelector('#unlock-error');
  assert.equal((await page.innerText('#unlock-error')).trim(), WRONG);
  assert.equal(await page.locator('#lock-screen').count(), 1);

  // Back to ten minutes, then unlock: back on the page of before the lock, patients decrypted.
  await page.evaluate(() => localStorage.removeItem('ov_idle_lock_seconds'));
  await page.fill('#unlock-password', user.password);
  await page.click('#unlock-submit');
  await page.waitForURL((u) => u.pathname === patientsPath, { timeout: 60000 });
  await page.locator('tr.patient-row', { hasText: 'Lindqvist' }).waitFor();
  assert.equal(await page.locator('#lock-screen').count(), 0);
  // Unlocking was a new login: one session, the one of before the lock was ended.
  await page.click('#account-link');
  await page.waitForFunction(() => document.querySelectorAll('tr.session-row').length === 1);

  // Locked again, "Log out" on the lock screen ends the server session too.
  await page.evaluate(() => localStorage.setItem('ov_idle_lock_seconds', '2'));
  await page.waitForSelector('#lock-screen', { timeout: 15000 });
  await page.evaluate(() => localStorage.removeItem('ov_idle_lock_seconds'));
  await page.click('#lock-logout');
  await page.waitForURL(/\/login$/);
  await page.waitForSelector('#login-submit');
  assert.equal(await page.evaluate(async () => (await fetch('/api/session')).status), 401);
  await page.context().close();
});

test('the owner clears a member\'s login lockout and can sign the member out everywhere', async () => {
  const owner = { username: `boss-${stamp}`, password: 'juniper canyon sails 62 kites' };
  const member = { username: `desk-${stamp}`, password: 'pebble meadow tunes 48 owls' };
  const ownerPage = await newPage(browser);
  await register(ownerPage, server.url, owner.username, owner.password);
  await (await createClinic(ownerPage, 'Riverside Optics')).click();
  await ownerPage.waitForURL(/\/patients$/);
  await ownerPage.click('#members-link');
  await ownerPage.waitForURL(/\/members$/);
  const link = await createInvitation(ownerPage, 'front_desk');

  const memberPage = await newPage(browser);
  await registerThroughLink(memberPage, link, member);
  await acceptInvitation(memberPage);
  await admitInvitee(ownerPage, link);
  const row = ownerPage.locator('tr.member-row', { hasText: member.username });
  await row.waitFor();
  // Only on other members' rows.
  const mine = ownerPage.locator('tr.member-row', { hasText: owner.username });
  assert.equal(await mine.locator('.member-unlock, .member-revoke-sessions').count(), 0);
  assert.equal((await row.locator('.member-revoke-sessions').innerText()).trim(), 'Sign out everywhere');
  assert.equal((await row.locator('.member-unlock').innerText()).trim(), 'Clear login lockout');
  await ownerPage.screenshot({ path: join(OUTPUT, 'members-security.png'), fullPage: true });

  await logout(memberPage);
  const firstWait = await guessUntilLocked(memberPage, member.username, { wrongFirst: 6 });
  // Someone keeps guessing after the wait: the next wait doubles (4 s), and while it runs even the
  // right password is refused.
  await sleep(firstWait * 1000 + 500);
  assert.equal(await attemptLogin(memberPage, member.username, 'yet another wrong guess'), WRONG);
  const refused = await attemptLogin(memberPage, member.username, member.password);
  assert.match(refused, TOO_MANY);
  assert.ok(Number(refused.match(TOO_MANY)[1]) >= 2, refused);

  await row.locator('.member-unlock').click();
  await row.locator('.member-note').waitFor();
  assert.match(await row.locator('.member-note').innerText(), /lockout cleared/i);
  // At once, no waiting.
  assert.equal(await attemptLogin(memberPage, member.username, member.password), null);

  // Sign out everywhere: the member's next action lands on the login page.
  await row.locator('.member-revoke-sessions').click();
  await row.locator('.member-note', { hasText: 'Signed out everywhere.' }).waitFor();
  await memberPage.click('#account-link');
  await memberPage.waitForURL(/\/login$/);
  assert.match(await memberPage.locator('.notice').innerText(), ENDED);
  // The owner is still logged in.
  await ownerPage.click('#members-refresh');
  await ownerPage.locator('tr.member-row').nth(1).waitFor();
  assert.ok(ownerPage.url().endsWith('/members'));
  await ownerPage.context().close();
  await memberPage.context().close();
});

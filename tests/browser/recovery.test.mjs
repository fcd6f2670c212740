// The recovery kit in a real browser against a real server: made on the account page and shown
// once, then used on "Forgot password" to set a new password without losing any record. A wrong
// key is refused and changes nothing; the old password stops working.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { join } from 'node:path';
import {
  startServer, launchBrowser, newPage, register, createClinic, savePatient, patientRows,
  attemptLogin, navigateInApp, submitLogin, OUTPUT,
} from './harness.mjs';

const stamp = Date.now();

let server;
let browser;

before(async () => {
  server = await startServer('recovery');
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Fills and submits the "Forgot password" form already on screen. */
async function submitRecovery(page, { username, key, password }) {
  await page.evaluate(() => document.querySelector('#recover-error')?.setAttribute('data-seen', ''));
  await page.fill('#recover-username', username);
  await page.fill('#recover-key', key);
  await page.fill('#recover-new-password', password);
  await page.fill('#recover-new-password-confirm', password);
  await page.click('#recover-submit');
  await page.waitForFunction(() => document.querySelector('#recover-done') !== null
    || document.querySelector('#recover-error:not([data-seen])') !== null, null, { timeout: 60000 });
  const err = page.locator('#recover-error:not([data-seen])');
  return (await err.count()) ? (await err.innerText()).trim() : null;
}

test('a forgotten password is reset with the recovery kit; records survive, the old password fails', async () => {
  const user = { username: `forgetful-${stamp}`, password: 'walnut kestrel hums 41 tides' };
  const fresh = 'saffron otter drifts 96 lanterns';
  const page = await newPage(browser);

  // Registration says plainly what a forgotten password without a kit means.
  await page.goto(`${server.url}/register`);
  assert.match(await page.locator('.warning').innerText(), /recovery kit/);
  await register(page, server.url, user.username, user.password);
  const clinic = await createClinic(page, 'Kit Clinic');
  await clinic.click();
  await page.waitForURL(/\/patients$/);
  const clinicUrl = page.url();
  await page.click('#new-patient');
  await savePatient(page, { given_name: 'Rosa', family_name: 'Recovered', date_of_birth: '1970-05-06' });
  assert.equal(await patientRows(page).count(), 1);

  // After registration every page asks for the kit, linking to the account page.
  assert.match(await page.innerText('#recovery-reminder'), /Create your recovery kit now/);

  // The account page: no kit yet; make one and read it once.
  await page.click('#go-to-recovery');
  await page.waitForURL(/\/account#recovery$/);
  await page.waitForFunction(() => /no recovery kit/.test(document.querySelector('#recovery-status')?.textContent ?? ''));
  assert.equal((await page.innerText('#recovery-create')).trim(), 'Create a recovery kit');
  await page.click('#recovery-create');
  await page.waitForSelector('#recovery-key');
  const key = (await page.innerText('#recovery-key')).trim();
  assert.equal(key.length, 64, key);
  assert.equal((await page.innerText('#recovery-username')).trim(), user.username);
  assert.match(await page.innerText('#recovery-kit'),
    /Without your password and this key your data is gone: nobody, not the clinic and not the server's operator, can recover it\./);
  await page.waitForSelector('#recovery-print');
  await page.waitForSelector('#recovery-status[data-configured="true"]');
  assert.equal(await page.locator('#recovery-reminder').count(), 0);
  assert.equal((await page.innerText('#recovery-create')).trim(), 'Replace my recovery kit');
  await page.locator('#recovery-kit').screenshot({ path: join(OUTPUT, 'recovery-kit.png') });

  // Log out; "Forgot password" from the login page.
  await page.click('#logout');
  await page.waitForURL(/\/login$/);
  await page.click('#forgot-password');
  await page.waitForURL(/\/recover$/);

  // Not a key at all, then a well-formed key that is not this account's: both refused.
  assert.equal(await submitRecovery(page, { username: user.username, key: 'not a key', password: fresh }),
    'That is not a recovery key.');
  const wrong = key.split('').map((c) => (c === '-' ? c : c === 'A' ? 'B' : 'A')).join('');
  assert.equal(await submitRecovery(page, { username: user.username, key: wrong, password: fresh }),
    'That recovery key does not fit this account.');

  // The right key (typed in lower case with spaces) sets the new password.
  assert.equal(await submitRecovery(page, {
    username: user.username, key: key.toLowerCase().replaceAll('-', ' '), password: fresh,
  }), null);
  assert.equal((await page.innerText('#recover-done')).trim(), 'Password reset. Log in with the new password.');
  await page.click('#recover-login');
  await page.waitForURL(/\/login$/);

  // The old password fails; the new one works and the patient is still readable.
  assert.equal(await attemptLogin(page, user.username, user.password), 'Wrong username or password.');
  assert.equal(await attemptLogin(page, user.username, fresh), null);
  await navigateInApp(page, new URL(clinicUrl).pathname);
  await patientRows(page).first().waitFor();
  assert.equal(await patientRows(page).count(), 1);
  assert.match(await patientRows(page).first().innerText(), /Recovered/);
  assert.deepEqual(page.consoleErrors.filter((e) => !/401|403|404/.test(e)), []);
  await page.context().close();
});

/** RFC 4648 base32 to bytes (the authenticator secret). */
function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const ch of text.toUpperCase().replace(/[\s=-]/g, '')) {
    value = (value << 5) | alphabet.indexOf(ch);
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** RFC 6238 TOTP (HMAC-SHA1, 30 s steps, 6 digits) for the current step. */
function totpNow(secret) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30)));
  const mac = createHmac('sha1', base32Decode(secret)).update(msg).digest();
  const o = mac[mac.length - 1] & 0x0f;
  const bin = ((mac[o] & 0x7f) << 24) | (mac[o + 1] << 16) | (mac[o + 2] << 8) | mac[o + 3];
  return String(bin % 1_000_000).padStart(6, '0');
}

test('with a second factor, the reset also asks for a code (a one-time recovery code works)', async () => {
  const user = { username: `forgetful-mfa-${stamp}`, password: 'juniper badger paints 27 kites' };
  const fresh = 'obsidian plover naps 83 meadows';
  const page = await newPage(browser);
  await register(page, server.url, user.username, user.password);
  await page.click('#account-link');
  await page.waitForURL(/\/account$/);

  // An authenticator, then the recovery kit.
  await page.click('#mfa-enroll');
  const secret = (await page.innerText('#mfa-secret')).replace(/\s/g, '');
  await page.fill('#mfa-confirm-code', totpNow(secret));
  await page.click('#mfa-confirm');
  const codes = page.locator('#recovery-codes li.recovery-code');
  await codes.first().waitFor();
  const oneTime = (await codes.first().innerText()).trim();
  await page.waitForSelector('#recovery-status:not(:empty)');
  await page.click('#recovery-create');
  const key = (await page.innerText('#recovery-key')).trim();
  await page.click('#logout');
  await page.waitForURL(/\/login$/);

  // Without a code the form asks for one; with a recovery code the reset goes through.
  await page.click('#forgot-password');
  await page.waitForURL(/\/recover$/);
  assert.equal(await page.locator('#recover-code').count(), 0);
  const asked = await submitRecovery(page, { username: user.username, key, password: fresh });
  assert.match(asked, /second factor/);
  await page.fill('#recover-code', oneTime);
  assert.equal(await submitRecovery(page, { username: user.username, key, password: fresh }), null);

  // The new password is accepted (the code step follows); the old one is not.
  await page.click('#recover-login');
  await page.waitForURL(/\/login$/);
  assert.equal(await attemptLogin(page, user.username, user.password), 'Wrong username or password.');
  await submitLogin(page, user.username, fresh);
  await page.waitForSelector('#mfa-code', { timeout: 60000 });
  await page.context().close();
});

// The second factor in a real browser against a real server: setting up an authenticator on the
// account page (QR code and secret, first code, recovery codes shown once), the two-step login
// (a wrong code, the right one, a recovery code), and a clinic whose owner requires a second
// factor keeping a member without one out, with a way to the account page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { join } from 'node:path';
import {
  startServer, launchBrowser, newPage, register, createClinic, createInvitation,
  registerThroughLink, acceptInvitation, admitInvitee, submitLogin, navigateInApp, OUTPUT,
} from './harness.mjs';

const stamp = Date.now();

let server;
let browser;

before(async () => {
  server = await startServer('mfa');
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/** RFC 4648 base32 (no padding needed) to bytes. */
function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const clean = text.toUpperCase().replace(/[\s=-]/g, '');
  let bits = 0;
  let value = 0;
  const out = [];
  for (const ch of clean) {
    const v = alphabet.indexOf(ch);
    if (v < 0) throw new Error(`not base32: ${ch}`);
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** RFC 6238 TOTP (HMAC-SHA1, 30 s steps, 6 digits) for a given step counter. */
function totp(secret, counter) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac('sha1', base32Decode(secret)).update(msg).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const bin = ((mac[offset] & 0x7f) << 24) | (mac[offset + 1] << 16) | (mac[offset + 2] << 8) | mac[offset + 3];
  return String(bin % 1_000_000).padStart(6, '0');
}

const step = () => Math.floor(Date.now() / 1000 / 30);

test('the RFC 6238 test vector', () => {
  // SHA1 secret "12345678901234567890", T = 59 s: 94287082 (8 digits) → 287082.
  const secret = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
  assert.equal(totp(secret, Math.floor(59 / 30)), '287082');
});

async function logout(page) {
  await page.click('#logout');
  await page.waitForURL(/\/login$/);
  await page.waitForSelector('#login-submit');
}

test('authenticator set-up, two-step login with a code or a recovery code, and a clinic that requires it', async () => {
  const owner = { username: `mfa-owner-${stamp}`, password: 'copper lantern hums 73 tides' };
  const desk = { username: `mfa-desk-${stamp}`, password: 'velvet quarry sings 41 moths' };
  const page = await newPage(browser);
  await register(page, server.url, owner.username, owner.password);

  // Account page: set up an authenticator.
  await page.click('#account-link');
  await page.waitForURL(/\/account$/);
  await page.waitForSelector('#mfa #mfa-enroll');
  assert.match(await page.innerText('#mfa-status'), /off/);
  await page.click('#mfa-enroll');
  await page.waitForSelector('#mfa-secret');
  const qr = page.locator('#mfa-qr');
  await qr.waitFor();
  assert.match(await qr.getAttribute('src'), /^data:image\/svg\+xml;base64,/);
  // The QR image loaded (the CSP allows data: images) and has a size.
  assert.ok(await qr.evaluate((img) => img.complete && img.naturalWidth > 0), 'the QR code renders');
  await page.locator('#mfa').screenshot({ path: join(OUTPUT, 'mfa.png') });
  const secret = (await page.innerText('#mfa-secret')).replace(/\s/g, '');
  assert.match(secret, /^[A-Z2-7]{16,}$/);

  let confirmedStep = step();
  await page.fill('#mfa-confirm-code', totp(secret, confirmedStep));
  await page.click('#mfa-confirm');
  const codes = page.locator('#recovery-codes li.recovery-code');
  await codes.first().waitFor();
  assert.equal(await codes.count(), 10);
  const recovery = (await codes.allInnerTexts()).map((c) => c.trim());
  assert.equal(new Set(recovery).size, 10);
  await page.waitForFunction(() => /Authenticator on, 10 recovery codes left/
    .test(document.querySelector('#mfa-status')?.textContent ?? ''));
  assert.ok(await page.isVisible('#mfa-disable-code'));
  assert.ok(await page.isVisible('#mfa-disable'));

  // Log out; the password alone no longer logs in: a code step follows.
  await logout(page);
  await submitLogin(page, owner.username, owner.password);
  await page.waitForSelector('#mfa-code');
  assert.equal(new URL(page.url()).pathname, '/login');
  const sessionBefore = await page.evaluate(() => fetch('/api/session').then((r) => r.status));
  assert.equal(sessionBefore, 401, 'no session before the code');
  // A wrong code is refused with the server's message.
  const right = totp(secret, confirmedStep + 1);
  const wrong = String((Number(right) + 1) % 1_000_000).padStart(6, '0');
  await page.fill('#mfa-code', wrong);
  await page.click('#mfa-submit');
  await page.waitForSelector('#mfa-error');
  assert.ok((await page.innerText('#mfa-error')).trim().length > 0);
  assert.equal(new URL(page.url()).pathname, '/login');
  // The next step's code (the current one was spent confirming) logs in; the clinics show.
  await page.fill('#mfa-code', right);
  await page.click('#mfa-submit');
  await page.waitForURL(/\/clinics$/, { timeout: 60000 });
  await page.waitForSelector('#clinic-name');

  // Log out; log in with a recovery code instead.
  await logout(page);
  await submitLogin(page, owner.username, owner.password);
  await page.waitForSelector('#mfa-code');
  await page.click('#use-recovery');
  await page.fill('#recovery-code', recovery[0]);
  await page.click('#mfa-submit');
  await page.waitForURL(/\/clinics$/, { timeout: 60000 });
  await page.waitForSelector('#clinic-name');
  await page.click('#account-link');
  await page.waitForFunction(() => /Authenticator on, 9 recovery codes left/
    .test(document.querySelector('#mfa-status')?.textContent ?? ''));
  await page.click('a[href="/clinics"]');
  await page.waitForURL(/\/clinics$/);

  // A clinic; a front-desk member without a second factor joins it.
  const link = await createClinic(page, `MFA Clinic ${stamp}`);
  await link.click();
  await page.waitForURL(/\/patients$/);
  await page.click('#members-link');
  await page.waitForSelector('#security-checklist');
  await page.waitForSelector('#policy-form');
  assert.ok(await page.isVisible('#policy-require-mfa'));
  assert.match(await page.innerText('#policy-form'), /NIST SP 800-63B/);
  const invite = await createInvitation(page, 'front_desk');
  const deskPage = await newPage(browser);
  await registerThroughLink(deskPage, invite, desk);
  await acceptInvitation(deskPage);
  await admitInvitee(page, invite);
  await page.waitForFunction((name) => document.querySelector('#checklist-no-mfa')?.textContent.includes(name),
    desk.username);
  // Each row of another member offers a forced password change.
  const deskRow = page.locator('tr.member-row', { hasText: desk.username });
  await deskRow.locator('.member-require-password-change').waitFor();

  // Out-of-range values are refused with the server's message.
  await page.fill('#policy-idle-minutes', '4');
  await page.click('#policy-save');
  await page.waitForSelector('#policy-error');
  await page.fill('#policy-idle-minutes', '15');
  // Requiring a second factor works for an owner who has one.
  await page.check('#policy-require-mfa');
  await page.click('#policy-save');
  await page.waitForSelector('#policy-note');
  assert.equal(await page.isVisible('#policy-error'), false);

  // The member without one is kept out, with a way to the account page.
  await navigateInApp(deskPage, '/clinics');
  const goToAccount = deskPage.locator('a#go-to-account');
  await goToAccount.waitFor();
  assert.match(await deskPage.innerText('#policy-block'), /second factor/);
  const { clinicId } = { clinicId: new URL(invite).pathname.split('/')[2] };
  await navigateInApp(deskPage, `/clinics/${clinicId}/patients`);
  await goToAccount.waitFor();
  assert.match(await deskPage.innerText('#policy-block'), /second factor/);
  assert.equal(await deskPage.locator('tr.patient-row').count(), 0);
  await goToAccount.click();
  await deskPage.waitForURL(/\/account$/);
  await deskPage.waitForSelector('#mfa-enroll');
  // Once the member has set up an authenticator, the clinic opens.
  await deskPage.click('#mfa-enroll');
  await deskPage.waitForSelector('#mfa-secret');
  const deskSecret = (await deskPage.innerText('#mfa-secret')).replace(/\s/g, '');
  await deskPage.fill('#mfa-confirm-code', totp(deskSecret, step()));
  await deskPage.click('#mfa-confirm');
  await deskPage.locator('#recovery-codes li.recovery-code').first().waitFor();
  const deskRecovery = (await deskPage.locator('li.recovery-code').allInnerTexts()).map((c) => c.trim());
  await navigateInApp(deskPage, `/clinics/${clinicId}/patients`);
  // The clinic's name shows only once its roster and keys opened.
  await deskPage.waitForFunction((name) => document.querySelector('main h1')?.textContent.includes(name),
    `MFA Clinic ${stamp}`);
  assert.equal(await deskPage.locator('#policy-block').count(), 0);
  // Turning it off needs a code (a recovery code here); then the clinic keeps the member out again.
  await navigateInApp(deskPage, '/account');
  await deskPage.waitForSelector('#mfa-disable-code');
  await deskPage.fill('#mfa-disable-code', deskRecovery[0]);
  await deskPage.click('#mfa-disable');
  await deskPage.waitForSelector('#mfa-enroll');
  await navigateInApp(deskPage, `/clinics/${clinicId}/patients`);
  await goToAccount.waitFor();

  // The idle lock screen asks for the second factor too (here a recovery code), then goes back.
  const membersUrl = page.url();
  await page.evaluate(() => localStorage.setItem('ov_idle_lock_seconds', '2'));
  await page.waitForSelector('#lock-screen', { timeout: 15000 });
  await page.evaluate(() => localStorage.removeItem('ov_idle_lock_seconds'));
  await page.fill('#unlock-password', owner.password);
  await page.click('#unlock-submit');
  await page.waitForSelector('#lock-screen #mfa-code', { timeout: 60000 });
  await page.click('#use-recovery');
  await page.fill('#recovery-code', recovery[1]);
  await page.click('#mfa-submit');
  await page.waitForSelector('#lock-screen', { state: 'detached', timeout: 60000 });
  assert.equal(page.url(), membersUrl);
  await page.waitForSelector('#security-checklist');

  assert.deepEqual(page.consoleErrors.filter((e) => !/401|403|409|400|Unauthorized|Forbidden|Conflict|Bad Request/.test(e)), []);
  await deskPage.context().close();
  await page.context().close();
});

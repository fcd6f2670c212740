// Passkeys as the second factor, in a real browser against a real server: Chromium's virtual
// authenticator (Chrome DevTools Protocol, WebAuthn domain) stands in for a security key. The
// page is opened as http://localhost:<port>, because browsers refuse IP addresses as a
// passkey's relying party; the server still listens on 127.0.0.1 only.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startServer, launchBrowser, newPage, register, submitLogin, OUTPUT } from './harness.mjs';

const stamp = Date.now();

let server;
let browser;
let url;

before(async () => {
  server = await startServer('passkeys');
  url = server.url.replace('127.0.0.1', 'localhost');
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A CTAP2 platform authenticator with user verification that answers without a prompt. */
async function addVirtualAuthenticator(page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return { cdp, authenticatorId };
}

async function logout(page) {
  await page.click('#logout');
  await page.waitForURL(/\/login$/);
  await page.waitForSelector('#login-submit');
}

async function openAccount(page) {
  await page.click('#account-link');
  await page.waitForURL(/\/account$/);
  await page.waitForSelector('#passkey-add');
}

test('register a passkey, log in with it, with a recovery code, and without it once removed', async () => {
  const user = { username: `passkey-${stamp}`, password: 'amber pylon drifts 58 ferns' };
  const page = await newPage(browser);
  const { cdp, authenticatorId } = await addVirtualAuthenticator(page);
  await register(page, url, user.username, user.password);

  // Register a passkey under a name; fresh recovery codes are shown once.
  await openAccount(page);
  await page.click('#passkey-add');
  await page.waitForSelector('#passkey-error');
  assert.match(await page.textContent('#passkey-error'), /Name the passkey/);
  await page.fill('#passkey-name', 'Reception laptop');
  await page.click('#passkey-add');
  await page.waitForSelector('li.passkey');
  assert.equal(await page.locator('li.passkey').count(), 1);
  assert.equal(await page.textContent('li.passkey .passkey-name'), 'Reception laptop');
  assert.match(await page.textContent('li.passkey'), /not used yet/);
  const codes = await page.locator('#recovery-codes .recovery-code').allTextContents();
  assert.equal(codes.length, 10);
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  assert.equal(credentials.length, 1, 'the authenticator holds one credential');
  assert.equal(credentials[0].rpId, 'localhost');
  await page.screenshot({ path: join(OUTPUT, 'passkeys-registered.png'), fullPage: true });

  // Log in again: the password is not enough, the passkey answers the second step.
  await logout(page);
  await submitLogin(page, user.username, user.password);
  await page.waitForSelector('#use-passkey');
  assert.equal(await page.locator('#mfa-code').count(), 0, 'no TOTP field without an authenticator app');
  await page.screenshot({ path: join(OUTPUT, 'passkeys-login-step.png'), fullPage: true });
  // First, a real assertion whose signature is altered on the way: the server refuses it.
  let tampered = 0;
  await page.route('**/api/session/mfa', async (route) => {
    const body = route.request().postDataJSON();
    const sig = body.passkey.response.signature;
    const i = Math.floor(sig.length / 2);
    body.passkey.response.signature = sig.slice(0, i) + (sig[i] === 'A' ? 'B' : 'A') + sig.slice(i + 1);
    tampered += 1;
    await route.continue({ postData: JSON.stringify(body) });
  });
  await page.click('#use-passkey');
  await page.waitForSelector('#mfa-error');
  assert.equal(tampered, 1);
  assert.match(await page.textContent('#mfa-error'), /not right/);
  await page.unroute('**/api/session/mfa');
  // Then the untouched answer to a new challenge passes.
  await page.click('#use-passkey');
  await page.waitForURL(/\/clinics$/);
  const after = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  assert.ok(after.credentials[0].signCount > credentials[0].signCount, 'the authenticator signed');
  await openAccount(page);
  await page.waitForSelector('li.passkey');
  assert.match(await page.textContent('li.passkey'), /last used/);

  // A recovery code from the passkey registration also answers the second step, once.
  await logout(page);
  await submitLogin(page, user.username, user.password);
  await page.waitForSelector('#recovery-code');
  await page.fill('#recovery-code', codes[0]);
  await page.click('#mfa-submit');
  await page.waitForURL(/\/clinics$/);

  // Removing the only passkey (the login is fresh) turns the second step off.
  await openAccount(page);
  await page.waitForSelector('li.passkey');
  await page.click('li.passkey .passkey-remove');
  await page.waitForFunction(() => document.querySelectorAll('li.passkey').length === 0);
  await logout(page);
  await submitLogin(page, user.username, user.password);
  await page.waitForURL(/\/clinics$/);

  assert.deepEqual(page.consoleErrors.filter((e) => !/status of 4\d\d/.test(e)), []);
  await page.close();
});

test('a passkey from another authenticator does not pass', async () => {
  const user = { username: `passkey-other-${stamp}`, password: 'cobalt meadow hums 24 kites' };
  const page = await newPage(browser);
  const first = await addVirtualAuthenticator(page);
  await register(page, url, user.username, user.password);
  await openAccount(page);
  await page.fill('#passkey-name', 'Key A');
  await page.click('#passkey-add');
  await page.waitForSelector('li.passkey');
  await logout(page);

  // Swap the authenticator: the new one holds no credential for this account.
  await first.cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId: first.authenticatorId });
  await first.cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2', transport: 'usb', hasResidentKey: false, hasUserVerification: true,
      isUserVerified: true, automaticPresenceSimulation: true,
    },
  });
  await submitLogin(page, user.username, user.password);
  await page.waitForSelector('#use-passkey');
  await page.click('#use-passkey');
  await page.waitForSelector('#mfa-error', { timeout: 90000 });
  assert.match(await page.textContent('#mfa-error'), /cancelled or timed out|failed/);
  assert.match(page.url(), /\/login$/);
  await page.close();
});

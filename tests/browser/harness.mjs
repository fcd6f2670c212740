// Shared pieces of the browser tests: a real server process on 127.0.0.1 with a temporary sled
// directory, Debian's chromium driven by playwright-core, and the UI steps the tests repeat.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, createWriteStream, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const OUTPUT = process.env.OV_TEST_OUTPUT || join(ROOT, 'test-output');
mkdirSync(OUTPUT, { recursive: true });

const SERVER_BIN = process.env.OPTOVAULT_SERVER_BIN || join(ROOT, 'target/debug/optovault-server');
const STATIC_DIR = process.env.OV_DIST_DIR ? resolve(process.env.OV_DIST_DIR) : join(ROOT, 'dist');

/** Starts the real server binary; resolves once it prints its address. */
export async function startServer(name) {
  if (!existsSync(SERVER_BIN)) throw new Error(`missing ${SERVER_BIN}: run cargo build -p optovault-server`);
  if (!existsSync(join(STATIC_DIR, 'index.html'))) throw new Error('missing dist/: run scripts/build-client.sh');
  const dataDir = mkdtempSync(join(tmpdir(), `ov-${name}-data-`));
  const logPath = join(OUTPUT, `server-${name}.log`);
  const log = createWriteStream(logPath);
  const proc = spawn(SERVER_BIN, ['--addr', '127.0.0.1:0', '--data-dir', dataDir, '--static-dir', STATIC_DIR], {
    env: { ...process.env, RUST_LOG: 'info,tower_http=debug' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stderr.pipe(log);
  const url = await new Promise((resolveUrl, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('server did not start in 20 s')), 20000);
    proc.stdout.on('data', (chunk) => {
      log.write(chunk);
      buf += chunk;
      const m = buf.match(/listening on (http:\/\/[0-9.:]+)/);
      if (m) { clearTimeout(timer); resolveUrl(m[1]); }
    });
    proc.on('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  proc.stdout.on('data', (c) => log.write(c));
  return {
    url, dataDir, logPath, proc,
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.on('exit', r));
      proc.kill('SIGTERM');
      await exited;
      await new Promise((r) => log.end(r));
    },
  };
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run'],
  });
}

/** A fresh browser context whose console errors and CSP violations are collected. */
export async function newPage(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') page.consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => page.consoleErrors.push(String(e)));
  // Races the client settles by design answer 409 and are handled: a write that raced another
  // (`version_conflict`: reload and retry), an audit key or checkpoint another task of the same
  // browser made first (`audit_key_exists`, `audit_key_shared`, `checkpoint_stale`). The browser
  // logs each 409 as an error, so tests tell those apart from real failures with
  // `unexpectedErrors`. They come more often when requests are slower (a loaded machine,
  // PostgreSQL's extra round trips).
  page.versionConflicts = [];
  page.otherConflicts = [];
  page.on('response', async (r) => {
    if (r.status() !== 409) return;
    const body = await r.json().catch(() => ({}));
    const what = `${r.request().method()} ${new URL(r.url()).pathname}`;
    if (SETTLED_RACES.includes(body.code)) page.versionConflicts.push(`${body.code} on ${what}`);
    else page.otherConflicts.push(`409 ${body.code} on ${what}: ${body.message}`);
  });
  page.setDefaultTimeout(30000);
  return page;
}

const SETTLED_RACES = ['version_conflict', 'audit_key_exists', 'audit_key_shared', 'checkpoint_stale'];

/** The page's console errors, less one "status of 409" per race the client settled. */
export function unexpectedErrors(page) {
  let retried = page.versionConflicts.length;
  const left = page.consoleErrors.filter((e) => {
    if (retried > 0 && /status of 409/.test(e)) { retried -= 1; return false; }
    return true;
  });
  // Name the other conflicts: the console only says "409".
  return left.length ? [...left, ...page.otherConflicts] : left;
}

export async function register(page, url, username, password) {
  await page.goto(`${url}/register`);
  await page.fill('#username', username);
  await page.fill('#password', password);
  await page.fill('#password-confirm', password);
  await page.click('#register-submit');
  await page.waitForURL(/\/clinics$/, { timeout: 60000 });
}

export async function login(page, url, username, password) {
  await page.goto(`${url}/login`);
  await page.fill('#username', username);
  await page.fill('#password', password);
  await page.click('#login-submit');
}

export async function createClinic(page, name) {
  await page.fill('#clinic-name', name);
  await page.click('#create-clinic');
  const link = page.locator('a.clinic-item', { hasText: name });
  await link.waitFor();
  return link;
}

export const PATIENT_FIELDS = ['given_name', 'family_name', 'date_of_birth', 'phone', 'email',
  'address-line1', 'address-line2', 'address-city', 'address-region', 'address-postal_code',
  'address-country', 'insurance_member_id', 'notes'];

/** Fills the patient form (already open) and saves; waits for the list to come back. */
export async function savePatient(page, fields) {
  for (const [id, value] of Object.entries(fields)) {
    if (id === 'sex') await page.selectOption('#sex', value);
    else await page.fill(`#${id}`, value);
  }
  await page.click('#save-patient');
  await page.waitForURL(/\/patients$/);
}

export function patientRows(page) {
  return page.locator('tr.patient-row');
}

/** Fills and submits the registration form already on screen (no navigation, no wait). */
export async function submitRegistration(page, username, password) {
  await page.fill('#username', username);
  await page.fill('#password', password);
  await page.fill('#password-confirm', password);
  await page.click('#register-submit');
}

/** Fills and submits the login form already on screen (no navigation, no wait). */
export async function submitLogin(page, username, password) {
  await page.fill('#username', username);
  await page.fill('#password', password);
  await page.click('#login-submit');
}

/** Creates an invitation on the members page (already open); returns the new link. */
export async function createInvitation(page, role, hours) {
  const before = await page.evaluate(() => document.querySelector('#invite-link')?.value ?? '');
  await page.selectOption('#invite-role', role);
  if (hours !== undefined) await page.fill('#invite-hours', String(hours));
  await page.click('#invite-create');
  await page.waitForFunction((prev) => {
    const v = document.querySelector('#invite-link')?.value;
    return v && v !== prev;
  }, before);
  return page.locator('#invite-link').inputValue();
}

/** `{clinicId, invitationId}` of an invitation link. */
export function invitationIds(link) {
  const m = new URL(link).pathname.match(/^\/invite\/([0-9a-f-]{36})\/([0-9a-f-]{36})$/);
  if (!m) throw new Error(`not an invitation link: ${link}`);
  return { clinicId: m[1], invitationId: m[2] };
}

/** Opens an invitation link without keys in memory and registers from there (back on the link). */
export async function registerThroughLink(page, link, user) {
  await page.goto(link);
  await page.click('#invite-register');
  await page.waitForURL(/\/register$/);
  await submitRegistration(page, user.username, user.password);
  await page.waitForURL(/\/invite\//, { timeout: 60000 });
}

/** Accepts the invitation on screen; returns the safety number shown. */
export async function acceptInvitation(page) {
  await page.waitForSelector('#invite-role-info');
  await page.click('#invite-accept');
  await page.waitForSelector('#invite-safety-number');
  return (await page.innerText('#invite-safety-number')).trim();
}

/** The owner's row of an invitation on the members page. */
export function invitationRow(page, link) {
  return page.locator(`tr.invitation-row[data-id="${invitationIds(link).invitationId}"]`);
}

/** On the members page (open, as owner): admits an accepted invitee once its safety number shows. */
export async function admitInvitee(page, link) {
  await page.click('#members-refresh');
  const row = invitationRow(page, link);
  await row.locator('.safety-number').waitFor();
  await row.locator('.invitation-admit').click();
  await row.waitFor({ state: 'detached' });
}

/** Opens a patient from the list by a text of its row; waits for the form to be filled. */
export async function openPatient(page, text) {
  await page.locator('tr.patient-row', { hasText: text }).locator('a.patient-link').click();
  await page.waitForSelector('#given_name');
  await page.waitForFunction(() => document.querySelector('#given_name')?.value !== '');
}

/**
 * Submits the login form already on screen and waits for its outcome: resolves with the text of a
 * new `#login-error`, or with null once the clinics page shows (logged in).
 */
export async function attemptLogin(page, username, password) {
  // Mark the error of the previous attempt, so only a new one counts.
  await page.evaluate(() => document.querySelector('#login-error')?.setAttribute('data-seen', ''));
  await submitLogin(page, username, password);
  await page.waitForFunction(() => location.pathname === '/clinics'
    || document.querySelector('#login-error:not([data-seen])') !== null, null, { timeout: 60000 });
  if (new URL(page.url()).pathname === '/clinics') return null;
  return (await page.innerText('#login-error:not([data-seen])')).trim();
}

/** In-app navigation (no reload: memory, and so the keys or their absence, stays as it is). */
export async function navigateInApp(page, path) {
  await page.evaluate((p) => {
    history.pushState(null, '', p);
    dispatchEvent(new PopStateEvent('popstate', { state: null }));
  }, path);
  await page.waitForURL((u) => u.pathname === path.split(/[?#]/)[0]);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Every regular file under `dir` (a server's data directory holds its admin socket too). */
export function dataFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return dataFiles(p);
    return e.isFile() ? [p] : [];
  });
}

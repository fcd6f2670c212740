// Moving a clinic to another server in real browsers against two real servers: the owner makes a
// recovery kit and a clinic on server A and downloads its encrypted copy; on server B, which has
// never seen them, the owner picks the copy and types the recovery key and a new password. The
// browser checks the copy with the keys from the kit (progress shown), uploads it signed (progress
// shown), sets the password and signs in; the patient opens on B, and the new password logs in.
// A wrong recovery key uploads nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  startServer, launchBrowser, newPage, register, createClinic, savePatient, patientRows,
  openPatient, navigateInApp, submitLogin, OUTPUT,
} from './harness.mjs';

const stamp = Date.now();
const owner = { username: `mover-${stamp}`, password: 'copper heron folds 38 maps' };
const fresh = 'linden marten sings 74 domes';
const CLINIC = 'Wexcombe Moving Optometry';
const FAMILY = 'Wexcombeova';

let serverA;
let serverB;
let browser;
const s = {};

before(async () => {
  serverA = await startServer('import-a');
  serverB = await startServer('import-b');
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await serverA?.stop();
  await serverB?.stop();
});

test('on server A the owner has a recovery kit, a clinic with a patient, and downloads its copy', async () => {
  const page = await newPage(browser);
  await register(page, serverA.url, owner.username, owner.password);
  await (await createClinic(page, CLINIC)).click();
  await page.waitForURL(/\/patients$/);
  s.clinicId = page.url().match(/clinics\/([0-9a-f-]{36})/)[1];
  await page.click('#new-patient');
  await savePatient(page, { given_name: 'Ilse', family_name: FAMILY, date_of_birth: '1966-03-14', phone: '555-0142' });
  await patientRows(page).first().waitFor();
  await page.click('#go-to-recovery');
  await page.waitForURL(/\/account#recovery$/);
  await page.waitForFunction(() => /no recovery kit/.test(document.querySelector('#recovery-status')?.textContent ?? ''));
  await page.click('#recovery-create');
  await page.waitForSelector('#recovery-key');
  s.key = (await page.innerText('#recovery-key')).trim();
  await page.waitForSelector('#recovery-status[data-configured="true"]');
  await navigateInApp(page, `/clinics/${s.clinicId}/backup`);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-download')]);
  s.file = join(OUTPUT, `import-copy-${stamp}.ovbk`);
  await download.saveAs(s.file);
  await page.waitForSelector('#export-done');
  await page.context().close();
});

async function fillImport(page, key) {
  await page.setInputFiles('#import-file', s.file);
  await page.fill('#import-username', owner.username);
  await page.fill('#import-key', key);
  await page.fill('#import-password', fresh);
  await page.fill('#import-password-confirm', fresh);
}

test('a wrong recovery key uploads nothing', async () => {
  const page = await newPage(browser);
  await page.goto(`${serverB.url}/login`);
  await page.click('#import-link');
  await page.waitForURL(/\/import$/);
  // A well-formed key that is not the owner's: its first character replaced by another one of
  // the key's own alphabet.
  const first = s.key[0];
  const other = [...s.key].find((c) => c !== first && c !== '-');
  await fillImport(page, other + s.key.slice(1));
  await page.click('#import-submit');
  const error = await page.waitForSelector('#import-error', { timeout: 60000 });
  assert.match(await error.textContent(), /recovery key does not fit this account/);
  assert.equal(await page.locator('#import-done').count(), 0);
  // Nothing reached server B: the next test's import of the same clinic succeeds (a second one
  // would be refused as existing).
  await page.context().close();
});

test('on server B the owner imports the copy, with progress, and works in the clinic there', async () => {
  const page = await newPage(browser);
  await page.goto(`${serverB.url}/import`);
  await page.evaluate(() => {
    window.__steps = new Set();
    new MutationObserver(() => {
      const step = document.querySelector('#import-step');
      const bar = document.querySelector('#import-progress');
      if (step && bar) window.__steps.add(`${step.textContent}|${bar.getAttribute('value')}`);
    }).observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
  });
  await fillImport(page, s.key);
  await page.click('#import-submit');
  const done = await page.waitForSelector('#import-done', { timeout: 120000 });
  assert.match(await done.textContent(), /The clinic is here/);
  assert.equal(await done.getAttribute('data-files'), '0');
  assert.ok(Number(await done.getAttribute('data-records')) >= 2, await done.textContent());
  const steps = await page.evaluate(() => [...window.__steps]);
  for (const label of ['Reading the copy', 'Opening every record', 'Uploading']) {
    assert.ok(steps.some((x) => x.startsWith(label)), `${label} shown: ${steps.join(' / ')}`);
  }
  await page.screenshot({ path: join(OUTPUT, 'import-done.png'), fullPage: true });
  // Signed in on B with the new password, in the same clinic (same id), the patient opens.
  await page.click('#import-open');
  await page.waitForURL(new RegExp(`/clinics/${s.clinicId}/patients$`));
  await openPatient(page, FAMILY);
  assert.equal(await page.inputValue('#given_name'), 'Ilse');
  await page.context().close();

  // The new password logs in on B from a fresh browser; the old one does not exist there.
  const again = await newPage(browser);
  await again.goto(`${serverB.url}/login`);
  await submitLogin(again, owner.username, fresh);
  await again.waitForURL(/\/clinics/);
  assert.ok(!again.url().includes('/login'));
  await again.context().close();
});

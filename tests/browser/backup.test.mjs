// The clinic's own encrypted copy in a real browser against a real server: the owner downloads it
// (streamed, with a progress bar, over a throttled connection), the file is an OptoVault archive
// holding ciphertext only, and the owner's browser checks it: the member list, every record and
// earlier version opened with the owner's keys, the attachment decrypted and matched against its
// checksum, the audit chain. A copy with one byte changed is refused with where the damage is.
// The front desk has no backup page. The owner's checklist says no verified server backup is on
// record (this server runs without scheduled backups).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  startServer, launchBrowser, newPage, register, createClinic, savePatient, patientRows,
  openPatient, navigateInApp, OUTPUT,
} from './harness.mjs';

const stamp = Date.now();
const owner = { username: `bowner-${stamp}`, password: 'amber falcon counts 52 lenses' };
const CLINIC = 'Harrowgate Backup Optometry';
const FAMILY = 'Harrowgatevska';
const NOTE_PHONE = '555-0177';

let server;
let browser;
let page;
const s = {};

before(async () => {
  server = await startServer('backup');
  browser = await launchBrowser();
  page = await newPage(browser);
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test('the owner has a clinic with a patient (edited once) and an attachment', async () => {
  await register(page, server.url, owner.username, owner.password);
  await (await createClinic(page, CLINIC)).click();
  await page.waitForURL(/\/patients$/);
  s.clinicId = page.url().match(/clinics\/([0-9a-f-]{36})/)[1];
  await page.click('#new-patient');
  await savePatient(page, { given_name: 'Odile', family_name: FAMILY, date_of_birth: '1971-09-02', phone: '555-0100' });
  await patientRows(page).first().waitFor();
  await openPatient(page, FAMILY);
  await savePatient(page, { phone: NOTE_PHONE });
  await page.locator('tr.patient-row', { hasText: NOTE_PHONE }).waitFor();
  await openPatient(page, FAMILY);
  const image = Buffer.alloc(600 * 1024);
  for (let i = 0; i < image.length; i += 4) image.writeUInt32LE((i * 2654435761) >>> 0, i);
  const imagePath = join(OUTPUT, `backup-scan-${stamp}.jpg`);
  writeFileSync(imagePath, image);
  await page.setInputFiles('#file-input', imagePath);
  await page.selectOption('#file-category', 'fundus_photo');
  await page.click('#file-attach');
  await page.waitForSelector('li.attachment button.attachment-download', { timeout: 60000 });
});

test('the owner downloads the encrypted copy with a progress bar', async () => {
  await navigateInApp(page, `/clinics/${s.clinicId}/patients`);
  await page.click('#backup-link');
  await page.waitForURL(/\/backup$/);
  await page.evaluate(() => {
    window.__progress = new Set();
    new MutationObserver(() => {
      const p = document.querySelector('#export-progress');
      if (p) window.__progress.add(p.getAttribute('value'));
    }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['value'] });
  });
  // A slow line, so the download takes a few seconds and its progress is visible on any machine.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false, latency: 0, downloadThroughput: 256 * 1024, uploadThroughput: -1,
  });
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-download')]);
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1,
  });
  assert.match(download.suggestedFilename(), new RegExp(`^optovault-clinic-${s.clinicId.replaceAll('-', '')}-\\d+\\.ovbk$`));
  s.file = join(OUTPUT, `backup-export-${stamp}.ovbk`);
  await download.saveAs(s.file);
  const done = await page.waitForSelector('#export-done');
  const bytes = readFileSync(s.file);
  assert.equal(String(bytes.length), await done.getAttribute('data-bytes'));
  const head = bytes.subarray(0, 200).toString('latin1');
  assert.ok(head.startsWith('optovault-backup v1\n{"format":1,"kind":"clinic-export"'), head);
  const progress = await page.evaluate(() => [...window.__progress].map(Number));
  assert.ok(progress.length >= 3, `progress shown: ${progress.join(',')}`);
  // Ciphertext only: the patient's name and phone are nowhere in the file.
  for (const canary of [FAMILY, NOTE_PHONE, 'Odile']) {
    assert.equal(bytes.indexOf(Buffer.from(canary)), -1, `${canary} is in the export`);
  }
  await page.screenshot({ path: join(OUTPUT, 'backup-download.png'), fullPage: true });
});

test('the owner checks the copy with their own keys', async () => {
  await page.setInputFiles('#export-check-file', s.file);
  const result = await page.waitForSelector('#export-check-result', { timeout: 60000 });
  const text = await result.textContent();
  assert.equal(await result.getAttribute('data-ok'), 'true', text);
  assert.match(text, new RegExp(CLINIC));
  assert.match(text, /complete and opens with your keys/);
  // The patient, its index shard and the attachment's record, each opened; the patient's first
  // version; the one file decrypted and matching its checksum; the audit log intact.
  assert.equal(await result.getAttribute('data-records'), '3', text);
  assert.equal(await result.getAttribute('data-files'), '1', text);
  assert.ok(Number(await result.getAttribute('data-versions')) >= 1, text);
  assert.ok(Number(await result.getAttribute('data-audit')) >= 5, text);
  assert.match(await page.textContent('#export-audit'), /chain intact/);
  await page.screenshot({ path: join(OUTPUT, 'backup-check.png'), fullPage: true });
});

test('a copy with one changed byte is refused with where the damage is', async () => {
  const bytes = readFileSync(s.file);
  const bad = Buffer.from(bytes);
  const at = 4096 + 40 + 50;
  bad[at] ^= 0x20;
  const badPath = join(OUTPUT, `backup-export-damaged-${stamp}.ovbk`);
  writeFileSync(badPath, bad);
  await page.setInputFiles('#export-check-file', badPath);
  await page.waitForSelector('#export-check-result[data-ok="false"]');
  const text = await page.textContent('#export-check-result');
  assert.match(text, /damaged/);
  assert.match(text, /byte 4096: block 0 \(\d+ bytes\) fails its checksum/);
});

test('the checklist says when the last verified server backup was made', async () => {
  await navigateInApp(page, `/clinics/${s.clinicId}/members`);
  const cell = await page.waitForSelector('#checklist-backup');
  assert.match(await cell.textContent(), /none on record/);
  assert.match(await cell.getAttribute('class'), /warn/);
});

// The audit log in a real browser against a real server: a front-desk member changes a patient's
// phone number, the owner prints a spectacle Rx and records a payment. The owner's audit page
// shows all three with their details opened in the browser (who, which patient, which field from
// what to what, the amount); filters narrow it; the whole chain and its signed checkpoint verify;
// CSV and JSON exports carry the details; the patient page says who opened the chart. The front
// desk cannot open the audit log. After the server stops, the operator's `verify-audit --list`
// finds every log intact and sees the categories, but no name, phone number or amount.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  startServer, launchBrowser, newPage, register, createClinic, savePatient, patientRows,
  createInvitation, registerThroughLink, acceptInvitation, admitInvitee, openPatient,
  navigateInApp, dataFiles, OUTPUT, ROOT,
  unexpectedErrors,
} from './harness.mjs';

const stamp = Date.now();
const owner = { username: `aowner-${stamp}`, password: 'copper heron reads 41 ledgers' };
const desk = { username: `adesk-${stamp}`, password: 'velvet otter sorts 17 charts' };
const CLINIC = 'Quillbrook Audit Optometry';
// Canaries: none of them may reach the operator's view of the log.
const FAMILY = 'Quillbrookova';
const OLD_PHONE = '555-0142';
const NEW_PHONE = '555-0199';

let server;
let browser;
let ownerPage;
let deskPage;
const s = {};

before(async () => {
  server = await startServer('audit');
  browser = await launchBrowser();
  [ownerPage, deskPage] = await Promise.all([newPage(browser), newPage(browser)]);
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

const auditRows = (page, action) => page.locator(`tr.audit-row[data-action="${action}"]`);

test('the owner opens a clinic with a patient; a front-desk member joins', async () => {
  const page = ownerPage;
  await register(page, server.url, owner.username, owner.password);
  await (await createClinic(page, CLINIC)).click();
  await page.waitForURL(/\/patients$/);
  s.clinicId = page.url().match(/clinics\/([0-9a-f-]{36})/)[1];
  // The owner's visit made the clinic's audit key and signed the log's head.
  await page.waitForSelector('#audit-link');
  await page.click('#new-patient');
  await savePatient(page, { given_name: 'Zelda', family_name: FAMILY, date_of_birth: '1968-03-14', phone: OLD_PHONE });
  await patientRows(page).first().waitFor();

  await page.click('#members-link');
  await page.waitForURL(/\/members$/);
  const link = await createInvitation(page, 'front_desk');
  await registerThroughLink(deskPage, link, desk);
  await acceptInvitation(deskPage);
  await admitInvitee(page, link);
  await page.waitForFunction(() => document.querySelectorAll('tr.member-row').length === 2);
});

test('the front desk changes the phone number and cannot open the audit log', async () => {
  const fd = deskPage;
  await fd.click('#invite-to-clinics');
  await fd.locator('a.clinic-item', { hasText: CLINIC }).click();
  await patientRows(fd).first().waitFor();
  assert.equal(await fd.locator('#audit-link').count(), 0, 'no audit link for the front desk');
  await openPatient(fd, FAMILY);
  s.chartId = fd.url().match(/patients\/([0-9a-f-]{36})/)[1];
  await savePatient(fd, { phone: NEW_PHONE });
  await fd.locator('tr.patient-row', { hasText: NEW_PHONE }).waitFor();

  await navigateInApp(fd, `/clinics/${s.clinicId}/audit`);
  await fd.waitForSelector('#audit-not-owner');
  await fd.waitForSelector('#audit-error');
  assert.match(await fd.innerText('#audit-error'), /owner/);
  assert.equal(await fd.locator('tr.audit-row').count(), 0);
  const status = await fd.evaluate(async (cid) => (await fetch(`/api/clinics/${cid}/audit`)).status, s.clinicId);
  assert.equal(status, 403);
  s.deskErrors = fd.consoleErrors.filter((e) => !/status of 403/.test(e));
});

test('the owner prints a spectacle Rx and records a payment of 120.00', async () => {
  const page = ownerPage;
  await navigateInApp(page, `/clinics/${s.clinicId}/patients`);
  // The list shows this browser's copy at once and the front desk's change once sync brings it.
  await page.locator('tr.patient-row', { hasText: NEW_PHONE }).waitFor();
  await openPatient(page, FAMILY);
  assert.equal(await page.inputValue('#phone'), NEW_PHONE);

  await page.click('#srx-new');
  await page.waitForSelector('#srx-form');
  await page.fill('#srx-od-sphere', '-1.00');
  await page.fill('#srx-os-sphere', '-1.25');
  await page.fill('#srx-pd', '63');
  await page.click('#srx-save');
  await page.waitForSelector('#srx-form', { state: 'detached' });
  await page.locator('#srx-list tr.rx-row').first().locator('.rx-activate').click();
  await page.waitForSelector('#srx-list tr.rx-row[data-status="active"]');
  await page.locator('#srx-list tr.rx-row').first().locator('a.rx-print').click();
  await page.waitForSelector('#print-doc[data-kind="spectacle_rx"]');
  await page.waitForFunction(() => !document.querySelector('#print-button')?.disabled);
  await page.evaluate(() => { window.printed = 0; window.print = () => { window.printed += 1; }; });
  await page.click('#print-button');
  await page.waitForFunction(() => window.printed === 1);
  await page.click('#print-back');

  await page.waitForSelector('#billing');
  await page.click('#invoice-new');
  await page.waitForSelector('#invoice-form');
  await page.fill('#line-code-0', '92014');
  await page.fill('#line-desc-0', 'Comprehensive eye exam');
  await page.fill('#line-qty-0', '1');
  await page.fill('#line-price-0', '120.00');
  await page.click('#invoice-post');
  await page.locator('tr.invoice-row[data-number="1"][data-status="posted"]').waitFor();
  await page.click('#payment-add');
  await page.waitForSelector('#payment-amount');
  await page.fill('#payment-amount', '120.00');
  await page.selectOption('#payment-method', 'card');
  await page.click('#payment-save');
  await page.waitForFunction(() => document.querySelector('tr.invoice-row[data-number="1"] .invoice-balance')?.textContent.trim() === '0.00');
});

test("the owner's audit log shows all three with their details, filtered and verified", async () => {
  const page = ownerPage;
  await navigateInApp(page, `/clinics/${s.clinicId}/patients`);
  await page.click('#audit-link');
  await page.waitForURL(/\/audit$/);
  await auditRows(page, 'payment_recorded').first().waitFor();

  const phone = auditRows(page, 'patient_updated').filter({ hasText: NEW_PHONE });
  assert.equal(await phone.count(), 1);
  const phoneText = await phone.innerText();
  assert.ok(phoneText.includes(desk.username), `the front desk is named: ${phoneText}`);
  assert.ok(phoneText.includes(`phone: “${OLD_PHONE}” → “${NEW_PHONE}”`), phoneText);
  assert.ok(phoneText.includes(`${FAMILY}, Zelda`), phoneText);

  const printed = auditRows(page, 'document_spectacle_rx');
  assert.equal(await printed.count(), 1);
  assert.match(await printed.innerText(), new RegExp(`Spectacle Rx printed — ${FAMILY}, Zelda`));
  assert.ok((await printed.innerText()).includes(owner.username));

  const paid = auditRows(page, 'payment_recorded');
  assert.equal(await paid.count(), 1);
  assert.match(await paid.innerText(), /Payment of 120\.00 recorded \(Card, \d{4}-\d{2}-\d{2}\)/);
  assert.equal(await auditRows(page, 'invoice_posted').count(), 1);
  // Server-side entries are there too: the writes themselves and the chart being opened.
  assert.ok(await auditRows(page, 'records_written').count() >= 4);
  assert.ok(await auditRows(page, 'chart_read').count() >= 1);
  assert.equal(await page.locator('td.audit-detail.error').count(), 0, 'every detail opened and verified');
  await page.screenshot({ path: join(OUTPUT, 'audit-log.png'), fullPage: true });

  // Filters: by action, then by member, then by patient.
  await page.selectOption('#audit-action', 'payment_recorded');
  await page.click('#audit-apply');
  await page.waitForFunction(() => [...document.querySelectorAll('tr.audit-row')].every((r) => r.dataset.action === 'payment_recorded'));
  assert.equal(await page.locator('tr.audit-row').count(), 1);
  await page.selectOption('#audit-action', '');
  const deskId = await page.locator('#audit-member option', { hasText: desk.username }).getAttribute('value');
  await page.selectOption('#audit-member', deskId);
  await page.click('#audit-apply');
  await page.waitForFunction((name) => {
    const rows = [...document.querySelectorAll('tr.audit-row')];
    return rows.length > 0 && rows.every((r) => r.querySelector('.audit-actor').textContent === name);
  }, desk.username);
  await page.selectOption('#audit-member', '');
  await page.fill('#audit-patient', FAMILY);
  await page.click('#audit-apply');
  await page.waitForFunction((name) => {
    const rows = [...document.querySelectorAll('tr.audit-row')];
    return rows.length >= 3 && rows.every((r) => r.querySelector('.audit-target').textContent.startsWith(name));
  }, FAMILY);

  // The whole chain, from entry 1, and the checkpoint the owner's visit signed.
  await page.click('#audit-verify');
  await page.waitForSelector('#audit-verify-result');
  assert.equal(await page.getAttribute('#audit-verify-result', 'data-ok'), 'true', await page.innerText('#audit-verify-result'));
  assert.match(await page.innerText('#audit-verify-result'), /intact: \d+ entries checked from the first, [1-9]\d* signed checkpoints? verified/);

  // Exports carry the opened details.
  const [csv] = await Promise.all([page.waitForEvent('download'), page.click('#audit-export-csv')]);
  const csvText = readFileSync(await csv.path(), 'utf8');
  assert.ok(csvText.startsWith('seq,time,member,action,target,count,outcome,ip,detail\r\n'));
  assert.ok(csvText.includes(`phone: “${OLD_PHONE}” → “${NEW_PHONE}”`));
  const [json] = await Promise.all([page.waitForEvent('download'), page.click('#audit-export-json')]);
  const rows = JSON.parse(readFileSync(await json.path(), 'utf8'));
  assert.ok(rows.some((r) => r.action === 'patient_updated'
    && r.detail.changes.some((c) => c.field === 'phone' && c.to === NEW_PHONE)));
  assert.ok(rows.every((r) => /^[0-9a-f]{64}$/.test(r.hash)));
});

test('the patient page tells the owner who opened the chart', async () => {
  const page = ownerPage;
  await navigateInApp(page, `/clinics/${s.clinicId}/patients`);
  await openPatient(page, FAMILY);
  await page.waitForSelector('li.chart-viewer');
  const viewers = await page.locator('li.chart-viewer').allInnerTexts();
  assert.ok(viewers.some((v) => v.startsWith(desk.username)), viewers.join('\n'));
});

test("the patient record's history shows who changed what, and an old version is restored", async () => {
  const page = ownerPage;
  await page.click('#patient-history-toggle');
  await page.waitForSelector('li.history-version[data-version="2"]');
  const v2 = page.locator('li.history-version[data-version="2"]');
  assert.match(await v2.locator('strong').innerText(), new RegExp(`Version 2 — ${desk.username} — `));
  assert.equal(await v2.locator('li.history-change').allInnerTexts().then((t) => t.join('\n')),
    `phone: “${OLD_PHONE}” → “${NEW_PHONE}”`);
  const v1 = page.locator('li.history-version[data-version="1"]');
  assert.match(await v1.locator('strong').innerText(), new RegExp(`Version 1 — ${owner.username} — `));
  assert.ok((await v1.locator('li.history-change').count()) >= 4, 'the first version lists every field it set');
  assert.equal(await v2.locator('.history-restore').count(), 0, 'the current version is not restorable');
  await v1.locator('.history-restore').click();
  await page.waitForSelector('#patient-history-notice');
  assert.equal(await page.innerText('#patient-history-notice'), 'Version 1 restored as version 3.');
  await page.waitForSelector('li.history-version[data-version="3"]');
  assert.equal(await page.locator('li.history-version[data-version="3"] li.history-change').innerText(),
    `phone: “${NEW_PHONE}” → “${OLD_PHONE}”`);
  await page.waitForFunction((phone) => document.querySelector('#phone')?.value === phone, OLD_PHONE);
  await page.screenshot({ path: join(OUTPUT, 'record-history.png'), fullPage: true });
  assert.deepEqual(unexpectedErrors(ownerPage), []);
  assert.deepEqual(s.deskErrors, []);
});

test('a deleted appointment waits in the trash and is restored; both are on record', async () => {
  const page = ownerPage;
  await page.waitForSelector('#appt-book');
  await page.fill('#appt-date', '2031-05-06');
  await page.fill('#appt-time', '09:30');
  await page.selectOption('#appt-type', 'comprehensive');
  await page.fill('#appt-reason', 'Booked by mistake');
  await page.click('#appt-book');
  const appt = page.locator('li.appointment', { hasText: 'Booked by mistake' });
  await appt.waitFor();
  const id = await appt.getAttribute('data-id');
  await appt.locator('.appt-delete').click();
  await page.locator(`li.trash-item[data-id="${id}"]`).waitFor();
  assert.equal(await page.locator(`li.appointment[data-id="${id}"]`).count(), 0, 'gone from the appointments');
  assert.match(await page.innerText(`li.trash-item[data-id="${id}"]`), new RegExp(`Appointment 2031-05-06 09:30 \\(Booked by mistake\\) · deleted by ${owner.username}`));
  // The server holds a tombstone: the latest version is marked deleted, its content sealed.
  const latest = await page.evaluate(async ({ cid, rid }) => (await (await fetch(`/api/clinics/${cid}/records/${rid}`)).json()).envelope, { cid: s.clinicId, rid: id });
  assert.equal(latest.deleted, true);
  assert.equal(latest.version, 2);
  await page.locator(`li.trash-item[data-id="${id}"] .trash-restore`).click();
  await page.locator(`li.appointment[data-id="${id}"]`).waitFor();
  await page.waitForSelector('#chart-trash', { state: 'detached' });

  await navigateInApp(page, `/clinics/${s.clinicId}/audit`);
  await auditRows(page, 'record_restored').first().waitFor();
  assert.match(await auditRows(page, 'record_deleted').innerText(), /Deleted appointment \(moved to the trash\)/);
  assert.match(await auditRows(page, 'record_restored').innerText(), /Restored appointment from the trash/);
  assert.equal(await auditRows(page, 'records_deleted').count(), 1, 'the server saw the tombstone');
  assert.deepEqual(unexpectedErrors(ownerPage), []);
});

test('the owner erases the patient: nothing of the chart is served, the log keeps only the fact', async () => {
  const page = ownerPage;
  await navigateInApp(page, `/clinics/${s.clinicId}/patients`);
  await openPatient(page, FAMILY);
  await page.waitForSelector('#chart-erase');
  const recordIds = await page.evaluate(async ({ cid, chart }) => {
    const feed = await (await fetch(`/api/clinics/${cid}/change-headers?since=0&limit=1000`)).json();
    return feed.changes.filter((c) => c.chart_id === chart).map((c) => c.record_id);
  }, { cid: s.clinicId, chart: s.chartId });
  assert.ok(recordIds.length >= 5, `the chart holds the patient, the Rx, the invoice, the payment, the appointment: ${recordIds.length}`);
  assert.equal(await page.isDisabled('#erase-chart'), true, 'not before the name is typed');
  await page.fill('#erase-confirm', `${FAMILY}, Zel`);
  assert.equal(await page.isDisabled('#erase-chart'), true);
  await page.fill('#erase-confirm', `${FAMILY}, Zelda`);
  await page.click('#erase-chart');
  await page.waitForURL(/\/patients$/, { timeout: 60000 });
  await page.waitForSelector('#list-notice');
  assert.match(await page.innerText('#list-notice'), new RegExp(`The patient was erased: ${recordIds.length} records`));
  assert.equal(await page.locator('tr.patient-row', { hasText: FAMILY }).count(), 0);
  const statuses = await page.evaluate(async ({ cid, ids }) => Promise.all(ids.map(async (id) =>
    (await fetch(`/api/clinics/${cid}/records/${id}`)).status)), { cid: s.clinicId, ids: recordIds });
  assert.deepEqual([...new Set(statuses)], [404]);
  await navigateInApp(page, `/clinics/${s.clinicId}/audit`);
  const erased = auditRows(page, 'chart_erased');
  await erased.waitFor();
  assert.equal(await erased.locator('.audit-detail').innerText(), '', 'no detail: nothing identifying');
  assert.ok(!(await erased.innerText()).includes(FAMILY));
  // The browser's errors: the 404s asked for above.
  assert.deepEqual(ownerPage.consoleErrors.filter((e) => !/status of 404/.test(e)), []);
});

test("the operator's verifier finds the logs intact and sees categories, never the details", async () => {
  await server.stop();
  const bin = process.env.OPTOVAULT_SERVER_BIN || join(ROOT, 'target/debug/optovault-server');
  const r = spawnSync(bin, ['--data-dir', server.dataDir, 'verify-audit', '--list'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`clinic ${s.clinicId}: \\d+ entries, [1-9]\\d* signed checkpoints? \\(last at entry \\d+\\): intact`));
  assert.match(r.stdout, /all intact/);
  for (const category of ['patient_updated', 'payment_recorded', 'document_spectacle_rx', 'chart_read']) {
    assert.ok(r.stdout.includes(category), `the operator sees the category ${category}`);
  }
  assert.ok(r.stdout.includes('[sealed detail]'));
  for (const canary of [FAMILY, 'Zelda', OLD_PHONE, NEW_PHONE, '120.00', 'Spectacle Rx printed']) {
    assert.ok(!r.stdout.includes(canary), `the operator's listing must not show ${canary}`);
  }
  assert.match(r.stdout, /chart_erased/);
  // Nothing of the patient is in the database files in the clear either.
  const files = dataFiles(server.dataDir);
  assert.ok(files.length > 0);
  for (const f of files) {
    const bytes = readFileSync(f);
    for (const canary of [FAMILY, OLD_PHONE, NEW_PHONE, 'Booked by mistake', 'Comprehensive eye exam']) {
      assert.equal(bytes.indexOf(Buffer.from(canary)), -1, `${canary} in ${f}`);
    }
  }
});

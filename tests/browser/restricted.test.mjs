// Restricted charts in real browsers against a real server: the owner restricts one patient's
// chart to itself and the optometrist; the front desk never sees it (only that a restricted chart
// exists); the optometrist edits it; taken off the care team, the optometrist loses it too.
// Three browser contexts: the owner, an optometrist and a front desk.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  startServer, launchBrowser, newPage, register, createClinic, savePatient, patientRows,
  createInvitation, registerThroughLink, acceptInvitation, admitInvitee, openPatient, OUTPUT,
} from './harness.mjs';

const stamp = Date.now();
const owner = { username: `rowner-${stamp}`, password: 'granite willow hums 52 tides' };
const optom = { username: `roptom-${stamp}`, password: 'cobalt meadow sings 81 bells' };
const desk = { username: `rdesk-${stamp}`, password: 'tangerine canyon naps 46 owls' };
const CLINIC = 'Cedar Eye Clinic';

let server;
let browser;
let ownerPage;
let optomPage;
let deskPage;
const s = {};

before(async () => {
  server = await startServer('restricted');
  browser = await launchBrowser();
  [ownerPage, optomPage, deskPage] = await Promise.all([newPage(browser), newPage(browser), newPage(browser)]);
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/** From the invite page (just accepted) to the clinic's patient list. */
async function openClinic(page) {
  await page.click('#invite-to-clinics');
  await page.locator('a.clinic-item', { hasText: CLINIC }).click();
  await page.waitForURL(/\/patients$/);
}

/** Clicks Refresh on the patient list and waits for the sync to finish. */
async function refreshList(page) {
  await page.click('#refresh');
  await page.waitForFunction(() => !document.querySelector('#refresh')?.disabled);
}

async function fetchRecord(page, cid, rid) {
  return page.evaluate(async ({ cid, rid }) => {
    const r = await fetch(`/api/clinics/${cid}/records/${rid}`);
    return { status: r.status, body: await r.text() };
  }, { cid, rid });
}

test('the owner sets up a clinic with two patients, an optometrist and a front desk', async () => {
  const page = ownerPage;
  await register(page, server.url, owner.username, owner.password);
  await (await createClinic(page, CLINIC)).click();
  await page.waitForURL(/\/patients$/);
  s.clinicId = page.url().match(/clinics\/([0-9a-f-]{36})/)[1];
  await page.click('#new-patient');
  await savePatient(page, { given_name: 'Vera', family_name: 'Openshaw', date_of_birth: '1971-03-05' });
  await page.click('#new-patient');
  await savePatient(page, { given_name: 'Hidden', family_name: 'Patient', date_of_birth: '1988-08-08', phone: '555 010 0001' });
  await page.waitForFunction(() => document.querySelectorAll('tr.patient-row').length === 2);
  s.hiddenId = await patientRows(page).filter({ hasText: 'Hidden' }).getAttribute('data-id');
  assert.match(s.hiddenId, /^[0-9a-f-]{36}$/);

  await page.click('#members-link');
  await page.waitForURL(/\/members$/);
  const optomLink = await createInvitation(page, 'optometrist');
  const deskLink = await createInvitation(page, 'front_desk');
  await registerThroughLink(optomPage, optomLink, optom);
  await acceptInvitation(optomPage);
  await registerThroughLink(deskPage, deskLink, desk);
  await acceptInvitation(deskPage);
  await admitInvitee(page, optomLink);
  await admitInvitee(page, deskLink);
  await page.waitForFunction(() => document.querySelectorAll('tr.member-row').length === 3);
  s.optomId = await page.locator('tr.member-row', { hasText: optom.username }).getAttribute('data-id');
  s.deskId = await page.locator('tr.member-row', { hasText: desk.username }).getAttribute('data-id');
  s.ownerId = await page.locator('tr.member-row', { hasText: owner.username }).getAttribute('data-id');

  // Both members read both patients before anything is restricted.
  for (const p of [optomPage, deskPage]) {
    await openClinic(p);
    await p.waitForFunction(() => document.querySelectorAll('tr.patient-row').length === 2);
    assert.equal(await p.locator('#restricted-count').count(), 0);
  }
  // The front desk (no clinical access) is not offered to restrict a chart.
  await openPatient(deskPage, 'Openshaw');
  await deskPage.waitForTimeout(300);
  assert.equal(await deskPage.locator('#restrict-chart, #care-team').count(), 0);
  await deskPage.click('#back-to-patients');
});

test('the owner restricts one chart to itself and the optometrist', async () => {
  const page = ownerPage;
  await page.click('#back-to-patients');
  await openPatient(page, 'Hidden');
  // A clinical note on the chart first: restricting re-seals it too.
  await page.fill('#note-text', 'Referred for visual field test.');
  await page.click('#note-save');
  await page.locator('.clinical-note', { hasText: 'visual field' }).waitFor();
  s.noteId = await page.locator('.clinical-note').first().getAttribute('data-id');
  await page.waitForSelector('#restrict-chart');
  assert.equal(await page.locator('.restricted-badge').count(), 0);
  // Everyone in the signed roster is offered; I am on it, always.
  assert.equal(await page.locator('input.care-team-member').count(), 3);
  const mine = page.locator('input.care-team-member:disabled');
  assert.equal(await mine.count(), 1);
  assert.equal(await mine.isChecked(), true);
  await page.check(`input.care-team-member[value="${s.optomId}"]`);
  await page.click('#restrict-save');
  await page.waitForSelector('#care-team');
  await page.locator('h1 .restricted-badge').waitFor();
  assert.match(await page.innerText('h1 .restricted-badge'), /Restricted to its care team/);
  assert.equal(await page.locator('#restrict-chart').count(), 0);
  const ids = await page.locator('li.care-team-entry').evaluateAll((els) => els.map((e) => e.dataset.id).sort());
  assert.deepEqual(ids, [s.ownerId, s.optomId].sort());
  // The owner can add the front desk (not done here) but cannot remove itself.
  assert.equal(await page.locator(`li.care-team-entry[data-id="${s.optomId}"] .care-team-remove`).count(), 1);
  assert.equal(await page.locator('li.care-team-entry .care-team-remove').count(), 1);
  assert.deepEqual(await page.locator('#care-team-add option').evaluateAll((os) => os.map((o) => o.value)), [s.deskId]);

  // The chart's records were re-sealed under the chart's own key (a new version).
  const stored = JSON.parse((await fetchRecord(page, s.clinicId, s.hiddenId)).body);
  assert.equal(stored.envelope.version, 2);
  assert.equal(stored.envelope.chart_id, s.hiddenId);
  const note = JSON.parse((await fetchRecord(page, s.clinicId, s.noteId)).body);
  assert.equal(note.envelope.version, 2);
  assert.equal(note.envelope.compartment, 'clinical');
  assert.equal(await page.locator('.clinical-note').count(), 1);

  await page.click('#back-to-patients');
  await page.waitForFunction(() => document.querySelectorAll('tr.patient-row').length === 2);
  assert.equal(await patientRows(page).filter({ hasText: 'Hidden' }).locator('.restricted-badge').count(), 1);
  assert.equal(await patientRows(page).filter({ hasText: 'Openshaw' }).locator('.restricted-badge').count(), 0);
  assert.equal(await page.locator('#restricted-count').count(), 0, 'the owner is on the care team');
});

test('the front desk no longer sees the chart, only that one restricted chart exists', async () => {
  const page = deskPage;
  await refreshList(page);
  await page.waitForFunction(() => document.querySelectorAll('tr.patient-row').length === 1);
  assert.match(await patientRows(page).first().innerText(), /Openshaw/);
  await page.waitForSelector('#restricted-count');
  assert.match(await page.innerText('#restricted-count'), /^1 restricted chart you are not on$/);
  assert.doesNotMatch(await page.locator('body').innerText(), /Hidden/);
  assert.doesNotMatch(await page.content(), /Hidden/);
  const r = await fetchRecord(page, s.clinicId, s.hiddenId);
  assert.equal(r.status, 403, r.body);
  assert.match(r.body, /restricted_chart/);
  // Going to the chart's address (in the app, keys kept) finds nothing either.
  await page.evaluate((path) => {
    history.pushState(null, '', path);
    window.dispatchEvent(new PopStateEvent('popstate'));
  }, `/clinics/${s.clinicId}/patients/${s.hiddenId}`);
  await page.waitForSelector('#form-error');
  assert.match(await page.innerText('#form-error'), /Patient not found/);
  assert.doesNotMatch(await page.locator('body').innerText(), /Hidden/);
});

test('the optometrist on the care team reads and edits the restricted chart', async () => {
  const page = optomPage;
  await refreshList(page);
  const row = patientRows(page).filter({ hasText: 'Hidden' });
  await row.waitFor();
  assert.equal(await row.locator('.restricted-badge').count(), 1);
  assert.equal(await page.locator('#restricted-count').count(), 0);
  await openPatient(page, 'Hidden');
  await page.locator('h1 .restricted-badge').waitFor();
  // A clinical role on the team manages the team too.
  await page.waitForSelector('#care-team');
  // The re-sealed note opens with the chart's key; a new one is sealed under it.
  await page.locator('.clinical-note', { hasText: 'visual field' }).waitFor();
  await page.fill('#note-text', 'Fields full to confrontation.');
  await page.click('#note-save');
  await page.locator('.clinical-note', { hasText: 'confrontation' }).waitFor();
  await savePatient(page, { phone: '555 010 0002' });
  await patientRows(page).filter({ hasText: '555 010 0002' }).waitFor();
  const stored = JSON.parse((await fetchRecord(page, s.clinicId, s.hiddenId)).body);
  assert.equal(stored.envelope.author, s.optomId);
  assert.equal(stored.envelope.version, 3);
});

test('taken off the care team, the optometrist loses the chart too', async () => {
  const page = ownerPage;
  await refreshList(page);
  await patientRows(page).filter({ hasText: '555 010 0002' }).waitFor();
  await openPatient(page, 'Hidden');
  assert.equal(await page.inputValue('#phone'), '555 010 0002', 'the owner sees the optometrist\'s edit');
  const entry = page.locator(`li.care-team-entry[data-id="${s.optomId}"]`);
  await entry.locator('.care-team-remove').click();
  await entry.waitFor({ state: 'detached' });
  assert.equal(await page.locator('li.care-team-entry').count(), 1);

  // The owner's next edit is sealed under the chart's second key epoch.
  await savePatient(page, { phone: '555 010 0003' });
  await patientRows(page).filter({ hasText: '555 010 0003' }).waitFor();
  const stored = JSON.parse((await fetchRecord(page, s.clinicId, s.hiddenId)).body);
  assert.equal(stored.envelope.epoch, 2);

  const op = optomPage;
  await refreshList(op);
  await op.waitForFunction(() => document.querySelectorAll('tr.patient-row').length === 1);
  assert.match(await patientRows(op).first().innerText(), /Openshaw/);
  await op.waitForSelector('#restricted-count');
  assert.match(await op.innerText('#restricted-count'), /^1 restricted chart you are not on$/);
  assert.doesNotMatch(await op.locator('body').innerText(), /Hidden/);
  const r = await fetchRecord(op, s.clinicId, s.hiddenId);
  assert.equal(r.status, 403, r.body);
});

test('put back on the care team, the optometrist reads the chart again', async () => {
  const page = ownerPage;
  await openPatient(page, 'Hidden');
  await page.waitForSelector('#care-team');
  await page.selectOption('#care-team-add', s.optomId);
  await page.click('#care-team-add-save');
  await page.locator(`li.care-team-entry[data-id="${s.optomId}"]`).waitFor();
  assert.equal(await page.locator('li.care-team-entry').count(), 2);
  assert.equal(await page.locator('.clinical-note').count(), 2);
  await page.screenshot({ path: join(OUTPUT, 'restricted.png'), fullPage: true });

  const op = optomPage;
  await refreshList(op);
  await op.waitForFunction(() => document.querySelectorAll('tr.patient-row').length === 2);
  assert.equal(await op.locator('#restricted-count').count(), 0);
  await openPatient(op, 'Hidden');
  assert.equal(await op.inputValue('#phone'), '555 010 0003', 'the edit made under the second key epoch opens');
  await op.locator('.clinical-note', { hasText: 'confrontation' }).waitFor();
  assert.equal(await op.locator('.clinical-note').count(), 2);

});

test('the only one on a care team cannot be removed; with company, its removal rotates every chart it is on', async () => {
  // The optometrist restricts the other chart to itself alone.
  const op = optomPage;
  await op.click('#back-to-patients');
  await openPatient(op, 'Openshaw');
  await op.waitForSelector('#restrict-chart');
  await op.click('#restrict-save');
  await op.waitForSelector('#care-team');
  assert.equal(await op.locator('li.care-team-entry').count(), 1);

  const page = ownerPage;
  await page.click('#back-to-patients');
  await refreshList(page);
  await page.waitForFunction(() => document.querySelectorAll('tr.patient-row').length === 1);
  assert.match(await page.innerText('#restricted-count'), /^1 restricted chart you are not on$/);

  // Removing the optometrist would leave that chart with nobody: refused, nothing changes.
  await page.click('#members-link');
  const row = page.locator(`tr.member-row[data-id="${s.optomId}"]`);
  await row.locator('.member-remove').click();
  await row.locator('.member-confirm').click();
  await row.locator('.error').waitFor();
  assert.match(await row.locator('.error').innerText(), /only one on a restricted chart's care team/);
  assert.equal(await page.locator('tr.member-row').count(), 3);

  // The optometrist adds the owner to that care team; now the removal goes through.
  await op.selectOption('#care-team-add', s.ownerId);
  await op.click('#care-team-add-save');
  await op.locator(`li.care-team-entry[data-id="${s.ownerId}"]`).waitFor();
  await row.locator('.member-confirm').click();
  await row.waitFor({ state: 'detached' });
  const charts = await page.evaluate(async (cid) => (await (await fetch(`/api/clinics/${cid}/charts`)).json()).charts, s.clinicId);
  assert.equal(charts.length, 2);
  for (const c of charts) {
    assert.deepEqual(c.care_team, [s.ownerId]);
    assert.equal(c.in_care_team, true);
  }
  const epochs = Object.fromEntries(charts.map((c) => [c.chart_id, c.key_epoch]));
  assert.equal(epochs[s.hiddenId], 3, 'restricted at 1, optometrist taken off at 2, removed from the clinic at 3');
  assert.equal(Object.values(epochs).sort().join(), '2,3');

  // The owner reads and writes both charts under their new keys.
  await page.click('#back-to-patients');
  await refreshList(page);
  await page.waitForFunction(() => document.querySelectorAll('tr.patient-row .restricted-badge').length === 2);
  assert.equal(await page.locator('#restricted-count').count(), 0);
  await openPatient(page, 'Openshaw');
  await savePatient(page, { phone: '555 010 0004' });
  await patientRows(page).filter({ hasText: '555 010 0004' }).waitFor();
  const openshawId = await patientRows(page).filter({ hasText: 'Openshaw' }).getAttribute('data-id');
  const stored = JSON.parse((await fetchRecord(page, s.clinicId, openshawId)).body);
  assert.equal(stored.envelope.epoch, 2);

  // The front desk learns only that two restricted charts exist.
  const fd = deskPage;
  await fd.click('#back-to-patients');
  await refreshList(fd);
  await fd.waitForFunction(() => /^2 restricted charts/.test(document.querySelector('#restricted-count')?.textContent ?? ''));
  assert.equal(await patientRows(fd).count(), 0);
  assert.doesNotMatch(await fd.locator('body').innerText(), /Hidden|Openshaw/);

  for (const p of [ownerPage, optomPage, deskPage]) {
    assert.deepEqual(p.consoleErrors.filter((e) => /Content Security Policy|Refused|panicked/.test(e)), []);
  }
});

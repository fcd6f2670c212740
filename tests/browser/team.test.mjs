// The clinic team in real browsers against a real server: invitations with safety numbers, roles
// as keys (front desk never sees clinical notes), removal with key rotation, and a tampered link.
// Three browser contexts: the owner, a front-desk invitee and an optometrist invitee.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  startServer, launchBrowser, newPage, register, createClinic, savePatient, patientRows,
  submitRegistration, submitLogin, createInvitation, invitationIds, OUTPUT,
} from './harness.mjs';

const stamp = Date.now();
const owner = { username: `owner-${stamp}`, password: 'saffron harbour drums 31 kites' };
const desk = { username: `desk-${stamp}`, password: 'marble otter paints 64 clouds' };
const optom = { username: `optom-${stamp}`, password: 'velvet comet reads 27 maps' };
const CLINIC = 'Harbor Eye Care';
const TAMPERED = 'This acceptance was tampered with; do not admit.';

let server;
let browser;
let ownerPage;
let deskPage;
let optomPage;
// Filled in as the story goes.
const s = {};

before(async () => {
  server = await startServer('team');
  browser = await launchBrowser();
  [ownerPage, deskPage, optomPage] = await Promise.all([newPage(browser), newPage(browser), newPage(browser)]);
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Changes one character in the middle of the `k` (secret) part of a link's fragment. */
function tamperSecret(link) {
  const u = new URL(link);
  const params = new URLSearchParams(u.hash.slice(1));
  const k = params.get('k');
  const i = Math.floor(k.length / 2);
  params.set('k', k.slice(0, i) + (k[i] === 'A' ? 'B' : 'A') + k.slice(i + 1));
  u.hash = params.toString();
  return u.toString();
}

/** Opens an invitation link without keys in memory and registers from there. */
async function registerThroughLink(page, link, user) {
  await page.goto(link);
  await page.click('#invite-register');
  await page.waitForURL(/\/register$/);
  await submitRegistration(page, user.username, user.password);
  await page.waitForURL(/\/invite\//, { timeout: 60000 });
}

/** Accepts the invitation on screen; returns the safety number shown. */
async function accept(page) {
  await page.waitForSelector('#invite-role-info');
  await page.click('#invite-accept');
  await page.waitForSelector('#invite-safety-number');
  return (await page.innerText('#invite-safety-number')).trim();
}

function invitationRow(page, link) {
  return page.locator(`tr.invitation-row[data-id="${invitationIds(link).invitationId}"]`);
}

async function openPatient(page, family) {
  await page.locator('tr.patient-row', { hasText: family }).locator('a.patient-link').click();
  await page.waitForSelector('#given_name');
  await page.waitForFunction(() => document.querySelector('#given_name')?.value !== '');
}

test('the owner creates a clinic with a patient and invites a front desk and an optometrist', async () => {
  const page = ownerPage;
  await register(page, server.url, owner.username, owner.password);
  await (await createClinic(page, CLINIC)).click();
  await page.waitForURL(/\/patients$/);
  s.clinicId = page.url().match(/clinics\/([0-9a-f-]{36})/)[1];
  await page.click('#new-patient');
  await savePatient(page, { given_name: 'Ada', family_name: 'Lovelace', date_of_birth: '1965-12-10' });
  await patientRows(page).first().waitFor();

  await page.click('#members-link');
  await page.waitForURL(/\/members$/);
  await page.locator('tr.member-row', { hasText: owner.username }).waitFor();
  assert.equal(await page.locator('tr.member-row').count(), 1);
  // The last owner can neither leave nor step down.
  assert.equal(await page.locator('tr.member-row .member-remove').count(), 0);
  assert.equal(await page.inputValue('#invite-hours'), '72');

  s.deskLink = await createInvitation(page, 'front_desk');
  s.optomLink = await createInvitation(page, 'optometrist');
  s.spareLink = await createInvitation(page, 'billing', 24);
  for (const link of [s.deskLink, s.optomLink, s.spareLink]) {
    const u = new URL(link);
    assert.equal(u.origin, server.url);
    assert.equal(invitationIds(link).clinicId, s.clinicId);
    assert.match(u.hash, /^#k=[A-Za-z0-9_-]{43}&a=[A-Za-z0-9_-]{43}&oe=[A-Za-z0-9_-]{43}&ox=[A-Za-z0-9_-]{43}$/);
  }
  await page.waitForFunction(() => document.querySelectorAll('tr.invitation-row').length === 3);
  assert.match(await invitationRow(page, s.deskLink).innerText(), /Front desk/);
});

test('a tampered link gives an acceptance the owner is told not to admit', async () => {
  const page = deskPage;
  // The front desk first receives a link whose secret was altered on the way.
  await registerThroughLink(page, tamperSecret(s.spareLink), desk);
  assert.match(await page.innerText('#invite-role-info'), /Billing/);
  await accept(page);

  await ownerPage.click('#members-refresh');
  const row = invitationRow(ownerPage, s.spareLink);
  await row.locator('.acceptance').waitFor();
  assert.equal((await row.locator('.acceptance.tampered').innerText()).trim(), TAMPERED);
  assert.equal(await row.locator('.invitation-admit').count(), 0);
  assert.equal(await row.locator('.safety-number').count(), 0);
});

test('each invitee accepts and both sides see the same safety number; the owner admits them', async () => {
  // The front desk opens its real link in a fresh load (keys gone): logs in from the invite page
  // and comes back to it.
  await deskPage.goto(s.deskLink);
  await deskPage.click('#invite-login');
  await deskPage.waitForURL(/\/login$/);
  await submitLogin(deskPage, desk.username, desk.password);
  await deskPage.waitForURL(/\/invite\//, { timeout: 60000 });
  assert.match(await deskPage.innerText('#invite-role-info'), /Front desk/);
  s.deskSafety = await accept(deskPage);
  assert.match(s.deskSafety, /^(\d{5} ){11}\d{5}$/);

  await registerThroughLink(optomPage, s.optomLink, optom);
  assert.match(await optomPage.innerText('#invite-role-info'), /Optometrist/);
  s.optomSafety = await accept(optomPage);
  await optomPage.screenshot({ path: join(OUTPUT, 'invite.png'), fullPage: true });
  assert.notEqual(s.optomSafety, s.deskSafety);

  const page = ownerPage;
  await page.click('#members-refresh');
  for (const [link, safety] of [[s.deskLink, s.deskSafety], [s.optomLink, s.optomSafety]]) {
    const row = invitationRow(page, link);
    await row.locator('.safety-number').waitFor();
    assert.equal((await row.locator('.safety-number').innerText()).trim(), safety,
      'the owner sees the safety number the invitee sees');
  }
  await page.screenshot({ path: join(OUTPUT, 'members-acceptances.png'), fullPage: true });
  for (const link of [s.deskLink, s.optomLink]) {
    await invitationRow(page, link).locator('.invitation-admit').click();
    await invitationRow(page, link).waitFor({ state: 'detached' });
  }
  await page.waitForFunction(() => document.querySelectorAll('tr.member-row').length === 3);
  const members = await page.locator('table.members').innerText();
  assert.match(members, new RegExp(`${desk.username}\\s+Front desk`));
  assert.match(members, new RegExp(`${optom.username}\\s+Optometrist`));
  // Owners get actions on others' rows.
  const optomRow = page.locator('tr.member-row', { hasText: optom.username });
  s.optomId = await optomRow.getAttribute('data-id');
  assert.equal(await optomRow.locator('.member-remove').count(), 1);
  assert.match(await optomRow.locator('code.fingerprint').innerText(), /^([0-9a-f]{4} ){4}[0-9a-f]{4}$/);
  // The tampered acceptance is still flagged.
  assert.equal(await invitationRow(page, s.spareLink).locator('.acceptance.tampered').count(), 1);
  await page.screenshot({ path: join(OUTPUT, 'members.png'), fullPage: true });
});

test('the optometrist writes a clinical note; the front desk sees the patient but never the note', async () => {
  const page = optomPage;
  await page.click('#invite-to-clinics');
  await page.locator('a.clinic-item', { hasText: CLINIC }).click();
  await patientRows(page).first().waitFor();
  await openPatient(page, 'Lovelace');
  await page.waitForSelector('#clinical-notes');
  await page.fill('#note-text', 'IOP 18/19 mmHg; discs healthy. Review in 12 months.');
  await page.click('#note-save');
  const note = page.locator('.clinical-note', { hasText: 'IOP 18/19' });
  await note.waitFor();
  s.noteId = await note.getAttribute('data-id');
  assert.match(s.noteId, /^[0-9a-f-]{36}$/);
  assert.match(await note.innerText(), new RegExp(optom.username));

  const fd = deskPage;
  await fd.click('#invite-to-clinics');
  await fd.locator('a.clinic-item', { hasText: CLINIC }).click();
  await patientRows(fd).first().waitFor();
  assert.match(await patientRows(fd).first().innerText(), /Lovelace/);
  await openPatient(fd, 'Lovelace');
  assert.equal(await fd.inputValue('#given_name'), 'Ada');
  assert.equal(await fd.inputValue('#family_name'), 'Lovelace');
  // Give the notes section every chance to appear: it must not.
  await fd.waitForTimeout(500);
  assert.equal(await fd.locator('#clinical-notes').count(), 0);
  const answers = await fd.evaluate(async ({ cid, nid }) => {
    const rec = await fetch(`/api/clinics/${cid}/records/${nid}`);
    const feed = await (await fetch(`/api/clinics/${cid}/changes?since=0`)).json();
    return {
      status: rec.status,
      body: await rec.text(),
      compartments: [...new Set(feed.changes.map((c) => c.envelope.compartment))],
    };
  }, { cid: s.clinicId, nid: s.noteId });
  assert.equal(answers.status, 403, answers.body);
  assert.deepEqual(answers.compartments, ['demographics'], 'the front desk is never sent clinical envelopes');

  // The front desk sees the team, without any of the owner's actions.
  await fd.click('#back-to-patients');
  await fd.click('#members-link');
  await fd.waitForFunction(() => document.querySelectorAll('tr.member-row').length === 3);
  assert.equal(await fd.locator('.member-remove, .member-role, #invite-create, tr.invitation-row').count(), 0);
});

test('the owner removes the optometrist: their next action ends on the login page; notes stay', async () => {
  const page = ownerPage;
  const row = page.locator(`tr.member-row[data-id="${s.optomId}"]`);
  await row.locator('.member-remove').click();
  // A confirmation step in the page, nothing rotated yet.
  await row.locator('.confirm').waitFor();
  assert.match(await row.locator('.confirm').innerText(), new RegExp(`Remove ${optom.username}`));
  await row.locator('.member-confirm').click();
  await row.waitFor({ state: 'detached' });
  await page.waitForFunction(() => document.querySelectorAll('tr.member-row').length === 2);

  const op = optomPage;
  await op.click('#back-to-patients');
  await op.waitForURL(/\/login$/);
  assert.match(await op.innerText('.notice'), /Your session has ended/);

  // The owner writes a note after the rotation; both notes are shown.
  await page.click('#back-to-patients');
  await patientRows(page).first().waitFor();
  await openPatient(page, 'Lovelace');
  await page.locator('.clinical-note', { hasText: 'IOP 18/19' }).waitFor();
  await page.fill('#note-text', 'Reviewed the optometrist\'s note; no change to plan.');
  await page.click('#note-save');
  await page.locator('.clinical-note', { hasText: 'no change to plan' }).waitFor();
  assert.equal(await page.locator('.clinical-note').count(), 2);
  const old = page.locator(`.clinical-note[data-id="${s.noteId}"]`);
  assert.match(await old.innerText(), /Written by a former member/);
  // The new note is sealed under the rotated keys (epoch 2), the old one stays at epoch 1.
  const newId = await page.locator('.clinical-note', { hasText: 'no change to plan' }).getAttribute('data-id');
  const epochs = await page.evaluate(async ({ cid, ids }) => Promise.all(ids.map(async (id) =>
    (await (await fetch(`/api/clinics/${cid}/records/${id}`)).json()).envelope.epoch)), { cid: s.clinicId, ids: [s.noteId, newId] });
  assert.deepEqual(epochs, [1, 2]);

  // The front desk still holds the epoch-1 keys: its next write is refused as stale, and the
  // client fetches the new keys and writes again by itself.
  const fd = deskPage;
  const writes = [];
  // A patient is saved with its index shard in one batch (POST …/records).
  fd.on('response', (r) => {
    if (r.request().method() === 'POST' && new URL(r.url()).pathname.endsWith('/records')) writes.push(r.status());
  });
  await fd.click('#back-to-patients');
  await openPatient(fd, 'Lovelace');
  await savePatient(fd, { phone: '+1 555 123 4567' });
  await patientRows(fd).filter({ hasText: '555 123 4567' }).waitFor();
  assert.deepEqual(writes, [409, 200]);

});

test('a role change is a rotation too, confirmed in the page first', async () => {
  const page = ownerPage;
  await page.click('#back-to-patients');
  await page.click('#members-link');
  const row = page.locator('tr.member-row', { hasText: desk.username });
  await row.waitFor();
  const deskId = await row.getAttribute('data-id');
  // Last activity: the member has logged in, so its last login is shown.
  assert.notEqual((await row.locator('.member-last-login').innerText()).trim(), 'never');
  // Cancelling changes nothing.
  await row.locator('.member-remove').click();
  await row.locator('.confirm').waitFor();
  await row.locator('.member-cancel').click();
  await row.locator('.confirm').waitFor({ state: 'detached' });
  assert.equal(await page.locator('tr.member-row').count(), 2);

  await row.locator('.member-role').selectOption('optician');
  await row.locator('.member-role-save').click();
  assert.match(await row.locator('.confirm').innerText(), new RegExp(`Make ${desk.username} Optician`));
  await row.locator('.member-confirm').click();
  await page.locator(`tr.member-row[data-id="${deskId}"][data-role="optician"]`).waitFor();
  assert.match(await page.locator(`tr.member-row[data-id="${deskId}"]`).innerText(), /Optician/);

  // The member's sessions were revoked with the change: their next action asks them to log in.
  await deskPage.click('#refresh');
  await deskPage.waitForURL(/\/login$/);
  assert.match(await deskPage.innerText('.notice'), /Your session has ended/);

});

test('the invite page explains links that cannot be used', async () => {
  const page = ownerPage;
  const link = await createInvitation(page, 'optician');
  const loginThrough = async (target) => {
    await page.goto(target);
    await page.click('#invite-login');
    await submitLogin(page, owner.username, owner.password);
    await page.waitForURL(/\/invite\//, { timeout: 60000 });
    await page.waitForSelector('#invite-role-info');
  };
  // A member cannot accept an invitation to their own clinic.
  await loginThrough(link);
  await page.click('#invite-accept');
  await page.waitForSelector('#invite-error');
  assert.match(await page.innerText('#invite-error'), /already a member/);
  assert.equal(await page.locator('#invite-safety-number').count(), 0);
  // A link that was used already.
  await loginThrough(s.optomLink);
  await page.waitForSelector('#invite-error');
  assert.match(await page.innerText('#invite-error'), /already used/);
  assert.equal(await page.locator('#invite-accept').count(), 0);
  // A link whose fragment was cut short.
  const { clinicId, invitationId } = invitationIds(link);
  await page.goto(`${server.url}/invite/${clinicId}/${invitationId}#k=abc`);
  await page.waitForSelector('#invite-error');
  assert.match(await page.innerText('#invite-error'), /incomplete or damaged/);
  assert.equal(await page.locator('#invite-login, #invite-accept').count(), 0);

  for (const p of [ownerPage, deskPage, optomPage]) {
    assert.deepEqual(p.consoleErrors.filter((e) => /Content Security Policy|Refused|panicked/.test(e)), []);
  }
});

// Prescriptions in a real browser against a real server: a spectacle Rx refused for a missing
// axis, then saved, activated and printed (PDF); a contact-lens Rx refused for its base curve,
// then saved; a void one; the chart exported as FHIR and checked by an independent validator;
// the print page opened with nothing in memory (after logging in again); an optician and a front
// desk see and export only what their role's keys open.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync, statSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import {
  startServer, launchBrowser, newPage, register, login, createClinic, savePatient, openPatient,
  navigateInApp, createInvitation, registerThroughLink, acceptInvitation, admitInvitee, OUTPUT, ROOT,
  unexpectedErrors,
} from './harness.mjs';

// The Python with `fhir.resources` (scripts/setup.sh makes this virtualenv).
const PYTHON = process.env.OV_FHIR_PYTHON || join(ROOT, '.tools/venv/bin/python');
const VALIDATOR = join(ROOT, 'tests/fhir/validate_bundle.py');

let server;
let browser;
let page;
const user = { username: `optom-${Date.now()}`, password: 'amber falcon glides 93 reeds' };
const MINUS = '\u2212';
let printPath;

before(async () => {
  server = await startServer('prescriptions');
  browser = await launchBrowser();
  page = await newPage(browser);
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Downloads the FHIR export of the patient open on `p`; returns the file and the parsed bundle. */
async function exportFhir(p, name) {
  const [download] = await Promise.all([p.waitForEvent('download'), p.click('#fhir-export')]);
  const file = join(OUTPUT, name);
  await download.saveAs(file);
  return { download, file, bundle: JSON.parse(readFileSync(file, 'utf8')) };
}

/** `YYYY-MM-DD` plus whole years (as the app computes the default expiry). */
function addYears(date, years) {
  const [y, m, d] = date.split('-').map(Number);
  const leapDay = m === 2 && d === 29;
  return `${String(y + years).padStart(4, '0')}-${String(m).padStart(2, '0')}-${leapDay ? '28' : String(d).padStart(2, '0')}`;
}

function rows(list) {
  return page.locator(`#${list} tr.rx-row`);
}

test('a spectacle Rx: refused without an axis, saved as a draft, activated', async () => {
  await register(page, server.url, user.username, user.password);
  const clinic = await createClinic(page, 'Harbour Eye Care');
  await clinic.click();
  await page.waitForURL(/\/patients$/);
  await page.click('#new-patient');
  await savePatient(page, {
    given_name: 'Mira', family_name: 'Kovac', date_of_birth: '1971-04-09', sex: 'female',
    'address-line1': '12 Quay Street', 'address-city': 'Portsmouth', 'address-postal_code': 'PO1 2AB',
  });
  await openPatient(page, 'Kovac');
  await page.waitForSelector('#prescriptions');
  await page.waitForSelector('#chart-export');

  await page.click('#srx-new');
  await page.waitForSelector('#srx-form');
  const issued = await page.inputValue('#srx-issued');
  assert.match(issued, /^\d{4}-\d{2}-\d{2}$/);
  assert.equal(await page.inputValue('#srx-expiry'), addYears(issued, 2), 'expires after two years by default');
  // No exam in this chart: nothing to copy, and the form says why.
  assert.equal(await page.isDisabled('#srx-from-exam'), true);
  assert.match(await page.innerText('#srx-from-exam-hint'), /No exam/);

  await page.selectOption('#srx-lens-type', 'progressive');
  await page.fill('#srx-od-sphere', '-2.25');
  await page.fill('#srx-od-cylinder', '-0.50');
  await page.fill('#srx-od-add', '+2.00');
  await page.fill('#srx-od-prism-v', '0.5');
  await page.fill('#srx-os-sphere', '-1.75');
  await page.fill('#srx-os-cylinder', '-0.75');
  await page.fill('#srx-os-axis', '175');
  await page.fill('#srx-os-add', '+2.00');
  // A PD outside 50-75 mm is a warning, shown at once, not an error.
  await page.fill('#srx-pd', '48');
  await page.waitForSelector('#srx-pd-warning');
  assert.match(await page.innerText('#srx-pd-warning'), /PD outside 50 to 75 mm/);
  await page.fill('#srx-notes', 'Anti-reflection coating.');

  // A cylinder without its axis: refused, beside the field, with the focus on it.
  await page.click('#srx-save');
  await page.waitForSelector('#srx-od-axis-error');
  assert.match(await page.innerText('#srx-od-axis-error'), /Axis is required/);
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'srx-od-axis');
  assert.equal(await page.getAttribute('#srx-od-axis', 'aria-invalid'), 'true');
  assert.equal(await rows('srx-list').count(), 0, 'nothing was saved');
  await page.locator('#srx-form').screenshot({ path: join(OUTPUT, 'spectacle-rx-form-errors.png') });

  await page.fill('#srx-od-axis', '180');
  await page.waitForSelector('#srx-od-axis-error', { state: 'detached' });
  await page.fill('#srx-pd', '63');
  await page.waitForSelector('#srx-pd-warning', { state: 'detached' });
  await page.click('#srx-save');
  await page.waitForSelector('#srx-form', { state: 'detached' });
  await rows('srx-list').first().waitFor();
  const draft = rows('srx-list').first();
  assert.equal(await draft.getAttribute('data-status'), 'draft');
  assert.equal(await draft.locator('.rx-od').innerText(),
    `${MINUS}2.25 / ${MINUS}0.50 × 180 add +2.00, 0.5 Δ base up`);
  assert.equal(await draft.locator('.rx-os').innerText(), `${MINUS}1.75 / ${MINUS}0.75 × 175 add +2.00`);
  assert.equal(await draft.locator('.rx-lens').innerText(), 'Progressive');
  assert.equal(await draft.locator('.rx-prescriber').innerText(), user.username);
  assert.match(await draft.locator('.rx-expiry').innerText(), new RegExp(addYears(issued, 2)));
  assert.equal(await draft.locator('.rx-edit').count(), 1, 'a draft can be edited');

  await draft.locator('.rx-activate').click();
  await page.waitForSelector('#srx-list tr.rx-row[data-status="active"]');
  const active = rows('srx-list').first();
  assert.equal(await active.locator('.rx-edit').count(), 0, 'an active Rx is not edited');
  assert.equal(await active.locator('.rx-expired').count(), 0);
  assert.match(await page.innerText('#rx-notice'), /activated/);
  printPath = new URL(await active.locator('a.rx-print').getAttribute('href'), server.url).pathname;
  assert.match(printPath, /^\/clinics\/[0-9a-f-]{36}\/patients\/[0-9a-f-]{36}\/rx\/[0-9a-f-]{36}\/print$/);
  assert.deepEqual(unexpectedErrors(page), []);
});

test('the print page shows the patient and the Rx, and prints without the app around it', async () => {
  await rows('srx-list').first().locator('a.rx-print').click();
  await page.waitForURL((u) => u.pathname === printPath);
  await page.waitForSelector('#print-doc[data-kind="spectacle_rx"]');
  await page.waitForFunction(() => !document.querySelector('#print-button')?.disabled);
  const text = await page.innerText('#print-doc');
  for (const expected of ['Harbour Eye Care', 'Spectacle prescription', 'Mira Kovac', '1971-04-09',
    '12 Quay Street', 'PO1 2AB Portsmouth', `${MINUS}2.25`, `${MINUS}0.50`, '180°', `${MINUS}1.75`,
    `${MINUS}0.75`, '175°', '+2.00', 'Progressive', '63.0 mm', 'Anti-reflection coating.',
    user.username, 'Signature']) {
    assert.ok(text.includes(expected), `the printout shows ${expected}:\n${text}`);
  }
  const od = await page.innerText('#print-rx-table tr.print-eye-od');
  assert.match(od, /OD \(right\)\s+−2\.25\s+−0\.50\s+180°\s+\+2\.00\s+0\.5\s+up/);
  assert.equal(await page.locator('#print-status').count(), 0, 'an active, unexpired Rx has no warning banner');
  await page.screenshot({ path: join(OUTPUT, 'spectacle-rx-screen.png'), fullPage: true });

  // The print button calls window.print().
  await page.evaluate(() => { window.printed = 0; window.print = () => { window.printed += 1; }; });
  await page.click('#print-button');
  // The printout is logged as an access event first, then the print dialog opens.
  await page.waitForFunction(() => window.printed === 1);

  await page.emulateMedia({ media: 'print' });
  assert.equal(await page.isVisible('#print-button'), false);
  assert.equal(await page.isVisible('#print-back'), false);
  assert.equal(await page.isVisible('.app-header'), false);
  assert.equal(await page.isVisible('#print-rx-table'), true);
  const pdf = join(OUTPUT, 'spectacle-rx.pdf');
  await page.pdf({ path: pdf, format: 'A4', margin: { top: '15mm', bottom: '15mm', left: '15mm', right: '15mm' } });
  assert.ok(statSync(pdf).size > 5000, 'a real PDF');
  assert.equal(readFileSync(pdf).subarray(0, 5).toString(), '%PDF-');
  await page.screenshot({ path: join(OUTPUT, 'spectacle-rx-print.png'), fullPage: true });
  await page.emulateMedia({ media: 'screen' });

  await page.click('#print-back');
  await page.waitForSelector('#prescriptions');
  assert.deepEqual(unexpectedErrors(page), []);
});

test('a contact-lens Rx: a base curve of 5.0 mm is refused, 8.6 mm accepted', async () => {
  await page.click('#clrx-new');
  await page.waitForSelector('#clrx-form');
  const issued = await page.inputValue('#clrx-issued');
  assert.equal(await page.inputValue('#clrx-expiry'), addYears(issued, 1), 'expires after a year by default');
  await page.fill('#clrx-brand', 'Acuvue Oasys');
  await page.fill('#clrx-manufacturer', 'Johnson & Johnson');
  await page.fill('#clrx-material', 'senofilcon A');
  await page.selectOption('#clrx-replacement', 'two_weekly');
  await page.fill('#clrx-od-power', '-3.00');
  await page.fill('#clrx-od-bc', '5.0');
  await page.fill('#clrx-od-dia', '14.0');
  await page.fill('#clrx-os-power', '-2.75');
  await page.fill('#clrx-os-cylinder', '-0.75');
  await page.fill('#clrx-os-axis', '90');
  await page.fill('#clrx-os-bc', '8.4');
  await page.fill('#clrx-os-dia', '14.5');
  await page.click('#clrx-save-activate');
  await page.waitForSelector('#clrx-od-bc-error');
  assert.match(await page.innerText('#clrx-od-bc-error'), /Base curve must be between 6\.00 and 10\.00 mm/);
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'clrx-od-bc');
  assert.equal(await rows('clrx-list').count(), 0);

  await page.fill('#clrx-od-bc', '8.6');
  await page.click('#clrx-save-activate');
  await page.waitForSelector('#clrx-list tr.rx-row[data-status="active"]');
  const row = rows('clrx-list').first();
  assert.equal(await row.locator('.rx-lens').innerText(), 'Acuvue Oasys (Johnson & Johnson)');
  assert.equal(await row.locator('.rx-od').innerText(), `${MINUS}3.00, BC 8.6 mm, Ø 14.0 mm`);
  assert.equal(await row.locator('.rx-os').innerText(), `${MINUS}2.75 / ${MINUS}0.75 × 90, BC 8.4 mm, Ø 14.5 mm`);

  // Its printout carries the lens parameters.
  await row.locator('a.rx-print').click();
  await page.waitForSelector('#print-doc[data-kind="contact_lens_rx"]');
  const text = await page.innerText('#print-doc');
  for (const expected of ['Contact lens prescription', 'Mira Kovac', 'Acuvue Oasys', 'Johnson & Johnson',
    'senofilcon A', 'Two-weekly', `${MINUS}3.00`, '8.6', '14.0', `${MINUS}2.75`, '90°', '8.4', '14.5',
    addYears(issued, 1)]) {
    assert.ok(text.includes(expected), `the printout shows ${expected}:\n${text}`);
  }
  await page.click('#print-back');
  await page.waitForSelector('#clrx-list tr.rx-row');
  assert.deepEqual(unexpectedErrors(page), []);
});

test('an Rx entered in error is kept, marked void, and can no longer be printed', async () => {
  await page.click('#srx-new');
  await page.fill('#srx-od-sphere', '+1.00');
  await page.fill('#srx-os-sphere', 'plano');
  await page.click('#srx-save-activate');
  await page.waitForSelector('#srx-form', { state: 'detached' });
  await page.waitForFunction(() => document.querySelectorAll('#srx-list tr.rx-row').length === 2);
  const row = page.locator('#srx-list tr.rx-row', { hasText: '+1.00 DS' });
  assert.equal(await row.getAttribute('data-status'), 'active');
  await row.locator('.rx-void').click();
  await row.locator('.confirm').waitFor();
  assert.match(await row.locator('.confirm').innerText(), /entered in error/);
  await row.locator('.rx-keep').click();
  await row.locator('.confirm').waitFor({ state: 'detached' });
  assert.equal(await row.getAttribute('data-status'), 'active', 'nothing changes without confirming');
  await row.locator('.rx-void').click();
  await row.locator('.rx-confirm').click();
  await page.waitForSelector('#srx-list tr.rx-row[data-status="entered-in-error"]');
  const voided = page.locator('#srx-list tr.rx-row[data-status="entered-in-error"]');
  assert.equal(await voided.locator('a.rx-print').count(), 0);
  assert.equal(await voided.locator('.rx-activate').count(), 0);
  assert.equal(await voided.locator('.rx-cancel').count(), 0);
  assert.deepEqual(unexpectedErrors(page), []);
});

test('FHIR export: a Bundle with the Patient and VisionPrescriptions as typed, valid R4', async () => {
  const patientId = printPath.match(/patients\/([0-9a-f-]{36})/)[1];
  const { download, file, bundle } = await exportFhir(page, 'patient-owner-fhir.json');
  assert.equal(download.suggestedFilename(), `patient-${patientId}-fhir.json`);
  assert.match(await page.innerText('#fhir-export-notice'), /the patient, 0 exams, 3 prescriptions/);

  assert.equal(bundle.resourceType, 'Bundle');
  assert.equal(bundle.type, 'collection');
  const resources = bundle.entry.map((e) => e.resource);
  const patient = resources.find((r) => r.resourceType === 'Patient');
  assert.equal(patient.id, patientId);
  assert.equal(patient.name[0].family, 'Kovac');
  assert.deepEqual(patient.name[0].given, ['Mira']);
  assert.equal(patient.birthDate, '1971-04-09');

  const vps = resources.filter((r) => r.resourceType === 'VisionPrescription');
  assert.equal(vps.length, 3);
  const product = (vp) => vp.lensSpecification[0].product.coding[0].code;
  const eye = (vp, side) => vp.lensSpecification.find((l) => l.eye === side);
  const glasses = vps.find((vp) => product(vp) === 'lens' && vp.status === 'active');
  assert.equal(glasses.prescriber.display, user.username);
  assert.deepEqual(
    (({ sphere, cylinder, axis, add, prism }) => ({ sphere, cylinder, axis, add, prism }))(eye(glasses, 'right')),
    { sphere: -2.25, cylinder: -0.5, axis: 180, add: 2, prism: [{ amount: 0.5, base: 'up' }] },
  );
  assert.deepEqual(
    (({ sphere, cylinder, axis, add }) => ({ sphere, cylinder, axis, add }))(eye(glasses, 'left')),
    { sphere: -1.75, cylinder: -0.75, axis: 175, add: 2 },
  );
  assert.ok(eye(glasses, 'right').note.some((n) => n.text === 'Lens type: progressive'));
  const lenses = vps.find((vp) => product(vp) === 'contact');
  assert.equal(lenses.status, 'active');
  assert.deepEqual(
    (({ power, backCurve, diameter, brand }) => ({ power, backCurve, diameter, brand }))(eye(lenses, 'right')),
    { power: -3, backCurve: 8.6, diameter: 14, brand: 'Acuvue Oasys' },
  );
  assert.deepEqual(
    (({ power, cylinder, axis, backCurve, diameter }) => ({ power, cylinder, axis, backCurve, diameter }))(eye(lenses, 'left')),
    { power: -2.75, cylinder: -0.75, axis: 90, backCurve: 8.4, diameter: 14.5 },
  );
  assert.equal(eye(lenses, 'right').duration.value, 2);
  assert.equal(eye(lenses, 'right').duration.code, 'wk');
  assert.ok(vps.some((vp) => vp.status === 'entered-in-error'), 'the void Rx is exported as such');
  await page.locator('#prescriptions').screenshot({ path: join(OUTPUT, 'prescriptions-list.png') });

  // The independent validator (Python fhir.resources): exit code 0, or execFileSync throws.
  const out = execFileSync(PYTHON, [VALIDATOR, file], { encoding: 'utf8' });
  assert.match(out, /valid R4 Bundle/);
  assert.deepEqual(unexpectedErrors(page), []);
});

test('the print page opened with nothing in memory opens the clinic and syncs first', async () => {
  const fresh = await newPage(browser);
  await login(fresh, server.url, user.username, user.password);
  await fresh.waitForURL(/\/clinics$/);
  await navigateInApp(fresh, printPath);
  await fresh.waitForSelector('#print-doc[data-kind="spectacle_rx"]');
  const text = await fresh.innerText('#print-doc');
  assert.ok(text.includes('Mira Kovac'));
  assert.ok(text.includes('Harbour Eye Care'));
  assert.ok(text.includes(`${MINUS}2.25`));
  // An address that is not a record of the chart says so.
  await navigateInApp(fresh, printPath.replace(/rx\/[0-9a-f-]{36}/, `rx/${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)}`));
  await fresh.waitForSelector('#print-missing');
  assert.equal(await fresh.isDisabled('#print-button'), true);
  assert.deepEqual(unexpectedErrors(fresh), []);
  await fresh.context().close();
});

test('an optician reads and prints the prescriptions; the front desk exports the patient alone', async () => {
  const stamp = Date.now();
  const optician = { username: `optician-${stamp}`, password: 'violet harbour rows 27 kites' };
  const desk = { username: `desk-${stamp}`, password: 'saffron meadow naps 64 wrens' };
  // The owner (still on the patient's page) invites both.
  await navigateInApp(page, printPath.replace(/\/patients\/.*$/, '/members'));
  await page.waitForSelector('#invite-role');
  const links = { optician: await createInvitation(page, 'optician'), desk: await createInvitation(page, 'front_desk') };
  const pages = { optician: await newPage(browser), desk: await newPage(browser) };
  for (const [role, who] of [['optician', optician], ['desk', desk]]) {
    await registerThroughLink(pages[role], links[role], who);
    await acceptInvitation(pages[role]);
    await admitInvitee(page, links[role]);
  }
  for (const p of Object.values(pages)) {
    await p.click('#invite-to-clinics');
    await p.locator('a.clinic-item', { hasText: 'Harbour Eye Care' }).click();
    await p.waitForURL(/\/patients$/);
    await openPatient(p, 'Kovac');
    await p.waitForSelector('#chart-export');
  }

  // The optician holds the prescriptions key: the lists, the print page, an export without exams.
  const o = pages.optician;
  await o.waitForFunction(() => document.querySelectorAll('#prescriptions tr.rx-row').length === 3);
  const { bundle: ob } = await exportFhir(o, 'patient-optician-fhir.json');
  assert.match(await o.innerText('#fhir-export-notice'), /the patient, 0 exams, 3 prescriptions/);
  assert.equal(ob.entry.filter((e) => e.resource.resourceType === 'VisionPrescription').length, 3);
  await o.locator('#srx-list tr.rx-row[data-status="active"] a.rx-print').click();
  await o.waitForSelector('#print-doc[data-kind="spectacle_rx"]');
  assert.ok((await o.innerText('#print-doc')).includes(`${MINUS}2.25`));

  // The front desk holds demographics only: no prescriptions section, the patient alone exported.
  const d = pages.desk;
  await d.waitForTimeout(300);
  assert.equal(await d.locator('#prescriptions').count(), 0);
  const { file, bundle: db } = await exportFhir(d, 'patient-front-desk-fhir.json');
  assert.match(await d.innerText('#fhir-export-notice'), /the patient, 0 exams, 0 prescriptions/);
  assert.deepEqual(db.entry.map((e) => e.resource.resourceType), ['Patient']);
  assert.equal(db.entry[0].resource.name[0].family, 'Kovac');
  execFileSync(PYTHON, [VALIDATOR, file], { encoding: 'utf8' });

  for (const p of [page, o, d]) assert.deepEqual(p.consoleErrors.filter((e) => !/status of 4\d\d/.test(e)), []);
  await o.context().close();
  await d.context().close();
});

// Exams on the patient's page, in a real browser against a real server process: three exams on
// different dates, visual acuity in several notations, a refraction typed in plus-cylinder form
// (saved transposed), validation errors and warnings, editing a draft, signing (then read-only)
// and amending, the exam list's IOP flags, and the IOP and VA trend charts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  startServer, launchBrowser, newPage, register, createClinic, savePatient, openPatient, OUTPUT,
  unexpectedErrors,
} from './harness.mjs';

let server;
let browser;
const optom = { username: `iris-${Date.now()}`, password: 'amber kestrel folds 58 maps' };

before(async () => {
  server = await startServer('exams');
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/** The list entry of the exam dated `date`. */
function examItem(page, date) {
  return page.locator('li.exam-item', { has: page.locator('.exam-date', { hasText: date }) });
}

/** Opens the empty exam form. */
async function openNewExam(page) {
  await page.click('#exam-new');
  await page.waitForSelector('#exam-form');
}

/** Fills the inputs of the open exam form: `{ '#id': value }`; selects and checkboxes by kind. */
async function fill(page, values) {
  for (const [sel, value] of Object.entries(values)) {
    const el = page.locator(sel);
    const tag = await el.evaluate((e) => `${e.tagName}:${e.type}`);
    if (tag.startsWith('SELECT')) await el.selectOption(value);
    else if (tag === 'INPUT:checkbox') await el.setChecked(value);
    else await el.fill(value);
  }
}

/** Saves the open form and waits for it to close and the exam to be listed. */
async function saveExam(page, date) {
  await page.click('#exam-save');
  await page.waitForSelector('#exam-form', { state: 'detached' });
  await examItem(page, date).waitFor();
}

test('exams: record, validate, transpose, edit, sign, amend, and chart the trends', async () => {
  const page = await newPage(browser);
  await register(page, server.url, optom.username, optom.password);
  const clinic = await createClinic(page, 'Lakeside Optometry');
  await clinic.click();
  await page.waitForURL(/\/patients$/);
  await page.click('#new-patient');
  await savePatient(page, {
    given_name: 'Jane', family_name: 'Doe', date_of_birth: '1958-04-02', sex: 'female',
  });
  await openPatient(page, 'Doe');
  await page.waitForSelector('#exams');
  assert.match(await page.innerText('#exams'), /No exams yet/);
  assert.equal(await page.locator('#trends').count(), 0, 'no trends without exams');

  // ---- Exam 1 (2024): plus-cylinder entry, VA in two notations, live logMAR readout.
  await openNewExam(page);
  assert.equal(await page.inputValue('#exam-date'), await page.evaluate(() => {
    const d = new Date();
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
  }), 'the date defaults to today');
  assert.match(await page.inputValue('#iop-time'), /^\d\d:\d\d$/, 'the IOP time defaults to now');
  assert.equal((await page.innerText('#exam-provider')).trim(), optom.username);
  await page.fill('#va-od-entered', '20/');
  await page.waitForFunction(() => document.querySelector('#va-od-entered')?.getAttribute('aria-invalid') === 'true');
  assert.match(await page.innerText('#va-od-entered-logmar'), /Snellen fraction/);
  await fill(page, {
    '#exam-type': 'comprehensive',
    '#exam-date': '2024-11-20',
    '#exam-chief-complaint': 'Blurred distance vision for 3 months.',
    '#va-od-entered': '20/40',
    '#va-os-entered': '6/6',
    '#va-od-dist-sc': 'CF',
    '#rx-plus-cyl': true,
    '#rx-od-sphere': '-2.00',
    '#rx-od-cylinder': '+1.00',
    '#rx-od-axis': '90',
    '#rx-os-sphere': '-1.50',
    '#iop-od': '16',
    '#iop-os': '17',
    '#iop-method': 'goldmann',
    '#iop-time': '09:40',
    '#cd-od': '0.30',
    '#cd-os': '0.35',
    '#dx-code-0': 'h52.13',
    '#dx-laterality-0': 'both',
    '#exam-plan': 'Spectacles; review in 12 months.',
  });
  assert.equal((await page.innerText('#va-od-entered-logmar')).trim(), 'logMAR 0.30');
  assert.equal((await page.innerText('#va-os-entered-logmar')).trim(), 'logMAR 0.00');
  assert.match(await page.innerText('#va-od-dist-sc-logmar'), /counting fingers/);
  assert.match(await page.innerText('.refraction-preview'), /OD -1\.00 \/ -1\.00 x 180/);
  await saveExam(page, '2024-11-20');
  const first = examItem(page, '2024-11-20');
  assert.match(await first.locator('.exam-rx').innerText(), /OD -1\.00 \/ -1\.00 x 180 · OS -1\.50 DS/,
    'the plus-cylinder entry is saved as its minus-cylinder transposition');
  assert.match(await first.locator('.exam-summary').innerText(), /Draft/);
  // The saved exam is open: all its values, read-only.
  const detail1 = first.locator('.exam-detail');
  await detail1.waitFor();
  const values1 = await detail1.innerText();
  assert.match(values1, /20\/40 \(logMAR 0\.30\)/);
  assert.match(values1, /H52\.13 \(Both eyes \(OU\)\)/);
  assert.match(values1, /16 mmHg \(Goldmann, 09:40\)/);

  // ---- Editing the draft shows the saved (minus-cylinder) values; a change makes version 2.
  await first.locator('#exam-edit').click();
  await page.waitForSelector('#exam-form');
  assert.equal(await page.inputValue('#rx-od-sphere'), '-1.00');
  assert.equal(await page.inputValue('#rx-od-cylinder'), '-1.00');
  assert.equal(await page.inputValue('#rx-od-axis'), '180');
  assert.equal(await page.isChecked('#rx-plus-cyl'), false);
  assert.equal(await page.inputValue('#va-os-entered'), '6/6');
  await page.fill('#exam-plan', 'Spectacles; review in 12 months. Advised on night driving.');
  await saveExam(page, '2024-11-20');
  assert.match(await examItem(page, '2024-11-20').locator('.exam-detail').innerText(), /night driving/);

  // ---- Exam 2 (2025): validation errors beside the fields, warnings that do not block.
  await openNewExam(page);
  await fill(page, {
    '#exam-type': 'follow_up',
    '#exam-date': '2025-11-18',
    '#va-od-entered': '20/30',
    '#va-os-entered': '20/25',
    '#rx-od-sphere': '-22.00',
    '#rx-os-sphere': '-1.00',
    '#rx-os-cylinder': '-0.75',
    '#rx-os-axis': '0',
    '#iop-od': '19',
    '#iop-os': '20',
  });
  // A warning shows as soon as the value is typed.
  await page.waitForSelector('#rx-od-sphere-warning');
  assert.match(await page.innerText('#rx-od-sphere-warning'), /±20\.00 D/);
  await page.click('#exam-save');
  await page.waitForSelector('#rx-os-axis-error');
  assert.match(await page.innerText('#rx-os-axis-error'), /Axis must be a whole number from 1 to 180/);
  assert.equal(await page.getAttribute('#rx-os-axis', 'aria-invalid'), 'true');
  assert.match(await page.innerText('#exam-errors'), /correct the problem/);
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'rx-os-axis', 'focus moves to the error');
  await page.locator('#exam-form').screenshot({ path: join(OUTPUT, 'exam-form-errors.png') });
  // A missing axis with a cylinder is an error too.
  await page.fill('#rx-os-axis', '');
  await page.waitForFunction(() => /Axis is required/.test(document.querySelector('#rx-os-axis-error')?.textContent ?? ''));
  await page.fill('#rx-os-axis', '175');
  await page.waitForSelector('#rx-os-axis-error', { state: 'detached' });
  assert.equal(await page.locator('#exam-errors').count(), 0);
  assert.match(await page.innerText('#exam-warnings'), /Sphere beyond ±20\.00 D/);
  await saveExam(page, '2025-11-18');
  assert.match(await examItem(page, '2025-11-18').locator('.exam-rx').innerText(), /OD -22\.00 DS · OS -1\.00 \/ -0\.75 x 175/);

  // ---- Exam 3 (2026): IOP above 21 mmHg is flagged.
  await openNewExam(page);
  await fill(page, {
    '#exam-type': 'medical',
    '#exam-date': '2026-11-20',
    '#exam-chief-complaint': 'Glaucoma suspect review.',
    '#va-od-entered': '20/20',
    '#va-os-entered': '20/25',
    '#rx-od-sphere': '-1.00',
    '#rx-od-cylinder': '-0.50',
    '#rx-od-axis': '180',
    '#rx-od-add': '+2.00',
    '#rx-os-sphere': '-1.25',
    '#rx-os-add': '+2.00',
    '#iop-od': '23',
    '#iop-os': '22',
    '#iop-method': 'tono_pen',
    '#cd-od': '0.55',
    '#cd-os': '0.5',
    '#dx-code-0': 'H40.013',
    '#dx-laterality-0': 'both',
    '#exam-plan': 'Visual fields and OCT; repeat IOP in 4 weeks.',
  });
  await page.waitForSelector('#iop-od ~ .elevated-badge, .with-badge .elevated-badge');
  await saveExam(page, '2026-11-20');

  // Newest first, every exam listed once.
  const dates = await page.locator('li.exam-item .exam-date').allInnerTexts();
  assert.deepEqual(dates, ['2026-11-20', '2025-11-18', '2024-11-20']);
  const third = examItem(page, '2026-11-20');
  const odIop = third.locator('.iop-value[data-eye="od"]');
  assert.match(await odIop.innerText(), /OD 23/);
  assert.match(await odIop.getAttribute('class'), /\belevated\b/);
  assert.match(await odIop.innerText(), /elevated/);
  assert.match(await third.locator('.iop-value[data-eye="os"]').getAttribute('class'), /\belevated\b/);
  assert.doesNotMatch(await examItem(page, '2025-11-18').locator('.exam-iop').innerText(), /elevated/,
    '19/20 mmHg is not flagged');

  // ---- Trends: one point per eye per exam.
  await page.waitForSelector('#trends svg.trend-iop');
  assert.equal(await page.locator('#trends .trend-iop .pt-od').count(), 3);
  assert.equal(await page.locator('#trends .trend-iop .pt-os').count(), 3);
  assert.equal(await page.locator('#trends .trend-va .pt-od').count(), 3);
  assert.equal(await page.locator('#trends .trend-va .pt-os').count(), 3);
  assert.equal(await page.locator('#trends .trend-iop .threshold').count(), 1);
  const tips = await page.locator('#trends .trend-iop .pt-od title').allTextContents();
  assert.deepEqual(tips, ['OD 2024-11-20: 16 mmHg', 'OD 2025-11-18: 19 mmHg', 'OD 2026-11-20: 23 mmHg']);
  assert.match(await page.getAttribute('#trends .trend-iop', 'aria-label'), /Intraocular pressure/);
  assert.match(await page.locator('#trends .trend-va').innerHTML(), /20\/20/);
  // OD at 23 mmHg is drawn above the 21 mmHg line (SVG y grows downwards).
  const { pointY, lineY } = await page.evaluate(() => ({
    pointY: Number(document.querySelectorAll('#trends .trend-iop .pt-od')[2].getAttribute('cy')),
    lineY: Number(document.querySelector('#trends .trend-iop .threshold').getAttribute('y1')),
  }));
  assert.ok(pointY < lineY, `23 mmHg (y ${pointY}) is above the 21 mmHg line (y ${lineY})`);

  // ---- Signing exam 3: then read-only, amendable only.
  if (await third.locator('.exam-detail').count() === 0) await third.locator('.exam-summary').click();
  await third.locator('#exam-sign').click();
  await page.click('#exam-sign-confirm');
  await page.waitForSelector('li.exam-item[data-signed="true"]');
  const signed = examItem(page, '2026-11-20');
  assert.equal(await signed.getAttribute('data-signed'), 'true');
  assert.match(await signed.locator('.exam-summary').innerText(), new RegExp(`Signed\\s+by ${optom.username}`));
  await signed.locator('.exam-detail').waitFor();
  assert.equal(await signed.locator('#exam-edit').count(), 0, 'a signed exam cannot be opened for edits');
  assert.equal(await signed.locator('#exam-sign').count(), 0);
  assert.equal(await page.locator('#exam-form').count(), 0);
  await signed.locator('#exam-amend').click();
  await page.fill('#amendment-text', 'IOP re-checked at 16:00 with Goldmann: OD 21, OS 20 mmHg.');
  await page.click('#amendment-save');
  await signed.locator('.amendment-text').waitFor();
  assert.match(await signed.locator('.amendment-text').innerText(), /re-checked at 16:00/);
  assert.match(await signed.locator('.amendment-meta').innerText(), new RegExp(`${optom.username}, \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d`));
  // The signed values themselves are unchanged.
  assert.match(await signed.locator('.exam-detail').innerText(), /23 mmHg \(Tono-Pen/);
  // The drafts can still be edited.
  await examItem(page, '2025-11-18').locator('.exam-summary').click();
  assert.equal(await examItem(page, '2025-11-18').locator('#exam-edit').count(), 1);

  await page.locator('#trends').screenshot({ path: join(OUTPUT, 'exam-trends.png') });
  await page.locator('#exams').screenshot({ path: join(OUTPUT, 'exam-list.png') });
  await page.screenshot({ path: join(OUTPUT, 'exams.png'), fullPage: true });
  assert.deepEqual(unexpectedErrors(page), []);
  await page.context().close();
});

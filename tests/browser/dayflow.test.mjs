// A clinic's full day in a real browser against a real server: book an appointment, check the
// patient in from the calendar, record an exam with refraction and IOP and sign it, issue a
// spectacle Rx from it and print it (PDF), invoice and take a payment, attach a 20 MB image with
// its progress shown, see the IOP chart over three visits, complete the appointment, and export
// the chart as FHIR (parsed here, and judged by the independent fhir.resources validator).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  startServer, launchBrowser, newPage, register, createClinic, savePatient, openPatient,
  navigateInApp, ROOT, OUTPUT,
} from './harness.mjs';

const stamp = Date.now();
let server;
let browser;

before(async () => {
  server = await startServer('dayflow');
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

function isoDay(offset = 0) {
  const d = new Date();
  d.setDate(d.getDate() + offset);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

async function fillExam(page, values) {
  for (const [sel, value] of Object.entries(values)) {
    const el = page.locator(sel);
    const tag = await el.evaluate((e) => e.tagName);
    if (tag === 'SELECT') await el.selectOption(value);
    else await el.fill(value);
  }
}

async function recordExam(page, date, values) {
  await page.click('#exam-new');
  await page.waitForSelector('#exam-form');
  await fillExam(page, { '#exam-date': date, ...values });
  await page.click('#exam-save');
  await page.waitForSelector('#exam-form', { state: 'detached' });
  await page.locator('li.exam-item', { has: page.locator('.exam-date', { hasText: date }) }).waitFor();
}

test('a full clinic day, from booking to FHIR export', async () => {
  const page = await newPage(browser);
  await register(page, server.url, `dr-day-${stamp}`, 'saffron keel drifts 45 owls');
  await (await createClinic(page, 'Day Flow Optometry')).click();
  await page.waitForURL(/\/patients$/);
  const listPath = new URL(page.url()).pathname;
  await page.click('#new-patient');
  await page.waitForSelector('#given_name');
  await savePatient(page, {
    given_name: 'Nora', family_name: 'Lindqvist', date_of_birth: '1961-04-12', sex: 'female',
    phone: '+1 555 410 2200', email: 'nora@example.org', 'address-line1': '4 Harbour Rd',
    'address-city': 'Portsmouth', chart_number: 'C-7731',
  });

  // 08:55 — the front desk books Nora for 09:00 today.
  await openPatient(page, 'Lindqvist');
  await page.waitForSelector('#appt-book');
  await page.fill('#appt-date', isoDay(0));
  await page.fill('#appt-time', '09:00');
  await page.selectOption('#appt-type', 'comprehensive');
  await page.fill('#appt-reason', 'Blurred distance vision');
  await page.click('#appt-book');
  await page.waitForSelector('li.appointment[data-status="Booked"]');

  // 09:00 — she arrives: checked in from today's calendar, then taken into the exam room.
  await navigateInApp(page, listPath.replace(/\/patients$/, '/calendar'));
  await page.waitForSelector('li.cal-appt');
  await page.click('li.cal-appt button.appt-status-arrived');
  await page.waitForSelector('li.cal-appt[data-status="Arrived"]');
  await page.click('li.cal-appt button.appt-status-in-exam');
  await page.waitForSelector('li.cal-appt[data-status="In exam"]');
  await page.click('li.cal-appt a.cal-patient');
  await page.waitForSelector('#exam-new');

  // Two earlier visits (entered from paper records), then today's exam.
  await recordExam(page, '2024-10-03', { '#va-od-entered': '20/25', '#va-os-entered': '20/25', '#iop-od': '15', '#iop-os': '16' });
  await recordExam(page, '2025-10-09', { '#va-od-entered': '20/30', '#va-os-entered': '20/25', '#iop-od': '18', '#iop-os': '18' });
  await recordExam(page, isoDay(0), {
    '#exam-chief-complaint': 'Blurred distance vision',
    '#va-od-entered': '20/40', '#va-os-entered': '20/30',
    '#rx-od-sphere': '-2.25', '#rx-od-cylinder': '-0.50', '#rx-od-axis': '180', '#rx-od-add': '+2.00',
    '#rx-os-sphere': '-2.00', '#rx-os-cylinder': '-0.25', '#rx-os-axis': '175', '#rx-os-add': '+2.00',
    '#iop-od': '23', '#iop-os': '20', '#iop-method': 'goldmann',
    '#cd-od': '0.45', '#cd-os': '0.40',
    '#dx-code-0': 'H52.13', '#dx-laterality-0': 'both',
    '#exam-plan': 'Progressive spectacles; repeat IOP and fields in 3 months.',
  });
  // Sign today's exam.
  const today = page.locator('li.exam-item', { has: page.locator('.exam-date', { hasText: isoDay(0) }) });
  if (await today.locator('.exam-detail').count() === 0) await today.locator('.exam-summary').click();
  await today.locator('#exam-sign').click();
  await page.click('#exam-sign-confirm');
  await page.waitForSelector('li.exam-item[data-signed="true"]');
  assert.match(await today.locator('.iop-value[data-eye="od"]').getAttribute('class'), /\belevated\b/);

  // The IOP chart over the three visits.
  await page.waitForSelector('#trends svg.trend-iop');
  assert.equal(await page.locator('#trends .trend-iop .pt-od').count(), 3);
  assert.equal(await page.locator('#trends .trend-iop .pt-os').count(), 3);
  await page.locator('#trends').screenshot({ path: join(OUTPUT, 'dayflow-trends.png') });

  // A spectacle Rx from today's exam, activated and printed.
  await page.click('#srx-new');
  await page.waitForSelector('#srx-form');
  await page.selectOption('#srx-lens-type', 'progressive');
  await page.click('#srx-from-exam');
  assert.equal(await page.inputValue('#srx-od-sphere'), '-2.25');
  assert.equal(await page.inputValue('#srx-os-axis'), '175');
  await page.fill('#srx-pd', '63');
  await page.click('#srx-save-activate');
  await page.waitForSelector('#srx-list tr.rx-row[data-status="active"]');
  await page.locator('#srx-list tr.rx-row').first().locator('a.rx-print').click();
  await page.waitForSelector('#print-doc[data-kind="spectacle_rx"]');
  // /clinics/{clinic}/patients/{chart}/rx/{record}/print
  const chartId = new URL(page.url()).pathname.split('/')[4];
  assert.match(chartId, /^[0-9a-f-]{36}$/);
  await page.waitForFunction(() => !document.querySelector('#print-button')?.disabled);
  const printed = await page.innerText('#print-doc');
  for (const expected of ['Lindqvist', 'Day Flow Optometry', '−2.25', '175', '63']) {
    assert.ok(printed.includes(expected), `the printout shows ${expected}:\n${printed}`);
  }
  await page.evaluate(() => { window.__printed = 0; window.print = () => { window.__printed += 1; }; });
  await page.click('#print-button');
  await page.waitForFunction(() => window.__printed === 1);
  await page.emulateMedia({ media: 'print' });
  const pdf = join(OUTPUT, 'dayflow-spectacle-rx.pdf');
  await page.pdf({ path: pdf, format: 'A4' });
  assert.equal(readFileSync(pdf).subarray(0, 5).toString(), '%PDF-');
  await page.emulateMedia({ media: 'screen' });
  await page.click('#print-back');
  await page.waitForSelector('#billing');

  // The invoice and the patient's card payment.
  await page.click('#invoice-new');
  await page.waitForSelector('#invoice-form');
  await page.fill('#line-code-0', '92004');
  await page.fill('#line-desc-0', 'Comprehensive eye exam');
  await page.fill('#line-qty-0', '1');
  await page.fill('#line-price-0', '150.00');
  await page.fill('#line-insurance-0', '90.00');
  await page.click('#invoice-post');
  await page.locator('tr.invoice-row[data-status="posted"]').waitFor();
  await page.click('#payment-add');
  await page.waitForSelector('#payment-amount');
  await page.fill('#payment-amount', '60.00');
  await page.selectOption('#payment-method', 'card');
  await page.click('#payment-save');
  await page.waitForFunction(() => document.querySelector('tr.invoice-row .invoice-balance')?.textContent.trim() === '0.00');

  // A 20 MB fundus photo, encrypted here and uploaded with its progress shown.
  const image = Buffer.alloc(20 * 1024 * 1024);
  for (let i = 0; i < image.length; i += 4096) image.writeUInt32LE((i * 2654435761) >>> 0, i);
  const imagePath = join(OUTPUT, `dayflow-fundus-${stamp}.jpg`);
  writeFileSync(imagePath, image);
  await page.evaluate(() => {
    window.__progress = new Set();
    new MutationObserver(() => {
      const p = document.querySelector('#file-progress');
      if (p) window.__progress.add(p.getAttribute('value'));
    }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['value'] });
  });
  await page.setInputFiles('#file-input', imagePath);
  await page.selectOption('#file-category', 'fundus_photo');
  await page.click('#file-attach');
  await page.waitForSelector('li.attachment button.attachment-download', { timeout: 120000 });
  const progress = await page.evaluate(() => [...window.__progress]);
  assert.ok(progress.length >= 5, `progress shown: ${progress.join(',')}`);

  // 09:40 — the appointment is completed.
  await navigateInApp(page, listPath.replace(/\/patients$/, '/calendar'));
  await page.waitForSelector('li.cal-appt[data-status="In exam"]');
  await page.click('li.cal-appt button.appt-status-completed');
  await page.waitForSelector('li.cal-appt[data-status="Completed"]');

  // The chart as FHIR, for the patient's request under GDPR Art. 15 / HIPAA right of access.
  await page.click('li.cal-appt a.cal-patient');
  await page.waitForSelector('#fhir-export');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#fhir-export')]);
  const fhirPath = join(OUTPUT, 'dayflow-fhir.json');
  await download.saveAs(fhirPath);
  const bundle = JSON.parse(readFileSync(fhirPath, 'utf8'));
  assert.equal(bundle.resourceType, 'Bundle');
  const resources = bundle.entry.map((e) => e.resource);
  const patient = resources.find((r) => r.resourceType === 'Patient');
  assert.equal(patient.name[0].family, 'Lindqvist');
  const vp = resources.filter((r) => r.resourceType === 'VisionPrescription');
  assert.equal(vp.length, 1);
  const od = vp[0].lensSpecification.find((l) => l.eye === 'right');
  assert.deepEqual([od.sphere, od.cylinder, od.axis, od.add], [-2.25, -0.5, 180, 2]);
  const iop = resources.filter((r) => r.resourceType === 'Observation'
    && r.code?.coding?.some((c) => c.code === '56844-4'));
  assert.equal(iop.length, 6, 'IOP per eye for three visits');
  execFileSync(join(ROOT, '.tools/venv/bin/python'), [join(ROOT, 'tests/fhir/validate_bundle.py'), fhirPath], { stdio: 'inherit' });
  assert.ok(statSync(fhirPath).size > 1000);

  // The printout and the export are on the owner's access log, against this chart.
  const clinicId = listPath.split('/')[2];
  const logged = await page.evaluate(async (id) => {
    const r = await fetch(`/api/clinics/${id}/audit?since=0&limit=1000`);
    return (await r.json()).entries.map((e) => [e.action, e.target]);
  }, clinicId);
  for (const action of ['document_spectacle_rx', 'document_fhir_export', 'file_uploaded']) {
    assert.ok(logged.some(([a, t]) => a === action && (action === 'file_uploaded' || t === chartId)),
      `${action} for ${chartId} on the access log: ${JSON.stringify(logged.filter(([a]) => a.startsWith('document') || a.startsWith('file')))}`);
  }

  await page.screenshot({ path: join(OUTPUT, 'dayflow-patient.png'), fullPage: true });
  assert.deepEqual(page.consoleErrors.filter((e) => !/status of 4\d\d/.test(e)), []);
  await page.close();
});

// Scheduling, reminders and files in a real browser against a real server: book appointments on
// a patient's page, see them on the day and week calendar and check a patient in there; the
// reminder work list for tomorrow with its CSV for a mail merge; attach a 20 MB image (encrypted
// in the browser, progress shown), see its thumbnail, download it byte for byte, and refuse a
// chunk altered on the way back; the new patient fields (guardian for a minor, insurance plans,
// consents, recall) round-trip; search tolerates a typo.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  startServer, launchBrowser, newPage, register, createClinic, savePatient, openPatient,
  navigateInApp, dataFiles, OUTPUT,
} from './harness.mjs';

const stamp = Date.now();
let server;
let browser;

before(async () => {
  server = await startServer('schedule-files');
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

function isoDay(offset) {
  const d = new Date();
  d.setDate(d.getDate() + offset);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

/** A 24-bit BMP of w × h pixels with a gradient and noise: a real image the browser decodes. */
function bmp(w, h) {
  const row = Math.ceil((w * 3) / 4) * 4;
  const size = 54 + row * h;
  const b = Buffer.alloc(size);
  b.write('BM', 0);
  b.writeUInt32LE(size, 2);
  b.writeUInt32LE(54, 10);
  b.writeUInt32LE(40, 14);
  b.writeInt32LE(w, 18);
  b.writeInt32LE(h, 22);
  b.writeUInt16LE(1, 26);
  b.writeUInt16LE(24, 28);
  b.writeUInt32LE(row * h, 34);
  const noise = randomBytes(row * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = 54 + y * row + x * 3;
      b[o] = (x * 255 / w) ^ (noise[o - 54] & 7);
      b[o + 1] = (y * 255 / h) ^ (noise[o - 53] & 7);
      b[o + 2] = 128;
    }
  }
  return b;
}

async function newPatient(page, fields) {
  await page.click('#new-patient');
  await page.waitForSelector('#given_name');
  await savePatient(page, fields);
}

test('appointments, calendar, check-in and the reminder work list', async () => {
  const page = await newPage(browser);
  await register(page, server.url, `desk-${stamp}`, 'harbour violet 62 sails');
  const clinic = await createClinic(page, 'Northside Eye Care');
  await clinic.click();
  await page.waitForURL(/\/patients$/);
  const listPath = new URL(page.url()).pathname;
  await newPatient(page, {
    given_name: 'Rosa', family_name: 'Delgado', date_of_birth: '1972-05-17',
    phone: '+1 555 300 1000', email: 'rosa@example.org', 'address-line1': '12 Elm St',
    'address-city': 'Springfield', recall_due: isoDay(10),
  });
  await newPatient(page, {
    given_name: 'Tom', family_name: 'Baker', date_of_birth: '1990-01-02', phone: '555 300 2000',
  });

  // Book two appointments for Rosa: tomorrow 09:30, and today 14:00.
  await openPatient(page, 'Delgado');
  await page.waitForSelector('#appt-book');
  await page.fill('#appt-date', isoDay(1));
  await page.fill('#appt-time', '09:30');
  await page.selectOption('#appt-type', 'comprehensive');
  await page.fill('#appt-reason', 'Annual exam');
  await page.click('#appt-book');
  await page.waitForSelector('li.appointment');
  await page.fill('#appt-date', isoDay(0));
  await page.fill('#appt-time', '14:00');
  await page.selectOption('#appt-type', 'follow_up');
  await page.click('#appt-book');
  await page.waitForFunction(() => document.querySelectorAll('li.appointment').length === 2);
  // A bad duration is refused with a clear message.
  await page.fill('#appt-duration', '2');
  await page.click('#appt-book');
  await page.waitForSelector('#appt-error');
  assert.match(await page.textContent('#appt-error'), /between 5 and 480/);

  // Today's calendar: check Rosa in, then start the exam.
  await navigateInApp(page, listPath.replace(/\/patients$/, '/calendar'));
  await page.waitForSelector('li.cal-appt');
  assert.equal(await page.locator('li.cal-appt').count(), 1);
  assert.match(await page.textContent('li.cal-appt'), /14:00.*Delgado, Rosa.*Follow-up/s);
  await page.click('li.cal-appt button.appt-status-arrived');
  await page.waitForSelector('li.cal-appt[data-status="Arrived"]');
  await page.click('li.cal-appt button.appt-status-in-exam');
  await page.waitForSelector('li.cal-appt[data-status="In exam"]');
  // The week shows both.
  await page.click('#cal-week');
  await page.waitForFunction(() => document.querySelectorAll('li.cal-appt').length >= 1);
  const weekCount = await page.locator('li.cal-appt').count();
  assert.ok(weekCount >= 1 && weekCount <= 2, `week shows ${weekCount}`);
  await page.screenshot({ path: join(OUTPUT, 'calendar-week.png'), fullPage: true });

  // Tomorrow's work list: Rosa's 09:30 appointment and her recall (due in 10 days).
  await navigateInApp(page, listPath.replace(/\/patients$/, '/worklist'));
  await page.waitForSelector('tr.task-row');
  assert.equal(await page.textContent('#worklist-day'), isoDay(1));
  const rows = await page.locator('tr.task-row').allInnerTexts();
  assert.equal(rows.length, 2, rows.join('\n'));
  assert.match(rows[0], /Delgado, Rosa[\s\S]*Appointment .*09:30/);
  assert.match(rows[1], /Recall due/);
  // Log a call on the appointment.
  await page.selectOption('#contact-channel-0', 'phone');
  await page.selectOption('#contact-outcome-0', 'left_message');
  await page.fill('#contact-notes-0', 'Voicemail');
  await page.click('tr.task-row >> nth=0 >> button.contact-log');
  await page.waitForFunction(() => /Left a message/.test(document.querySelector('tr.task-row .task-last')?.textContent ?? ''));
  // The CSV for the mail merge.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#worklist-csv')]);
  const csvPath = join(OUTPUT, 'reminders.csv');
  await download.saveAs(csvPath);
  const csv = readFileSync(csvPath, 'utf8').split('\r\n').filter(Boolean);
  assert.equal(csv.length, 3, csv.join('\n'));
  assert.match(csv[0], /^"kind","family_name","given_name","phone","email"/);
  assert.match(csv[1], /^"appointment","Delgado","Rosa","'\+1 555 300 1000","rosa@example.org","12 Elm St"/);
  await page.emulateMedia({ media: 'print' });
  await page.screenshot({ path: join(OUTPUT, 'worklist-print.png'), fullPage: true });
  await page.emulateMedia({ media: 'screen' });

  // Search with a typo still finds Rosa, exact matches rank first.
  await navigateInApp(page, listPath);
  await page.waitForSelector('tr.patient-row');
  await page.fill('#search', 'delgada');
  await page.waitForFunction(() => document.querySelectorAll('tr.patient-row').length === 1);
  assert.match(await page.locator('tr.patient-row').first().innerText(), /Delgado/);
  assert.deepEqual(page.consoleErrors.filter((e) => !/status of 4\d\d/.test(e)), []);
  await page.close();
});

test('patient details: a minor needs a guardian; plans and consents round-trip', async () => {
  const page = await newPage(browser);
  await register(page, server.url, `details-${stamp}`, 'meadow copper 18 kites');
  const clinic = await createClinic(page, 'Details Clinic');
  await clinic.click();
  await page.waitForURL(/\/patients$/);
  await page.click('#new-patient');
  await page.waitForSelector('#given_name');
  await page.fill('#given_name', 'Lily');
  await page.fill('#family_name', 'Chen');
  await page.fill('#date_of_birth', isoDay(-365 * 9));
  await page.click('#save-patient');
  await page.waitForSelector('#guardian-name[aria-invalid="true"]');
  await page.fill('#guardian-name', 'Mei Chen');
  await page.fill('#guardian-relationship', 'mother');
  await page.fill('#guardian-phone', '555 010 7777');
  await page.fill('#chart_number', 'C-2041');
  await page.click('#ins-add');
  await page.fill('#ins-payer-0', 'VSP');
  await page.fill('#ins-member-0', 'VSP-88');
  await page.fill('#ins-group-0', 'G-1');
  await page.click('#consent-add');
  await page.selectOption('#consent-type-0', 'reminders');
  await page.click('#save-patient');
  await page.waitForURL(/\/patients$/);
  await openPatient(page, 'Chen');
  assert.equal(await page.inputValue('#guardian-name'), 'Mei Chen');
  assert.equal(await page.inputValue('#ins-payer-0'), 'VSP');
  assert.equal(await page.inputValue('#chart_number'), 'C-2041');
  assert.equal(await page.inputValue('#consent-type-0'), 'reminders');
  await page.close();
});

test('a 20 MB image is encrypted, uploaded with progress, and downloaded byte for byte', async () => {
  const page = await newPage(browser);
  await register(page, server.url, `files-${stamp}`, 'granite lupin 77 waves');
  const clinic = await createClinic(page, 'Files Clinic');
  await clinic.click();
  await page.waitForURL(/\/patients$/);
  await newPatient(page, { given_name: 'Ivy', family_name: 'Moss', date_of_birth: '1966-09-09' });
  await openPatient(page, 'Moss');
  await page.waitForSelector('#file-attach');

  const image = bmp(2600, 2600); // 20.3 MB
  const imagePath = join(OUTPUT, `fundus-${stamp}.bmp`);
  writeFileSync(imagePath, image);
  const sha = createHash('sha256').update(image).digest('hex');

  // Watch the progress bar's values while the upload runs.
  await page.evaluate(() => {
    window.__progress = [];
    new MutationObserver(() => {
      const p = document.querySelector('#file-progress');
      if (p) window.__progress.push(Number(p.getAttribute('value') ?? p.value));
    }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['value'] });
  });
  await page.setInputFiles('#file-input', imagePath);
  await page.selectOption('#file-category', 'fundus_photo');
  await page.selectOption('#file-eye', 'od');
  await page.fill('#file-description', 'Optic disc centred');
  await page.click('#file-attach');
  await page.waitForSelector('li.attachment button.attachment-download', { timeout: 120000 });
  const seen = await page.evaluate(() => window.__progress);
  const distinct = new Set(seen);
  assert.ok(distinct.size >= 5, `progress values seen: ${[...distinct].join(',')}`);
  assert.ok(seen.includes(100));
  assert.match(await page.textContent('li.attachment'), /fundus-.*\.bmp[\s\S]*Fundus photo[\s\S]*20\.3 MB[\s\S]*OD/);
  assert.equal(await page.locator('li.attachment img.thumbnail').count(), 1, 'a thumbnail was drawn');
  await page.screenshot({ path: join(OUTPUT, 'attachments.png'), fullPage: true });

  // The server holds ciphertext only: the image's bytes are nowhere in the data directory.
  const probe = image.subarray(100000, 100064);
  for (const f of walk(server.dataDir)) {
    assert.equal(readFileSync(f).indexOf(probe), -1, `plaintext found in ${f}`);
  }

  // Download: decrypted in the browser, identical to the original.
  const [download] = await Promise.all([
    page.waitForEvent('download', { timeout: 120000 }),
    page.click('li.attachment button.attachment-download'),
  ]);
  const outPath = join(OUTPUT, `downloaded-${stamp}.bmp`);
  await download.saveAs(outPath);
  assert.equal(download.suggestedFilename(), `fundus-${stamp}.bmp`);
  assert.equal(createHash('sha256').update(readFileSync(outPath)).digest('hex'), sha);

  // A chunk altered on the way back is refused, and nothing is saved.
  await page.route('**/files/*/chunks/3', async (route) => {
    const resp = await route.fetch();
    const body = Buffer.from(await resp.body());
    body[body.length >> 1] ^= 0x01;
    await route.fulfill({ response: resp, body });
  });
  await page.click('li.attachment button.attachment-download');
  await page.waitForSelector('#file-error');
  assert.match(await page.textContent('#file-error'), /altered/);
  assert.deepEqual(page.consoleErrors.filter((e) => !/status of 4\d\d/.test(e)), []);
  await page.close();
});

function* walk(dir) {
  yield* dataFiles(dir);
}

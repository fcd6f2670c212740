// Threat-model property 1: canary strings typed into every patient field through the real client
// must appear nowhere in the server's data directory or its log, in any common encoding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startServer, launchBrowser, newPage, register, createClinic, savePatient, dataFiles } from './harness.mjs';

function filesUnder(dir) {
  return dataFiles(dir);
}

/** The encodings in which a leaked string could sit in a file. */
function encodings(s) {
  const b = Buffer.from(s, 'utf8');
  return [
    ['utf8', b],
    ['utf16le', Buffer.from(s, 'utf16le')],
    ['base64', Buffer.from(b.toString('base64').replace(/=+$/, ''))],
    ['base64url', Buffer.from(b.toString('base64url'))],
    ['hex', Buffer.from(b.toString('hex'))],
  ];
}

test('no canary typed into the client reaches the server\'s disk or log', async () => {
  const tag = randomBytes(4).toString('hex').toUpperCase();
  const canaries = {
    given_name: `CanaryGiven${tag}`,
    family_name: `CanaryFamily${tag}`,
    date_of_birth: '1937-04-19',
    sex: 'other',
    phone: '+1 555 937 4193',
    email: `canary.email.${tag.toLowerCase()}@example.org`,
    'address-line1': `CanaryLineOne${tag}`,
    'address-line2': `CanaryLineTwo${tag}`,
    'address-city': `CanaryCity${tag}`,
    'address-region': `CanaryRegion${tag}`,
    'address-postal_code': `CPC${tag}`,
    'address-country': `CanaryCountry${tag}`,
    insurance_member_id: `CANARYMEMBER${tag}`,
    notes: `CanaryNotes${tag} glaucoma suspect, father with AMD`,
  };
  const clinicName = `CanaryClinic${tag}`;
  const password = `canary ${tag.toLowerCase()} orchid kettle 93`;
  const server = await startServer('canary');
  const browser = await launchBrowser();
  try {
    const page = await newPage(browser);
    await register(page, server.url, `canary-${tag.toLowerCase()}`, password);
    await (await createClinic(page, clinicName)).click();
    await page.waitForURL(/\/patients$/);
    await page.click('#new-patient');
    await savePatient(page, canaries);
    await page.waitForSelector('tr.patient-row');
    assert.match(await page.locator('table').innerText(), new RegExp(`CanaryFamily${tag}`));
    await page.context().close();
  } finally {
    await browser.close();
    await server.stop(); // SIGTERM: the server flushes sled on the way out
  }

  const needles = [
    ...Object.entries(canaries).filter(([k]) => k !== 'sex').map(([k, v]) => [k, v]),
    ['phone digits', '5559374193'],
    ['clinic name', clinicName],
    ['password', password],
  ];
  const files = [...filesUnder(server.dataDir), server.logPath];
  let bytes = 0;
  const hits = [];
  for (const f of files) {
    const content = readFileSync(f);
    bytes += content.length;
    for (const [field, value] of needles) {
      for (const [enc, needle] of encodings(value)) {
        if (content.includes(needle)) hits.push(`${field} (${enc}) in ${f}`);
      }
    }
  }
  console.log(`canary scan: ${needles.length} canaries x 5 encodings over ${files.length} files, ${bytes} bytes`);
  assert.ok(files.length >= 2 && bytes > 0, 'the scan must have read the data directory');
  // The scan can find things: the username is stored in the clear and must be found.
  assert.ok(filesUnder(server.dataDir).some((f) => readFileSync(f).includes(Buffer.from(`canary-${tag.toLowerCase()}`))),
    'the scanner must see plaintext that the server does store (the username)');
  assert.deepEqual(hits, []);
});

// Client sync: a large clinic opens from its patient index (no patient record is fetched), the
// first read of the change feed (as headers) shows a progress bar; afterwards the client asks only
// for changes since its cursor, never for the whole clinic again; opening a chart fetches its
// records then.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { startServer, launchBrowser, newPage, login, savePatient, ROOT, OUTPUT } from './harness.mjs';

const FIXTURE = process.env.OV_FIXTURE_BIN || join(ROOT, 'target/debug/ov-fixture');
const PATIENTS = 3000;

test('first sync of a large clinic shows progress; later syncs pull only changes since the cursor', async () => {
  const server = await startServer('sync');
  const browser = await launchBrowser();
  try {
    const username = `sync-${Date.now()}`;
    const password = 'amber glacier hums 58 reeds';
    const fixture = JSON.parse(execFileSync(FIXTURE, ['--base', server.url, '--username', username,
      '--password', password, '--clinic-name', 'Big Clinic', '--patients', String(PATIENTS)], { encoding: 'utf8' }));

    const page = await newPage(browser);
    // Record whether the progress bar ever appears (it may be brief).
    await page.addInitScript(() => {
      window.__sawProgress = false;
      new MutationObserver(() => {
        if (document.getElementById('sync-progress')) window.__sawProgress = true;
      }).observe(document, { childList: true, subtree: true });
    });
    const changeRequests = [];
    const reads = [];
    const fullFeed = [];
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.pathname === `/api/clinics/${fixture.clinic_id}/change-headers`) changeRequests.push(Number(u.searchParams.get('since')));
      if (u.pathname === `/api/clinics/${fixture.clinic_id}/records/read`) reads.push(JSON.parse(r.postData()).record_ids.length);
      if (u.pathname === `/api/clinics/${fixture.clinic_id}/changes`) fullFeed.push(u.search);
    });

    // A slow link (300 ms per page of the feed), so the progress bar is on screen long enough to
    // be seen whatever the machine's speed.
    await page.route(/\/change-headers\?/, async (route) => {
      await new Promise((r) => setTimeout(r, 300));
      await route.continue();
    });
    await login(page, server.url, username, password);
    await page.waitForURL(/\/clinics$/);
    await page.locator('a.clinic-item', { hasText: 'Big Clinic' }).click();
    await page.waitForFunction((n) => document.querySelector('#patient-count')?.textContent.includes(String(n)), PATIENTS, { timeout: 120000 });
    // The list is whole from the index alone, before the feed has been read to its end.
    const headerPagesBeforeList = changeRequests.length;
    assert.ok(headerPagesBeforeList < 4, `the list waited for ${headerPagesBeforeList} pages of the feed`);
    await page.waitForFunction(() => window.__sawProgress && !document.getElementById('sync-progress'), null, { timeout: 120000 });
    assert.equal(changeRequests[0], 0, 'the first sync starts at 0');
    assert.ok(changeRequests.length >= 2, `the first sync is paged (${changeRequests.length} requests)`);
    const cursorAfterFirstSync = Math.max(...changeRequests);
    assert.ok(cursorAfterFirstSync > 0);
    // One read: the 256 index shards. The patients' own records wait until their chart is opened.
    assert.deepEqual(reads, [256], `records read while opening the clinic: ${reads}`);
    await page.screenshot({ path: join(OUTPUT, 'large-clinic.png') });

    // Add one patient: every sync from now on starts after the cursor.
    const firstSyncRequests = changeRequests.length;
    await page.click('#new-patient');
    await savePatient(page, { given_name: 'Zed', family_name: 'Newcomer', date_of_birth: '2001-01-01' });
    await page.waitForFunction((n) => document.querySelector('#patient-count')?.textContent.includes(String(n)), PATIENTS + 1);
    const later = changeRequests.slice(firstSyncRequests);
    assert.ok(later.length >= 1, 'saving triggers a sync');
    for (const since of later) {
      assert.ok(since >= cursorAfterFirstSync, `a later sync asked since=${since}, below the cursor ${cursorAfterFirstSync}`);
    }
    // Opening a chart fetches that patient's record (and nothing else it lacks).
    const readsBefore = reads.length;
    await page.fill('#search', 'Newcomer');
    await page.locator('tr.patient-row', { hasText: 'Newcomer' }).waitFor();
    await page.fill('#search', '');
    await page.locator('tr.patient-row').filter({ hasNotText: 'Newcomer' }).first().locator('a.patient-link').click();
    await page.waitForURL(/\/patients\/[0-9a-f-]{36}$/);
    await page.waitForFunction(() => document.querySelector('#given_name')?.value);
    assert.deepEqual(reads.slice(readsBefore), [1], 'opening a chart read its one record');
    assert.deepEqual(fullFeed, [], 'the client never reads the feed with ciphertexts');
    console.log(`sync: first sync ${firstSyncRequests} requests for ${PATIENTS} patients; later syncs since >= ${cursorAfterFirstSync}: ${later.join(',')}`);
    await page.context().close();
  } finally {
    await browser.close();
    await server.stop();
  }
});

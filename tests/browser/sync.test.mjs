// Client sync: the first sync of a large clinic shows a progress bar; afterwards the client asks
// only for changes since its cursor, never for the whole clinic again.
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
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.pathname === `/api/clinics/${fixture.clinic_id}/changes`) changeRequests.push(Number(u.searchParams.get('since')));
    });

    await login(page, server.url, username, password);
    await page.waitForURL(/\/clinics$/);
    await page.locator('a.clinic-item', { hasText: 'Big Clinic' }).click();
    await page.waitForFunction((n) => document.querySelector('#patient-count')?.textContent.includes(String(n)), PATIENTS, { timeout: 120000 });
    assert.equal(await page.evaluate(() => window.__sawProgress), true, 'a progress bar is shown during the first sync');
    assert.equal(changeRequests[0], 0, 'the first sync starts at 0');
    assert.ok(changeRequests.length >= 2, `the first sync is paged (${changeRequests.length} requests)`);
    const cursorAfterFirstSync = Math.max(...changeRequests);
    assert.ok(cursorAfterFirstSync > 0);
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
    console.log(`sync: first sync ${firstSyncRequests} requests for ${PATIENTS} patients; later syncs since >= ${cursorAfterFirstSync}: ${later.join(',')}`);
    await page.context().close();
  } finally {
    await browser.close();
    await server.stop();
  }
});

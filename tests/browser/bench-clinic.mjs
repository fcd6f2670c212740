// Benchmark, not a test: a generated clinic of N patients with M exams each (default 50,000 × 3,
// sealed natively by ov-fixture), opened in Debian's chromium against a real server on loopback.
// Prints: time from clicking the clinic to the first page of patients on screen (from the
// encrypted patient index), to the change feed read to its end (as headers: clinical records
// wait for their chart), the search latency per keystroke (median and worst) over the decrypted
// index in the page, and the time to open one chart with its exams (fetched and decrypted then).
//   node tests/browser/bench-clinic.mjs [patients] [exams-per-patient]
// Uses target/release binaries when present (cargo build --release -p optovault-server
// -p optovault-tests --bin ov-fixture), else target/debug.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, launchBrowser, newPage, login, ROOT } from './harness.mjs';

const patients = Number(process.argv[2] || 50000);
const exams = Number(process.argv[3] || 3);
const bin = (name) => [join(ROOT, 'target/release', name), join(ROOT, 'target/debug', name)].find(existsSync);
if (!process.env.OPTOVAULT_SERVER_BIN) process.env.OPTOVAULT_SERVER_BIN = bin('optovault-server');
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const server = await startServer('bench-clinic');
const browser = await launchBrowser();
try {
  const username = `bench-clinic-${Date.now()}`;
  const password = 'cobalt orchard sings 93 larks';
  let t = performance.now();
  execFileSync(bin('ov-fixture'), ['--base', server.url, '--username', username, '--password', password,
    '--clinic-name', 'Bench Clinic', '--patients', String(patients), '--exams-per-patient', String(exams)],
  { encoding: 'utf8', maxBuffer: 1 << 20 });
  const fillS = (performance.now() - t) / 1000;

  const page = await newPage(browser);
  await login(page, server.url, username, password);
  await page.waitForURL(/\/clinics$/);
  const link = page.locator('a.clinic-item', { hasText: 'Bench Clinic' });
  await link.waitFor();
  t = performance.now();
  await link.click();
  await page.waitForSelector('tr.patient-row', { timeout: 600000 });
  const firstPageMs = performance.now() - t;
  await page.waitForFunction((n) => document.querySelector('#patient-count')?.textContent.trim() === String(n)
    && document.querySelector('#patient-count')?.dataset.synced === 'true', patients, { timeout: 1200000, polling: 50 });
  const allMs = performance.now() - t;

  // Search as you type: each keystroke until the table has changed.
  const keystrokes = [];
  for (const query of ['smith', 'garcia', '1971', 'mrtinez']) {
    await page.fill('#search', '');
    await page.waitForFunction((n) => document.querySelector('#patient-count')?.textContent.trim() === String(n), patients);
    for (const ch of query) {
      const ms = await page.evaluate(async (c) => {
        const input = document.querySelector('#search');
        const before = document.querySelector('#patient-count').textContent;
        const t0 = performance.now();
        input.value += c;
        input.dispatchEvent(new Event('input', { bubbles: true }));
        // The count and rows update synchronously in the input handler's reactive run; wait one
        // frame so layout is included.
        await new Promise((r) => requestAnimationFrame(() => r()));
        void before;
        return performance.now() - t0;
      }, ch);
      keystrokes.push(ms);
    }
  }
  // Open one chart: its patient record and its exams are fetched and decrypted now.
  await page.fill('#search', '');
  t = performance.now();
  await page.locator('tr.patient-row a.patient-link').first().click();
  await page.waitForFunction((n) => document.querySelectorAll('li.exam-item').length === n
    && document.querySelector('#given_name')?.value, exams, { timeout: 60000, polling: 20 });
  const chartMs = performance.now() - t;
  const heap = await page.evaluate(() => performance.memory?.usedJSHeapSize ?? 0);
  console.log(JSON.stringify({
    patients, exams_per_patient: exams, records: patients * (1 + exams),
    fixture_fill_s: Number(fillS.toFixed(1)),
    first_page_ms: Math.round(firstPageMs),
    feed_read_ms: Math.round(allMs),
    open_chart_ms: Math.round(chartMs),
    search_keystroke_median_ms: Number(median(keystrokes).toFixed(1)),
    search_keystroke_max_ms: Number(Math.max(...keystrokes).toFixed(1)),
    js_heap_mib: Math.round(heap / 1048576),
  }));
} finally {
  await browser.close();
  await server.stop();
}

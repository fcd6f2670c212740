// Benchmark, not a test: how long OPAQUE registration and login take in Debian's chromium against
// a real server on loopback (Argon2id m = 64 MiB, t = 3, p = 1 runs in the page). Prints medians.
//   node tests/browser/bench-login.mjs [rounds]
import { startServer, launchBrowser, newPage } from './harness.mjs';

const rounds = Number(process.argv[2] || 5);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const server = await startServer('bench-login');
const browser = await launchBrowser();
const registerMs = [];
const loginMs = [];
try {
  for (let i = 0; i < rounds; i++) {
    const page = await newPage(browser);
    const username = `bench-${Date.now()}-${i}`;
    const password = 'quartz meadow folds 64 plums';
    await page.goto(`${server.url}/register`);
    await page.waitForSelector('#register-submit');
    await page.fill('#username', username);
    await page.fill('#password', password);
    await page.fill('#password-confirm', password);
    let t = performance.now();
    await page.click('#register-submit'); // registration, then the login that follows it
    await page.waitForURL(/\/clinics$/, { timeout: 60000 });
    registerMs.push(performance.now() - t);
    await page.click('#logout');
    await page.waitForURL(/\/login$/);
    await page.waitForSelector('#login-submit');
    await page.fill('#username', username);
    await page.fill('#password', password);
    t = performance.now();
    await page.click('#login-submit');
    await page.waitForURL(/\/clinics$/);
    loginMs.push(performance.now() - t);
    await page.context().close();
  }
} finally {
  await browser.close();
  await server.stop();
}
console.log(`rounds: ${rounds}`);
console.log(`registration + first login (two Argon2id runs), median: ${median(registerMs).toFixed(0)} ms  [${registerMs.map((x) => x.toFixed(0)).join(', ')}]`);
console.log(`login alone (one Argon2id run), median: ${median(loginMs).toFixed(0)} ms  [${loginMs.map((x) => x.toFixed(0)).join(', ')}]  target < 600 ms`);

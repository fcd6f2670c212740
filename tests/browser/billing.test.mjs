// Billing in a real browser against a real server: the owner invoices a patient (two lines, one
// partly billed to insurance), is told why a quantity of 0 cannot be saved, posts the invoice
// (after which it cannot be edited), takes a card payment, refunds part of it and issues a credit
// note; every amount is checked to the cent. A front desk member, whose role holds no billing key,
// never sees the billing section nor receives a billing envelope.
// Two browser contexts: the owner and the front desk.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  startServer, launchBrowser, newPage, register, createClinic, savePatient, patientRows,
  createInvitation, registerThroughLink, acceptInvitation, admitInvitee, openPatient, OUTPUT,
  unexpectedErrors,
} from './harness.mjs';

const stamp = Date.now();
const owner = { username: `bowner-${stamp}`, password: 'amber falcon counts 58 coins' };
const desk = { username: `bdesk-${stamp}`, password: 'indigo walrus files 23 forms' };
const CLINIC = 'Ledger Lane Optometry';

let server;
let browser;
let ownerPage;
let deskPage;
const s = {};

before(async () => {
  server = await startServer('billing');
  browser = await launchBrowser();
  [ownerPage, deskPage] = await Promise.all([newPage(browser), newPage(browser)]);
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

const row = (page, number) => page.locator(`tr.invoice-row[data-number="${number}"]`);
const text = async (locator) => (await locator.innerText()).trim();

/** Waits until an element's text is exactly `expected` (amounts update once the save lands). */
async function waitText(page, selector, expected) {
  await page.waitForFunction(({ sel, want }) => document.querySelector(sel)?.textContent.trim() === want,
    { sel: selector, want: expected });
}

/** Fills line `i` of the open invoice form. */
async function fillLine(page, i, { code, desc, qty, price, insurance }) {
  await page.fill(`#line-code-${i}`, code);
  await page.fill(`#line-desc-${i}`, desc);
  await page.fill(`#line-qty-${i}`, qty);
  await page.fill(`#line-price-${i}`, price);
  if (insurance !== undefined) await page.fill(`#line-insurance-${i}`, insurance);
}

test('the owner sets up a clinic and a patient; the patient page has an empty billing section', async () => {
  const page = ownerPage;
  await register(page, server.url, owner.username, owner.password);
  await (await createClinic(page, CLINIC)).click();
  await page.waitForURL(/\/patients$/);
  s.clinicId = page.url().match(/clinics\/([0-9a-f-]{36})/)[1];
  await page.click('#new-patient');
  await savePatient(page, { given_name: 'Grace', family_name: 'Hopper', date_of_birth: '1956-12-09' });
  await patientRows(page).first().waitFor();
  await openPatient(page, 'Hopper');
  await page.waitForSelector('#billing');
  assert.match(await page.innerText('#billing'), /No invoices yet/);
  assert.equal(await text(page.locator('#billing-account-balance')), '0.00');
  s.today = await page.evaluate(() => {
    const d = new Date();
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
  });
});

test('an invoice with two lines: live totals, a refused quantity of 0, saved as a draft', async () => {
  const page = ownerPage;
  await page.click('#invoice-new');
  await page.waitForSelector('#invoice-form');
  assert.equal(await page.inputValue('#invoice-number'), '1', 'the first number of the clinic');
  assert.equal(await page.inputValue('#invoice-date'), s.today);
  await fillLine(page, 0, { code: '92014', desc: 'Comprehensive eye exam', qty: '1', price: '120.00', insurance: '80.00' });
  await page.click('#line-add');
  await page.waitForSelector('#line-code-1');
  await fillLine(page, 1, { code: 'SV-LENS', desc: 'Single vision lenses', qty: '2', price: '95.50' });
  assert.equal(await page.inputValue('#line-qty-1'), '2');
  await waitText(page, '#invoice-total', '311.00');
  assert.equal(await text(page.locator('#invoice-insurance-total')), '80.00');
  assert.equal(await text(page.locator('#invoice-patient-total')), '231.00');

  // Quantity 0: the domain's message beside the field, and nothing saved.
  await page.fill('#line-qty-0', '0');
  // A third decimal is a fraction of a cent: refused, not rounded.
  await page.fill('#line-price-1', '95.505');
  await waitText(page, '#invoice-total', '—');
  await page.click('#invoice-save');
  await page.waitForSelector('#line-qty-0-error:not(:empty)');
  assert.equal(await text(page.locator('#line-qty-0-error')), 'Quantity must be at least 1.');
  assert.equal(await page.getAttribute('#line-qty-0', 'aria-invalid'), 'true');
  assert.match(await text(page.locator('#line-price-1-error')), /two decimals/);
  assert.match(await text(page.locator('#invoice-error')), /correct the fields/);
  assert.equal(await page.locator('tr.invoice-row').count(), 0);
  await page.locator('#billing').screenshot({ path: join(OUTPUT, 'billing-form-errors.png') });

  await page.fill('#line-qty-0', '1');
  await page.fill('#line-price-1', '95.50');
  await waitText(page, '#invoice-total', '311.00');
  await page.click('#invoice-save');
  await row(page, 1).waitFor();
  await page.waitForSelector('#invoice-form', { state: 'detached' });
  const r = row(page, 1);
  assert.equal(await r.getAttribute('data-status'), 'draft');
  assert.equal(await text(r.locator('.invoice-total')), '311.00');
  assert.equal(await text(r.locator('.invoice-insurance')), '80.00');
  assert.equal(await text(r.locator('.invoice-patient')), '231.00');
  // A draft is not owed yet.
  assert.equal(await text(page.locator('#billing-account-balance')), '0.00');
  s.invoiceId = await r.getAttribute('data-id');
  assert.match(s.invoiceId, /^[0-9a-f-]{36}$/);
  const lines = page.locator(`tbody.invoice[data-id="${s.invoiceId}"] tr.invoice-line`);
  assert.equal(await lines.count(), 2);
  assert.match(await lines.nth(1).innerText(), /Single vision lenses\s+2\s+95\.50\s+191\.00\s+0\.00/);
});

test('the draft is posted; a posted invoice can no longer be edited', async () => {
  const page = ownerPage;
  await row(page, 1).locator('.invoice-edit').click();
  await page.waitForSelector('#invoice-form');
  assert.equal(await page.inputValue('#line-price-1'), '95.50');
  assert.equal(await page.inputValue('#line-insurance-0'), '80.00');
  await page.click('#invoice-post');
  await page.locator('tr.invoice-row[data-number="1"][data-status="posted"]').waitFor();
  // The row follows the store as soon as the write lands; the notice comes with the save's answer.
  await page.waitForFunction(() => /Invoice #1 posted/.test(document.querySelector('#billing-notice')?.textContent ?? ''));
  assert.equal(await row(page, 1).locator('.invoice-edit').count(), 0, 'no edit button on a posted invoice');
  assert.equal(await page.locator('#invoice-edit').count(), 0);
  assert.equal(await text(row(page, 1).locator('.invoice-balance')), '231.00');
  assert.equal(await text(page.locator('#billing-account-balance')), '231.00');
  assert.equal(await text(page.locator('#billing-insurance-pending')), '80.00');
});

test('a card payment of 100.00, then a refund of 20.00: the balance follows to the cent', async () => {
  const page = ownerPage;
  await page.click('#payment-add');
  await page.waitForSelector('#payment-amount');
  // Suggested: what the patient owes.
  assert.equal(await page.inputValue('#payment-amount'), '231.00');
  assert.equal(await page.inputValue('#payment-date'), s.today);
  await page.fill('#payment-amount', '100.00');
  await page.selectOption('#payment-method', 'card');
  await page.fill('#payment-reference', 'slip 0042');
  await page.click('#payment-save');
  await waitText(page, 'tr.invoice-row[data-number="1"] .invoice-balance', '131.00');
  assert.equal(await text(row(page, 1).locator('.invoice-paid')), '100.00');
  assert.equal(await text(page.locator('#billing-account-balance')), '131.00');
  const pay = page.locator('li.payment:not(.refund)');
  assert.match(await pay.innerText(), /Card\s+100\.00\s+slip 0042/);

  // More than was paid cannot be refunded.
  await pay.locator('.payment-refund').click();
  await page.waitForSelector('#payment-amount');
  assert.equal(await page.inputValue('#payment-amount'), '100.00');
  assert.equal(await page.inputValue('#payment-method'), 'card');
  await page.fill('#payment-amount', '100.01');
  await page.click('#payment-save');
  await page.waitForSelector('#payment-amount-error:not(:empty)');
  assert.match(await text(page.locator('#payment-amount-error')), /More would be refunded than was paid\. At most 100\.00/);
  await page.fill('#payment-amount', '20.00');
  await page.click('#payment-save');
  await waitText(page, 'tr.invoice-row[data-number="1"] .invoice-balance', '151.00');
  assert.equal(await text(row(page, 1).locator('.invoice-paid')), '80.00');
  assert.equal(await text(page.locator('#billing-account-balance')), '151.00');
  const refund = page.locator('li.payment.refund');
  assert.equal(await refund.count(), 1);
  assert.equal(await text(refund.locator('.payment-amount')), '-20.00');
});

test('a credit note for the lenses leaves the clinic owing the patient 40.00', async () => {
  const page = ownerPage;
  await page.click('#invoice-credit');
  await page.waitForSelector('#invoice-form');
  assert.match(await text(page.locator('#invoice-form-title')), /Credit note for invoice #1/);
  assert.equal(await page.inputValue('#invoice-number'), '2');
  // It starts as the whole invoice; crediting only the lenses is removing the exam line.
  await waitText(page, '#invoice-total', '311.00');
  await page.click('#line-remove-0');
  await waitText(page, '#invoice-total', '191.00');
  assert.equal(await page.inputValue('#line-desc-0'), 'Single vision lenses');
  await page.click('#invoice-post');
  await row(page, 2).waitFor();
  const cn = row(page, 2);
  assert.equal(await cn.getAttribute('data-status'), 'posted');
  assert.equal(await text(cn.locator('.credit-note-badge')), 'Credit note for #1');
  assert.equal(await text(cn.locator('.invoice-total')), '191.00');
  assert.equal(await cn.locator('.payment-add, .invoice-credit, .invoice-edit').count(), 0);
  // 231.00 patient share − 191.00 credited − 80.00 paid.
  await waitText(page, 'tr.invoice-row[data-number="1"] .invoice-balance', '-40.00');
  assert.equal(await text(page.locator('#billing-account-balance')), '-40.00');
  assert.match(await page.innerText(`tbody.invoice[data-id="${s.invoiceId}"]`), /Credited by #2: 191\.00/);
  await page.locator('#billing').screenshot({ path: join(OUTPUT, 'billing.png') });
  await page.screenshot({ path: join(OUTPUT, 'billing-page.png'), fullPage: true });
  assert.deepEqual(unexpectedErrors(page), []);
});

test('a front desk member sees the patient but no billing at all', async () => {
  const page = ownerPage;
  await page.click('#back-to-patients');
  await page.click('#members-link');
  await page.waitForURL(/\/members$/);
  const link = await createInvitation(page, 'front_desk');
  await registerThroughLink(deskPage, link, desk);
  await acceptInvitation(deskPage);
  await admitInvitee(page, link);
  await page.waitForFunction(() => document.querySelectorAll('tr.member-row').length === 2);

  const fd = deskPage;
  await fd.click('#invite-to-clinics');
  await fd.locator('a.clinic-item', { hasText: CLINIC }).click();
  await patientRows(fd).first().waitFor();
  await openPatient(fd, 'Hopper');
  assert.equal(await fd.inputValue('#family_name'), 'Hopper');
  // Give the billing section every chance to appear: it must not.
  await fd.waitForTimeout(500);
  assert.equal(await fd.locator('#billing, #invoice-new, tr.invoice-row').count(), 0);
  const seen = await fd.evaluate(async ({ cid, iid }) => {
    const rec = await fetch(`/api/clinics/${cid}/records/${iid}`);
    const feed = await (await fetch(`/api/clinics/${cid}/changes?since=0`)).json();
    return {
      status: rec.status,
      compartments: [...new Set(feed.changes.map((c) => c.envelope.compartment))],
    };
  }, { cid: s.clinicId, iid: s.invoiceId });
  assert.equal(seen.status, 403, 'the server refuses the invoice to a role without the billing key');
  assert.deepEqual(seen.compartments, ['demographics'], 'no billing envelope is ever sent to the front desk');
  await fd.screenshot({ path: join(OUTPUT, 'billing-front-desk.png'), fullPage: true });
  // The 403 above was asked for on purpose; the browser logs it as a failed load.
  const unexpected = fd.consoleErrors.filter((e) => !/status of 403/.test(e));
  assert.deepEqual(unexpected, []);
  assert.deepEqual(unexpectedErrors(ownerPage), []);
});

//! Billing on the patient's page (compartment `billing`): the chart's invoices and credit notes,
//! each with its lines and its payments and refunds, the patient's running balance, and the forms
//! to write them. Shown only when my keyring holds the billing key (owner, optometrist, billing
//! staff; never opticians or the front desk).
//!
//! Money is integer cents everywhere: amounts are typed as text and parsed exactly
//! ([`parse_money`]), every sum is checked, and nothing here converts money to a float.
//!
//! Every invoice and payment is its own signed, versioned record, so each payment or refund is a
//! trace of its own (the audit log of a later issue will list them).

use std::sync::Arc;

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use optovault_shared::chart::{
    check_refund, invoice_balance, next_invoice_number, Balance, Invoice, InvoiceStatus,
    InvoiceTotals, Payment, PaymentMethod,
};
use optovault_shared::domain::{FieldError, RecordBody};
use optovault_shared::Compartment;
use uuid::Uuid;

use crate::components::invoice_form::{InvoiceForm, InvoiceSeed};
use crate::pages::report_error;
use crate::records::save_item;
use crate::state::{use_app, Unlocked};
use crate::store::{Item, RecordStore};
use crate::util::today;

// ---- money ------------------------------------------------------------------------------------

/// Parses an amount as typed (`125`, `125.5`, `125.50`, `.75`, `-20.00`) exactly into cents: no
/// floats, at most two decimals (a third would be a fraction of a cent, so it is refused rather
/// than rounded), checked arithmetic. The sign is accepted so that the domain's own rules
/// ("cannot be negative") explain a negative amount where it matters.
pub fn parse_money(s: &str) -> Result<i64, String> {
    const SHAPE: &str = "Enter an amount like 125.00.";
    let s = s.trim();
    let (negative, digits) = match s.strip_prefix('-').or_else(|| s.strip_prefix('\u{2212}')) {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if digits.contains(',') {
        // "1,250" (thousands) and "12,50" (decimal comma) are both common: refuse to guess.
        return Err("Use a point for the cents and no thousands separators, e.g. 1250.00.".into());
    }
    let (whole, cents) = match digits.split_once('.') {
        Some((w, c)) => (w, c),
        None => (digits, ""),
    };
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && cents.is_empty()) || !all_digits(whole) || !all_digits(cents) {
        return Err(SHAPE.into());
    }
    if cents.len() > 2 {
        return Err("At most two decimals (whole cents).".into());
    }
    let too_large = || "The amount is too large.".to_string();
    let mut value: i64 = 0;
    for b in whole.bytes() {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or_else(too_large)?;
    }
    // "5" -> 500, "5.5" -> 550, "5.05" -> 505.
    let mut fraction: i64 = 0;
    for i in 0..2 {
        let digit = cents.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
        fraction = fraction * 10 + digit;
    }
    let value = value
        .checked_mul(100)
        .and_then(|v| v.checked_add(fraction))
        .ok_or_else(too_large)?;
    Ok(if negative { -value } else { value })
}

pub use optovault_shared::chart::billing::format_money;

// ---- the chart's ledger ---------------------------------------------------------------------

/// One invoice (or credit note) of the chart at the version held.
#[derive(Clone, Debug, PartialEq)]
pub struct InvoiceEntry {
    pub id: Uuid,
    pub version: u64,
    pub seq: u64,
    pub invoice: Invoice,
}

/// One payment (or refund) of the chart.
#[derive(Clone, Debug, PartialEq)]
pub struct PaymentEntry {
    pub id: Uuid,
    pub seq: u64,
    pub payment: Payment,
}

/// Where one (non credit note) invoice stands, in cents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Standing {
    pub totals: InvoiceTotals,
    /// From the shared `invoice_balance`: `due_cents` is what is still to be received from
    /// anyone (insurance included).
    pub balance: Balance,
    /// The insurance share not received yet (never negative).
    pub insurance_pending: i64,
    /// What the patient still owes: `balance.due − insurance_pending`; negative when the clinic
    /// owes the patient money (after a credit note, say).
    pub patient_due: i64,
}

/// Sums over the chart's posted invoices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Account {
    pub patient_due: i64,
    pub insurance_pending: i64,
}

/// Which invoice carries the element ids `invoice-edit`, `invoice-credit` and `payment-add`
/// (ids must be unique on the page; the newest invoice offering the action gets it, the others
/// are reached by their row's `data-number` and the button's class).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ActionTargets {
    pub edit: Option<Uuid>,
    pub credit: Option<Uuid>,
    pub pay: Option<Uuid>,
}

/// Where the amounts cannot be added up (only absurd, hand-made records get here).
fn too_large() -> FieldError {
    FieldError {
        field: "lines",
        message: "The amounts are too large to add up.".into(),
    }
}

/// An invoice this chart does not hold (deleted meanwhile, or a hand-made reference).
fn not_shown() -> FieldError {
    FieldError {
        field: "invoice_id",
        message: "That invoice is not in this chart.".into(),
    }
}

/// The invoices and payments of one chart, as the store holds them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ledger {
    /// By invoice number (then id): the order an account statement lists them.
    pub invoices: Vec<InvoiceEntry>,
    /// In feed order.
    pub payments: Vec<PaymentEntry>,
}

impl Ledger {
    /// Picks the billing records out of a chart's items (any other kind is ignored).
    pub fn from_items(items: impl IntoIterator<Item = Item>) -> Ledger {
        let mut ledger = Ledger::default();
        for item in items {
            match item.body {
                RecordBody::Invoice(invoice) => ledger.invoices.push(InvoiceEntry {
                    id: item.id,
                    version: item.version,
                    seq: item.seq,
                    invoice,
                }),
                RecordBody::Payment(payment) => ledger.payments.push(PaymentEntry {
                    id: item.id,
                    seq: item.seq,
                    payment,
                }),
                _ => {}
            }
        }
        ledger.invoices.sort_by_key(|e| (e.invoice.number, e.id));
        ledger.payments.sort_by_key(|p| (p.seq, p.id));
        ledger
    }

    pub fn invoice(&self, id: &Uuid) -> Option<&InvoiceEntry> {
        self.invoices.iter().find(|e| &e.id == id)
    }

    pub fn payment(&self, id: &Uuid) -> Option<&PaymentEntry> {
        self.payments.iter().find(|p| &p.id == id)
    }

    /// The payments and refunds of one invoice, in feed order.
    pub fn payments_of(&self, invoice_id: &Uuid) -> Vec<PaymentEntry> {
        self.payments
            .iter()
            .filter(|p| &p.payment.invoice_id == invoice_id)
            .cloned()
            .collect()
    }

    /// The refunds made on one payment.
    pub fn refunds_of(&self, payment_id: &Uuid) -> Vec<Payment> {
        self.payments
            .iter()
            .filter(|p| p.payment.refund_of.as_ref() == Some(payment_id))
            .map(|p| p.payment.clone())
            .collect()
    }

    /// The credit notes (any status) written for one invoice.
    pub fn credit_notes_of(&self, invoice_id: &Uuid) -> Vec<&InvoiceEntry> {
        self.invoices
            .iter()
            .filter(|e| e.invoice.credit_note_for.as_ref() == Some(invoice_id))
            .collect()
    }

    /// What can still be refunded of a payment: its amount less its refunds (0 for a refund or
    /// an unknown payment).
    pub fn refundable(&self, payment_id: &Uuid) -> i64 {
        let Some(p) = self.payment(payment_id).filter(|p| !p.payment.is_refund()) else {
            return 0;
        };
        let mut left = p.payment.amount_cents;
        for r in self.refunds_of(payment_id) {
            left = left.saturating_sub(r.amount_cents);
        }
        left.max(0)
    }

    /// Whether a payment (or, for a refund, the payment it gives back on) was paid by the
    /// insurer: that money counts against the insurance share, not the patient's.
    fn is_insurance(&self, p: &Payment) -> bool {
        let origin = p
            .refund_of
            .and_then(|id| self.payment(&id))
            .map_or(p, |o| &o.payment);
        origin.method == PaymentMethod::Insurance
    }

    /// Where an invoice stands. The shared `invoice_balance` gives what is still due from
    /// anyone; the patient owes that less the insurance share not received yet.
    pub fn standing(&self, id: &Uuid) -> Result<Standing, FieldError> {
        let entry = self.invoice(id).ok_or_else(not_shown)?;
        let totals = entry.invoice.totals()?;
        let notes: Vec<Invoice> = self.invoices.iter().map(|e| e.invoice.clone()).collect();
        let payments: Vec<Payment> = self.payments.iter().map(|p| p.payment.clone()).collect();
        let balance = invoice_balance(*id, &entry.invoice, &notes, &payments)?;
        // The insurer is expected to pay the invoice's insurance share less what posted credit
        // notes took off it, and less what it has paid (net of refunds to it).
        let mut expected = totals.insurance_cents;
        for cn in self.credit_notes_of(id) {
            if cn.invoice.status == InvoiceStatus::Posted {
                let credited = cn.invoice.totals()?.insurance_cents;
                expected = expected.checked_sub(credited).ok_or_else(too_large)?;
            }
        }
        for p in self.payments.iter().map(|p| &p.payment) {
            if &p.invoice_id == id && self.is_insurance(p) {
                expected = expected
                    .checked_sub(p.signed_cents())
                    .ok_or_else(too_large)?;
            }
        }
        let insurance_pending = expected.max(0);
        let patient_due = balance
            .due_cents
            .checked_sub(insurance_pending)
            .ok_or_else(too_large)?;
        Ok(Standing {
            totals,
            balance,
            insurance_pending,
            patient_due,
        })
    }

    /// The patient's running account: sums over posted invoices (drafts are not owed yet, and a
    /// credit note counts through the invoice it credits).
    pub fn account(&self) -> Result<Account, FieldError> {
        let mut account = Account::default();
        for e in self.invoices.iter().filter(|e| is_billable(&e.invoice)) {
            let s = self.standing(&e.id)?;
            account.patient_due = account
                .patient_due
                .checked_add(s.patient_due)
                .ok_or_else(too_large)?;
            account.insurance_pending = account
                .insurance_pending
                .checked_add(s.insurance_pending)
                .ok_or_else(too_large)?;
        }
        Ok(account)
    }

    /// What is left to credit on an invoice: its total less its posted credit notes, leaving out
    /// `except` (the credit note being edited).
    pub fn creditable(&self, invoice_id: &Uuid, except: Option<Uuid>) -> Result<i64, FieldError> {
        let entry = self.invoice(invoice_id).ok_or_else(not_shown)?;
        let mut left = entry.invoice.totals()?.total_cents;
        for cn in self.credit_notes_of(invoice_id) {
            if cn.invoice.status == InvoiceStatus::Posted && Some(cn.id) != except {
                left = left
                    .checked_sub(cn.invoice.totals()?.total_cents)
                    .ok_or_else(too_large)?;
            }
        }
        Ok(left)
    }

    /// Which invoices get the action buttons' element ids (see [`ActionTargets`]).
    pub fn action_targets(&self) -> ActionTargets {
        let newest = |ok: &dyn Fn(&InvoiceEntry) -> bool| {
            self.invoices.iter().filter(|e| ok(e)).map(|e| e.id).last()
        };
        ActionTargets {
            edit: newest(&|e| e.invoice.status == InvoiceStatus::Draft),
            credit: newest(&|e| self.can_credit(e)),
            pay: newest(&|e| is_billable(&e.invoice)),
        }
    }

    /// A posted invoice with something left to credit.
    pub fn can_credit(&self, e: &InvoiceEntry) -> bool {
        is_billable(&e.invoice) && self.creditable(&e.id, None).is_ok_and(|left| left > 0)
    }
}

/// A posted invoice that is not a credit note: the only kind payments are taken on.
pub fn is_billable(invoice: &Invoice) -> bool {
    invoice.status == InvoiceStatus::Posted && !invoice.is_credit_note()
}

/// The number to suggest for a new invoice: one more than the largest of the clinic (every chart
/// this account can see).
pub fn suggested_number(store: &RecordStore) -> Option<u32> {
    next_invoice_number(store.all_items().filter_map(|(_, item)| match &item.body {
        RecordBody::Invoice(i) => Some(i.number),
        _ => None,
    }))
}

// ---- payment methods --------------------------------------------------------------------------

pub const METHODS: [PaymentMethod; 6] = [
    PaymentMethod::Cash,
    PaymentMethod::Card,
    PaymentMethod::Cheque,
    PaymentMethod::BankTransfer,
    PaymentMethod::Insurance,
    PaymentMethod::Other,
];

/// The method's name in records (`bank_transfer`), used as `<option>` value.
pub fn method_code(m: PaymentMethod) -> &'static str {
    match m {
        PaymentMethod::Cash => "cash",
        PaymentMethod::Card => "card",
        PaymentMethod::Cheque => "cheque",
        PaymentMethod::BankTransfer => "bank_transfer",
        PaymentMethod::Insurance => "insurance",
        PaymentMethod::Other => "other",
    }
}

pub fn method_label(m: PaymentMethod) -> &'static str {
    match m {
        PaymentMethod::Cash => "Cash",
        PaymentMethod::Card => "Card",
        PaymentMethod::Cheque => "Cheque",
        PaymentMethod::BankTransfer => "Bank transfer",
        PaymentMethod::Insurance => "Insurance",
        PaymentMethod::Other => "Other",
    }
}

fn parse_method(s: &str) -> Option<PaymentMethod> {
    METHODS.into_iter().find(|m| method_code(*m) == s)
}

// ---- the section ------------------------------------------------------------------------------

/// Which form is open (one at a time, so element ids stay unique).
#[derive(Clone, Debug, PartialEq)]
pub enum Open {
    Nothing,
    Invoice(InvoiceSeed),
    Payment {
        invoice_id: Uuid,
        /// Set for a refund: the payment given back on.
        refund_of: Option<Uuid>,
    },
}

/// What every row and form of the section shares.
#[derive(Clone)]
struct Ctx {
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    chart_id: Uuid,
    ledger: Memo<Ledger>,
    open: RwSignal<Open>,
    targets: Memo<ActionTargets>,
    /// Closes the open form and says what was saved.
    on_saved: Callback<String>,
    on_cancel: Callback<()>,
}

#[component]
pub fn Billing(
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    /// The patient's record id.
    chart_id: Uuid,
    /// The patient is loaded and found.
    #[prop(into)]
    ready: Signal<bool>,
) -> impl IntoView {
    let app = use_app();
    let store: RwSignal<RecordStore> = app.store(clinic_id).into();
    let allowed = move || {
        app.clinic_tracked(&clinic_id)
            .is_some_and(|c| c.holds(Compartment::Billing))
    };
    let ledger = Memo::new(move |_| store.with(|s| Ledger::from_items(s.items_of(&chart_id))));
    let account = Memo::new(move |_| ledger.with(Ledger::account));
    let targets = Memo::new(move |_| ledger.with(Ledger::action_targets));
    let open = RwSignal::new(Open::Nothing);
    let notice = RwSignal::new(None::<String>);
    // Only a change of the open invoice form rebuilds it.
    let invoice_seed = Memo::new(move |_| match open.get() {
        Open::Invoice(seed) => Some(seed),
        _ => None,
    });
    let ctx = Ctx {
        me,
        clinic_id,
        chart_id,
        ledger,
        open,
        targets,
        on_saved: Callback::new(move |msg: String| {
            open.set(Open::Nothing);
            notice.set(Some(msg));
        }),
        on_cancel: Callback::new(move |_| open.set(Open::Nothing)),
    };

    let new_invoice = move |_| {
        notice.set(None);
        match store.with_untracked(suggested_number) {
            Some(n) => open.set(Open::Invoice(InvoiceSeed::new_invoice(n, &today()))),
            None => notice.set(Some("The clinic has used every invoice number.".into())),
        }
    };
    let form_ctx = ctx.clone();
    let rows_ctx = ctx.clone();

    view! {
        <Show when=move || ready.get() && allowed()>
            <section id="billing" class="card billing" aria-labelledby="billing-title">
                <div class="page-title">
                    <h2 id="billing-title">"Billing"</h2>
                    <button id="invoice-new" type="button" class="button secondary"
                        disabled=move || invoice_seed.with(Option::is_some)
                        on:click=new_invoice>
                        "New invoice"
                    </button>
                </div>
                {move || match account.get() {
                    Ok(a) => view! { <AccountSummary account=a /> }.into_any(),
                    Err(e) => view! { <p class="error" role="alert">{e.message}</p> }.into_any(),
                }}
                {move || notice.get().map(|n| view! { <p id="billing-notice" class="notice" role="status">{n}</p> })}
                {
                    let ctx = form_ctx.clone();
                    move || invoice_seed.get().map(|seed| view! {
                        <InvoiceForm me=ctx.me.clone() clinic_id=ctx.clinic_id chart_id=ctx.chart_id
                            seed=seed ledger=ctx.ledger on_saved=ctx.on_saved on_cancel=ctx.on_cancel />
                    })
                }
                <InvoiceTable ctx=rows_ctx.clone() />
            </section>
        </Show>
    }
}

/// The patient's running balance.
#[component]
fn AccountSummary(account: Account) -> impl IntoView {
    let owed_to_patient = account.patient_due < 0;
    view! {
        <dl class="billing-summary">
            <div>
                <dt>"Patient account balance"</dt>
                <dd id="billing-account-balance" class:credit=owed_to_patient>
                    {format_money(account.patient_due)}
                </dd>
                {owed_to_patient.then(|| view! { <dd class="help">"Negative: the clinic owes the patient."</dd> })}
            </div>
            <div>
                <dt>"Awaiting insurance"</dt>
                <dd id="billing-insurance-pending">{format_money(account.insurance_pending)}</dd>
            </div>
        </dl>
    }
}

#[component]
fn InvoiceTable(ctx: Ctx) -> impl IntoView {
    let ledger = ctx.ledger;
    let empty = move || ledger.with(|l| l.invoices.is_empty());
    view! {
        <Show when=empty>
            <p class="empty">"No invoices yet."</p>
        </Show>
        <div class="invoices-scroll" hidden=empty>
            <table class="invoices">
                <thead>
                    <tr>
                        <th scope="col">"Number"</th>
                        <th scope="col">"Date"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col" class="money">"Total"</th>
                        <th scope="col" class="money">"Insurance"</th>
                        <th scope="col" class="money">"Patient share"</th>
                        <th scope="col" class="money">"Paid"</th>
                        <th scope="col" class="money">"Balance (patient)"</th>
                        <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                    </tr>
                </thead>
                <For each=move || ledger.get().invoices key=|e| (e.id, e.version) let:entry>
                    <InvoiceBlock ctx=ctx.clone() entry=entry />
                </For>
            </table>
        </div>
    }
}

/// One invoice: its summary row, then its lines, credit notes and payments.
#[component]
fn InvoiceBlock(ctx: Ctx, entry: InvoiceEntry) -> impl IntoView {
    let id = entry.id;
    let inv = entry.invoice.clone();
    let (ledger, open, targets) = (ctx.ledger, ctx.open, ctx.targets);
    // Payments and credit notes change without this invoice changing: read them reactively.
    let standing = Memo::new(move |_| ledger.with(|l| l.standing(&id)));
    let can_credit =
        Memo::new(move |_| ledger.with(|l| l.invoice(&id).is_some_and(|e| l.can_credit(e))));
    let billable = is_billable(&inv);
    let is_draft = inv.status == InvoiceStatus::Draft;
    let credited_number = inv
        .credit_note_for
        .map(|orig| ledger.with_untracked(|l| l.invoice(&orig).map(|e| e.invoice.number)));
    let totals = inv.totals();
    let cell = move |f: fn(&Standing) -> i64| {
        move || match standing.get() {
            Ok(s) if billable => format_money(f(&s)),
            _ => "—".to_string(),
        }
    };
    let total_of = |f: fn(&InvoiceTotals) -> i64| {
        totals
            .as_ref()
            .map_or_else(|_| "—".to_string(), |t| format_money(f(t)))
    };
    let busy = move || !matches!(open.get(), Open::Nothing);

    let edit_entry = entry.clone();
    let on_edit = move |_| open.set(Open::Invoice(InvoiceSeed::edit(&edit_entry)));
    let credit_inv = inv.clone();
    let store: RwSignal<RecordStore> = use_app().store(ctx.clinic_id).into();
    let on_credit = move |_| {
        if let Some(n) = store.with_untracked(suggested_number) {
            open.set(Open::Invoice(InvoiceSeed::credit_note(
                id,
                &credit_inv,
                n,
                &today(),
            )));
        }
    };
    let on_pay = move |_| {
        open.set(Open::Payment {
            invoice_id: id,
            refund_of: None,
        })
    };
    let status_label = if is_draft { "Draft" } else { "Posted" };
    let detail_ctx = ctx.clone();

    view! {
        <tbody class="invoice" data-id=id.to_string()>
            <tr class="invoice-row" class:credit-note=inv.is_credit_note()
                data-id=id.to_string() data-number=inv.number.to_string()
                data-status=if is_draft { "draft" } else { "posted" }>
                <th scope="row" class="invoice-number">
                    "#" {inv.number}
                    {credited_number.map(|n| view! {
                        <span class="badge credit-note-badge">
                            {match n {
                                Some(n) => format!("Credit note for #{n}"),
                                None => "Credit note".to_string(),
                            }}
                        </span>
                    })}
                </th>
                <td class="invoice-date">{inv.date.clone()}</td>
                <td>
                    <span class=format!("badge status-{}", if is_draft { "draft" } else { "posted" })>
                        {status_label}
                    </span>
                </td>
                <td class="money invoice-total">{total_of(|t| t.total_cents)}</td>
                <td class="money invoice-insurance">{total_of(|t| t.insurance_cents)}</td>
                <td class="money invoice-patient">{total_of(|t| t.patient_cents)}</td>
                <td class="money invoice-paid">{cell(|s| s.balance.paid_cents)}</td>
                <td class="money invoice-balance"
                    class:credit=move || standing.with(|s| billable && s.as_ref().is_ok_and(|s| s.patient_due < 0))>
                    {cell(|s| s.patient_due)}
                </td>
                <td>
                    <div class="invoice-actions">
                    {is_draft.then(|| view! {
                        <button type="button" class="button secondary invoice-edit"
                            id=move || (targets.get().edit == Some(id)).then_some("invoice-edit")
                            disabled=busy on:click=on_edit.clone()>
                            "Edit"
                        </button>
                    })}
                    {billable.then(|| view! {
                        <button type="button" class="button secondary payment-add"
                            id=move || (targets.get().pay == Some(id)).then_some("payment-add")
                            disabled=busy on:click=on_pay>
                            "Add payment"
                        </button>
                        <Show when=move || can_credit.get()>
                            <button type="button" class="button secondary invoice-credit"
                                id=move || (targets.get().credit == Some(id)).then_some("invoice-credit")
                                disabled=busy on:click=on_credit.clone()>
                                "Credit note"
                            </button>
                        </Show>
                    })}
                    </div>
                </td>
            </tr>
            <tr class="invoice-detail">
                <td colspan="9">
                    <InvoiceDetail ctx=detail_ctx entry=entry standing=standing />
                </td>
            </tr>
        </tbody>
    }
}

/// Under an invoice's row: its lines, what credited it, its payments and the payment form.
#[component]
fn InvoiceDetail(
    ctx: Ctx,
    entry: InvoiceEntry,
    standing: Memo<Result<Standing, FieldError>>,
) -> impl IntoView {
    let id = entry.id;
    let (ledger, open) = (ctx.ledger, ctx.open);
    let billable = is_billable(&entry.invoice);
    let payments = Memo::new(move |_| ledger.with(|l| l.payments_of(&id)));
    let credit_notes = Memo::new(move |_| {
        ledger.with(|l| {
            l.credit_notes_of(&id)
                .into_iter()
                .map(|e| (e.invoice.number, e.invoice.status, e.invoice.totals()))
                .collect::<Vec<_>>()
        })
    });
    // `Some(refund_of)` when the payment form is open on this invoice.
    let paying = Memo::new(move |_| match open.get() {
        Open::Payment {
            invoice_id,
            refund_of,
        } if invoice_id == id => Some(refund_of),
        _ => None,
    });
    let lines = entry.invoice.lines.clone();
    let notes = entry.invoice.notes.clone();
    let form_ctx = ctx.clone();

    view! {
        <table class="invoice-lines">
            <caption class="visually-hidden">{format!("Lines of invoice #{}", entry.invoice.number)}</caption>
            <thead>
                <tr>
                    <th scope="col">"Code"</th>
                    <th scope="col">"Description"</th>
                    <th scope="col" class="money">"Qty"</th>
                    <th scope="col" class="money">"Unit price"</th>
                    <th scope="col" class="money">"Line total"</th>
                    <th scope="col" class="money">"Insurance"</th>
                </tr>
            </thead>
            <tbody>
                {lines.into_iter().map(|l| {
                    let total = l.total_cents().map_or_else(|| "—".to_string(), format_money);
                    view! {
                        <tr class="invoice-line">
                            <td>{l.code}</td>
                            <td>{l.description}</td>
                            <td class="money">{l.quantity}</td>
                            <td class="money">{format_money(l.unit_price_cents)}</td>
                            <td class="money">{total}</td>
                            <td class="money">{format_money(l.insurance_share_cents)}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
        {(!notes.is_empty()).then(|| view! { <p class="invoice-notes">{notes}</p> })}
        {move || match standing.get() {
            Err(e) if billable => Some(view! { <p class="error">{e.message}</p> }.into_any()),
            Ok(s) if billable && s.insurance_pending > 0 => Some(view! {
                <p class="help">"Insurance still to pay: " {format_money(s.insurance_pending)}</p>
            }.into_any()),
            _ => None,
        }}
        <ul class="credit-notes">
            {move || credit_notes.get().into_iter().map(|(number, status, totals)| {
                let amount = totals.map_or_else(|_| "—".to_string(), |t| format_money(t.total_cents));
                let state = if status == InvoiceStatus::Posted { "" } else { " (draft, not counted yet)" };
                view! { <li>{format!("Credited by #{number}: {amount}{state}")}</li> }
            }).collect_view()}
        </ul>
        <ul class="payments">
            <For each=move || payments.get() key=|p| p.id let:p>
                <PaymentItem ctx=ctx.clone() entry=p billable=billable />
            </For>
        </ul>
        {move || paying.get().map(|refund_of| view! {
            <PaymentForm ctx=form_ctx.clone() invoice_id=id refund_of=refund_of />
        })}
    }
}

/// One payment or refund under its invoice.
#[component]
fn PaymentItem(ctx: Ctx, entry: PaymentEntry, billable: bool) -> impl IntoView {
    let (ledger, open) = (ctx.ledger, ctx.open);
    let id = entry.id;
    let p = entry.payment;
    let refundable = Memo::new(move |_| ledger.with(|l| l.refundable(&id)));
    let refunded_on = p
        .refund_of
        .map(|orig| ledger.with_untracked(|l| l.payment(&orig).map(|o| o.payment.date.clone())));
    let what = match refunded_on {
        None => method_label(p.method).to_string(),
        Some(Some(date)) => format!(
            "Refund ({}) of the payment of {date}",
            method_label(p.method)
        ),
        Some(None) => format!("Refund ({})", method_label(p.method)),
    };
    let on_refund = move |_| {
        open.set(Open::Payment {
            invoice_id: p.invoice_id,
            refund_of: Some(id),
        })
    };
    let busy = move || !matches!(open.get(), Open::Nothing);
    let is_refund = p.is_refund();
    let offer_refund = move || billable && !is_refund && refundable.get() > 0;
    view! {
        <li class="payment" class:refund=p.is_refund() data-id=id.to_string()>
            <span class="payment-date">{p.date.clone()}</span>
            <span class="payment-method">{what}</span>
            <span class="money payment-amount">{format_money(p.signed_cents())}</span>
            {(!p.reference.is_empty()).then(|| view! { <span class="payment-reference">{p.reference.clone()}</span> })}
            <Show when=offer_refund>
                <button type="button" class="button secondary payment-refund" disabled=busy
                    on:click=on_refund>
                    "Refund"
                </button>
            </Show>
        </li>
    }
}

/// The messages of one field, joined.
fn message_of(errors: &[FieldError], field: &str) -> Option<String> {
    let msgs: Vec<&str> = errors
        .iter()
        .filter(|e| e.field == field)
        .map(|e| e.message.as_str())
        .collect();
    (!msgs.is_empty()).then(|| msgs.join(" "))
}

/// The payment (or refund) form, under the invoice it is for.
#[component]
fn PaymentForm(ctx: Ctx, invoice_id: Uuid, refund_of: Option<Uuid>) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let ledger = ctx.ledger;
    // Suggest what is left: of the payment for a refund, of the patient's share for a payment.
    let (amount0, method0) = ledger.with_untracked(|l| match refund_of {
        Some(orig) => (
            l.refundable(&orig),
            l.payment(&orig)
                .map_or(PaymentMethod::Cash, |p| p.payment.method),
        ),
        None => (
            l.standing(&invoice_id).map_or(0, |s| s.patient_due),
            PaymentMethod::Cash,
        ),
    });
    let amount = RwSignal::new(if amount0 > 0 {
        format_money(amount0)
    } else {
        String::new()
    });
    let method = RwSignal::new(method0);
    let date = RwSignal::new(today());
    let reference = RwSignal::new(String::new());
    let errors = RwSignal::new(Vec::<FieldError>::new());
    let form_error = RwSignal::new(None::<String>);
    let saving = RwSignal::new(false);
    // Chosen once per form, so a retried save writes the same record.
    let record_id = Uuid::new_v4();
    let max_date = today();
    let what = if refund_of.is_some() {
        "refund"
    } else {
        "payment"
    };

    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if saving.get_untracked() {
            return;
        }
        let (payment, errs) = ledger.with_untracked(|l| {
            read_payment(
                l,
                invoice_id,
                refund_of,
                &amount.get_untracked(),
                method.get_untracked(),
                &date.get_untracked(),
                reference.get_untracked().trim(),
                &today(),
            )
        });
        if !errs.is_empty() {
            errors.set(errs);
            form_error.set(Some("Please correct the fields marked below.".into()));
            return;
        }
        errors.set(Vec::new());
        form_error.set(None);
        saving.set(true);
        let (me, navigate) = (ctx.me.clone(), navigate.clone());
        let (clinic_id, chart_id, on_saved) = (ctx.clinic_id, ctx.chart_id, ctx.on_saved);
        spawn_local(async move {
            let amount = format_money(payment.amount_cents);
            let body = RecordBody::Payment(payment);
            let saved = save_item(app, me, clinic_id, chart_id, record_id, 0, body).await;
            // Before `on_saved`, which closes (and so disposes) this form.
            saving.set(false);
            match saved {
                Ok(_) => {
                    // The component may be gone by now (the user moved on): nothing to tell then.
                    let _ = on_saved.try_run(format!("The {what} of {amount} was saved."));
                }
                Err(e) => report_error(app, &navigate, form_error, e),
            }
        });
    };

    let err = move |field: &'static str| move || errors.with(|e| message_of(e, field));
    let invalid = move |field: &'static str| {
        move || {
            errors
                .with(|e| e.iter().any(|x| x.field == field))
                .then_some("true")
        }
    };
    let on_cancel = ctx.on_cancel;
    view! {
        <form class="payment-form" on:submit=on_submit novalidate>
            <h3>{if refund_of.is_some() { "Refund" } else { "New payment" }}</h3>
            <div class="grid">
                <div class="field">
                    <label for="payment-amount">"Amount"</label>
                    <input id="payment-amount" name="payment-amount" type="text" inputmode="decimal"
                        autocomplete="off" placeholder="0.00"
                        aria-invalid=invalid("amount_cents") aria-describedby="payment-amount-error"
                        prop:value=move || amount.get()
                        on:input=move |ev| amount.set(event_target_value(&ev)) />
                    <p class="field-error" id="payment-amount-error">{err("amount_cents")}</p>
                </div>
                <div class="field">
                    <label for="payment-method">"Method"</label>
                    <select id="payment-method" name="payment-method"
                        on:change=move |ev| {
                            if let Some(m) = parse_method(&event_target_value(&ev)) {
                                method.set(m);
                            }
                        }>
                        {METHODS.into_iter().map(|m| view! {
                            <option value=method_code(m) prop:selected=move || method.get() == m>
                                {method_label(m)}
                            </option>
                        }).collect_view()}
                    </select>
                </div>
                <div class="field">
                    <label for="payment-date">"Date"</label>
                    <input id="payment-date" name="payment-date" type="date" max=max_date
                        aria-invalid=invalid("date") aria-describedby="payment-date-error"
                        prop:value=move || date.get()
                        on:input=move |ev| date.set(event_target_value(&ev)) />
                    <p class="field-error" id="payment-date-error">{err("date")}</p>
                </div>
                <div class="field">
                    <label for="payment-reference">"Reference"</label>
                    <input id="payment-reference" name="payment-reference" type="text"
                        autocomplete="off" placeholder="Card slip, cheque number…"
                        aria-invalid=invalid("reference") aria-describedby="payment-reference-error"
                        prop:value=move || reference.get()
                        on:input=move |ev| reference.set(event_target_value(&ev)) />
                    <p class="field-error" id="payment-reference-error">{err("reference")}</p>
                </div>
            </div>
            {move || errors.with(|e| message_of(e, "refund_of").or_else(|| message_of(e, "invoice_id")))
                .map(|m| view! { <p class="error">{m}</p> })}
            {move || form_error.get().map(|e| view! { <p id="payment-error" class="error" role="alert">{e}</p> })}
            <div class="actions">
                <button id="payment-save" type="submit" class="button primary" disabled=move || saving.get()>
                    {move || match (saving.get(), refund_of.is_some()) {
                        (true, _) => "Saving…",
                        (false, true) => "Save refund",
                        (false, false) => "Save payment",
                    }}
                </button>
                <button id="payment-cancel" type="button" class="button secondary"
                    on:click=move |_| on_cancel.run(())>
                    "Cancel"
                </button>
            </div>
        </form>
    }
}

/// Builds a payment or refund from the form's text and checks it: the domain's rules, a refund
/// against what is left of its payment (`check_refund`), and a payment only on a posted invoice
/// and not beyond what is still due on it (an overpayment would have to be refunded).
#[allow(clippy::too_many_arguments)]
pub fn read_payment(
    ledger: &Ledger,
    invoice_id: Uuid,
    refund_of: Option<Uuid>,
    amount: &str,
    method: PaymentMethod,
    date: &str,
    reference: &str,
    today: &str,
) -> (Payment, Vec<FieldError>) {
    let mut errors = Vec::new();
    let amount_cents = parse_money(amount).unwrap_or_else(|message| {
        errors.push(FieldError {
            field: "amount_cents",
            message,
        });
        0
    });
    let payment = Payment {
        invoice_id,
        amount_cents,
        method,
        date: date.to_string(),
        refund_of,
        reference: reference.to_string(),
    };
    if let Err(errs) = payment.validate(today) {
        // An amount that did not parse already says so.
        let parsed = errors.is_empty();
        errors.extend(
            errs.into_iter()
                .filter(|e| parsed || e.field != "amount_cents"),
        );
    }
    if !errors.is_empty() {
        return (payment, errors);
    }
    let fail = |field: &'static str, message: String| vec![FieldError { field, message }];
    let invoice_ok = ledger
        .invoice(&invoice_id)
        .is_some_and(|e| is_billable(&e.invoice));
    if !invoice_ok {
        return (
            payment,
            fail(
                "invoice_id",
                "Payments are taken on posted invoices only.".into(),
            ),
        );
    }
    match refund_of {
        Some(orig) => {
            let Some(original) = ledger.payment(&orig) else {
                return (
                    payment,
                    fail(
                        "refund_of",
                        "The payment being refunded is not shown here.".into(),
                    ),
                );
            };
            if let Err(e) = check_refund(&payment, &original.payment, &ledger.refunds_of(&orig)) {
                let left = format_money(ledger.refundable(&orig));
                errors.push(FieldError {
                    field: e.field,
                    message: format!("{} At most {left} can be refunded.", e.message),
                });
            }
        }
        None => match ledger.standing(&invoice_id) {
            Ok(s) if payment.amount_cents > s.balance.due_cents => errors.push(FieldError {
                field: "amount_cents",
                message: format!(
                    "This is more than is still due on the invoice ({}).",
                    format_money(s.balance.due_cents.max(0))
                ),
            }),
            Ok(_) => {}
            Err(e) => errors.push(e),
        },
    }
    (payment, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use optovault_shared::chart::InvoiceLine;

    #[test]
    fn parses_money_exactly() {
        assert_eq!(parse_money("125.00"), Ok(12_500));
        assert_eq!(parse_money(" 125 "), Ok(12_500));
        assert_eq!(parse_money("95.5"), Ok(9_550));
        assert_eq!(parse_money("0.05"), Ok(5));
        assert_eq!(parse_money(".75"), Ok(75));
        assert_eq!(parse_money("12."), Ok(1_200));
        assert_eq!(parse_money("-20.00"), Ok(-2_000));
        assert_eq!(parse_money("\u{2212}1.10"), Ok(-110));
        assert_eq!(parse_money("0"), Ok(0));
        // The largest amount that fits, and one cent more.
        assert_eq!(parse_money("92233720368547758.07"), Ok(i64::MAX));
        assert!(parse_money("92233720368547758.08").is_err());
        assert!(parse_money("99999999999999999999999").is_err());
        for bad in [
            "", " ", ".", "-", "1.234", "1,50", "1,250.00", "12a", "1.2.3", "+5", "1e3", "--1",
            "½", "٣",
        ] {
            assert!(parse_money(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn formats_money() {
        assert_eq!(format_money(0), "0.00");
        assert_eq!(format_money(5), "0.05");
        assert_eq!(format_money(31_100), "311.00");
        assert_eq!(format_money(-2_000), "-20.00");
        assert_eq!(format_money(-5), "-0.05");
        assert_eq!(format_money(i64::MAX), "92233720368547758.07");
        assert_eq!(format_money(i64::MIN), "-92233720368547758.08");
        for c in [0, 1, 99, 100, 12_345, -7, i64::MAX, i64::MIN + 1] {
            assert_eq!(parse_money(&format_money(c)), Ok(c), "round trip of {c}");
        }
    }

    fn line(qty: u32, unit: i64, ins: i64) -> InvoiceLine {
        InvoiceLine {
            code: String::new(),
            description: "Item".into(),
            quantity: qty,
            unit_price_cents: unit,
            insurance_share_cents: ins,
        }
    }

    fn item(id: Uuid, seq: u64, body: RecordBody) -> Item {
        Item {
            id,
            version: 1,
            seq,
            body,
            author: "owner".into(),
            former: false,
        }
    }

    fn invoice(number: u32, lines: Vec<InvoiceLine>, credit_for: Option<Uuid>) -> Invoice {
        Invoice {
            number,
            date: "2026-11-20".into(),
            lines,
            status: InvoiceStatus::Posted,
            credit_note_for: credit_for,
            notes: String::new(),
        }
    }

    fn payment(
        invoice_id: Uuid,
        cents: i64,
        method: PaymentMethod,
        refund_of: Option<Uuid>,
    ) -> Payment {
        Payment {
            invoice_id,
            amount_cents: cents,
            method,
            date: "2026-11-20".into(),
            refund_of,
            reference: String::new(),
        }
    }

    /// The browser test's story: exam 120.00 (insurance 80.00), lenses 2 × 95.50.
    #[test]
    fn patient_balance_follows_payments_refunds_and_credit_notes() {
        let inv_id = Uuid::new_v4();
        let pay_id = Uuid::new_v4();
        let inv = invoice(1, vec![line(1, 12_000, 8_000), line(2, 9_550, 0)], None);
        let mut items = vec![
            item(
                Uuid::new_v4(),
                1,
                RecordBody::ClinicalNote(Default::default()),
            ),
            item(inv_id, 2, RecordBody::Invoice(inv)),
        ];
        let s = Ledger::from_items(items.clone()).standing(&inv_id).unwrap();
        assert_eq!(
            (
                s.totals.total_cents,
                s.totals.insurance_cents,
                s.totals.patient_cents
            ),
            (31_100, 8_000, 23_100)
        );
        assert_eq!((s.patient_due, s.insurance_pending), (23_100, 8_000));

        items.push(item(
            pay_id,
            3,
            RecordBody::Payment(payment(inv_id, 10_000, PaymentMethod::Card, None)),
        ));
        let l = Ledger::from_items(items.clone());
        assert_eq!(l.standing(&inv_id).unwrap().patient_due, 13_100);
        assert_eq!(l.standing(&inv_id).unwrap().balance.due_cents, 21_100);

        let (refund, errs) = read_payment(
            &l,
            inv_id,
            Some(pay_id),
            "20.00",
            PaymentMethod::Card,
            "2026-11-20",
            "",
            "2026-11-26",
        );
        assert!(errs.is_empty(), "{errs:?}");
        items.push(item(Uuid::new_v4(), 4, RecordBody::Payment(refund)));
        let l = Ledger::from_items(items.clone());
        assert_eq!(l.standing(&inv_id).unwrap().patient_due, 15_100);
        assert_eq!(l.refundable(&pay_id), 8_000);
        // Never more refunded than was paid.
        let (_, errs) = read_payment(
            &l,
            inv_id,
            Some(pay_id),
            "80.01",
            PaymentMethod::Card,
            "2026-11-20",
            "",
            "2026-11-26",
        );
        assert_eq!(errs.len(), 1);
        assert!(errs[0].message.contains("At most 80.00"), "{errs:?}");

        // The insurer pays its share: the patient's balance does not move.
        items.push(item(
            Uuid::new_v4(),
            5,
            RecordBody::Payment(payment(inv_id, 8_000, PaymentMethod::Insurance, None)),
        ));
        let l = Ledger::from_items(items.clone());
        let s = l.standing(&inv_id).unwrap();
        assert_eq!((s.patient_due, s.insurance_pending), (15_100, 0));

        // Crediting the lenses (191.00): the clinic now owes the patient 40.00.
        let cn_id = Uuid::new_v4();
        assert_eq!(l.creditable(&inv_id, None), Ok(31_100));
        items.push(item(
            cn_id,
            6,
            RecordBody::Invoice(invoice(2, vec![line(2, 9_550, 0)], Some(inv_id))),
        ));
        let l = Ledger::from_items(items.clone());
        let s = l.standing(&inv_id).unwrap();
        assert_eq!(s.balance.credited_cents, 19_100);
        assert_eq!(s.patient_due, -4_000);
        assert_eq!(l.creditable(&inv_id, None), Ok(12_000));
        assert_eq!(l.creditable(&inv_id, Some(cn_id)), Ok(31_100));
        // The account counts the invoice once (the credit note through it).
        assert_eq!(
            l.account(),
            Ok(Account {
                patient_due: -4_000,
                insurance_pending: 0
            })
        );
        let t = l.action_targets();
        assert_eq!(
            (t.pay, t.credit, t.edit),
            (Some(inv_id), Some(inv_id), None)
        );
    }

    #[test]
    fn payments_only_on_posted_invoices_and_within_what_is_due() {
        let inv_id = Uuid::new_v4();
        let mut draft = invoice(7, vec![line(1, 5_000, 0)], None);
        draft.status = InvoiceStatus::Draft;
        let l = Ledger::from_items([item(inv_id, 1, RecordBody::Invoice(draft.clone()))]);
        let read = |l: &Ledger, amount: &str| {
            read_payment(
                l,
                inv_id,
                None,
                amount,
                PaymentMethod::Cash,
                "2026-11-20",
                "",
                "2026-11-26",
            )
            .1
        };
        assert_eq!(read(&l, "10.00")[0].field, "invoice_id");
        assert_eq!(l.account(), Ok(Account::default()));
        assert_eq!(l.action_targets().edit, Some(inv_id));

        draft.status = InvoiceStatus::Posted;
        let l = Ledger::from_items([item(inv_id, 1, RecordBody::Invoice(draft))]);
        assert!(read(&l, "50.00").is_empty());
        assert_eq!(read(&l, "50.01")[0].field, "amount_cents");
        assert_eq!(read(&l, "0")[0].field, "amount_cents");
        let errs = read(&l, "ten");
        assert_eq!(
            errs.len(),
            1,
            "one message for an amount that does not parse: {errs:?}"
        );
    }

    #[test]
    fn absurd_amounts_are_errors_not_panics() {
        let inv_id = Uuid::new_v4();
        let inv = invoice(1, vec![line(u32::MAX, i64::MAX, 0)], None);
        let l = Ledger::from_items([item(inv_id, 1, RecordBody::Invoice(inv))]);
        assert!(l.standing(&inv_id).is_err());
        assert!(l.account().is_err());
        assert!(l.creditable(&inv_id, None).is_err());
        let huge = invoice(1, vec![line(1, i64::MAX, 0)], None);
        let refunds: Vec<Item> = (0..3)
            .map(|i| {
                item(
                    Uuid::new_v4(),
                    i + 2,
                    RecordBody::Payment(payment(
                        inv_id,
                        i64::MAX,
                        PaymentMethod::Insurance,
                        Some(Uuid::new_v4()),
                    )),
                )
            })
            .chain([item(inv_id, 1, RecordBody::Invoice(huge))])
            .collect();
        let l = Ledger::from_items(refunds);
        let _ = l.standing(&inv_id);
        let _ = l.account();
    }
}

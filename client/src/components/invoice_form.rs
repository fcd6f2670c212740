//! The form for one invoice or credit note: number, date, lines (code, description, quantity,
//! unit price, insurance share), live totals, and two ways to save: as a draft, or posted (final:
//! a posted invoice is never changed again, only credited).
//!
//! Everything typed is kept as text and parsed on save (money exactly into cents, see
//! [`parse_money`]); errors are shown beside the field they belong to. The domain's own rules
//! (`Invoice::validate`, `check_invoice_edit`) decide; this form only adds what needs the clinic's
//! other records: a free invoice number, and a credit note no larger than what is left to credit.

use std::sync::Arc;

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use optovault_shared::chart::{
    check_invoice_edit, Invoice, InvoiceLine, InvoiceStatus, InvoiceTotals,
};
use optovault_shared::domain::{FieldError, RecordBody};
use uuid::Uuid;
use wasm_bindgen::JsCast;

use crate::components::billing::{format_money, is_billable, parse_money, InvoiceEntry, Ledger};
use crate::pages::report_error;
use crate::records::save_item;
use crate::state::{use_app, Unlocked};
use crate::store::RecordStore;
use crate::util::today;

/// What the form starts from, and which record it writes.
#[derive(Clone, Debug, PartialEq)]
pub struct InvoiceSeed {
    /// Chosen when the form opens, so a retried save writes the same record.
    pub record_id: Uuid,
    /// The version being edited; 0 for a new invoice.
    pub expected_version: u64,
    pub invoice: Invoice,
}

impl InvoiceSeed {
    /// A blank draft with one line.
    pub fn new_invoice(number: u32, today: &str) -> InvoiceSeed {
        InvoiceSeed {
            record_id: Uuid::new_v4(),
            expected_version: 0,
            invoice: Invoice {
                number,
                date: today.to_string(),
                lines: vec![InvoiceLine {
                    quantity: 1,
                    ..Default::default()
                }],
                ..Default::default()
            },
        }
    }

    /// A draft as stored.
    pub fn edit(entry: &InvoiceEntry) -> InvoiceSeed {
        InvoiceSeed {
            record_id: entry.id,
            expected_version: entry.version,
            invoice: entry.invoice.clone(),
        }
    }

    /// A credit note for a posted invoice. As the domain model has it, a credit note's lines are
    /// positive: the amounts credited. It starts as the whole invoice; removing or lowering lines
    /// makes a partial credit.
    pub fn credit_note(
        original_id: Uuid,
        original: &Invoice,
        number: u32,
        today: &str,
    ) -> InvoiceSeed {
        InvoiceSeed {
            record_id: Uuid::new_v4(),
            expected_version: 0,
            invoice: Invoice {
                number,
                date: today.to_string(),
                lines: original.lines.clone(),
                status: InvoiceStatus::Draft,
                credit_note_for: Some(original_id),
                notes: format!("Credit note for invoice #{}.", original.number),
            },
        }
    }
}

/// One line as typed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LineText {
    pub code: String,
    pub description: String,
    pub quantity: String,
    pub price: String,
    pub insurance: String,
}

impl LineText {
    fn of(line: &InvoiceLine) -> LineText {
        LineText {
            code: line.code.clone(),
            description: line.description.clone(),
            quantity: line.quantity.to_string(),
            // A new line has no price yet: an empty box, not "0.00".
            price: if line.description.is_empty() && line.unit_price_cents == 0 {
                String::new()
            } else {
                format_money(line.unit_price_cents)
            },
            insurance: if line.insurance_share_cents == 0 {
                String::new()
            } else {
                format_money(line.insurance_share_cents)
            },
        }
    }
}

/// The fields of a line whose error is a number that did not parse.
const AMOUNT_FIELDS: [&str; 3] = [
    "lines.quantity",
    "lines.unit_price_cents",
    "lines.insurance_share_cents",
];

/// "Line 2: " — the prefix the domain puts before the errors of the 2nd line.
fn line_prefix(index: usize) -> String {
    format!("Line {}: ", index + 1)
}

/// Parses the lines as typed. A field that does not parse is an error (in the domain's form:
/// field `lines.quantity`, message "Line 2: ...") and counts as 0 in the line returned.
pub fn read_lines(texts: &[LineText]) -> (Vec<InvoiceLine>, Vec<FieldError>) {
    let mut errors = Vec::new();
    let mut lines = Vec::with_capacity(texts.len());
    for (i, t) in texts.iter().enumerate() {
        let mut fail = |field: &'static str, message: String| {
            errors.push(FieldError {
                field,
                message: format!("{}{message}", line_prefix(i)),
            })
        };
        let quantity = match t.quantity.trim() {
            "" => {
                fail("lines.quantity", "The quantity is required.".into());
                0
            }
            q => q.parse::<u32>().unwrap_or_else(|_| {
                fail(
                    "lines.quantity",
                    "The quantity must be a whole number (1, 2, 3…).".into(),
                );
                0
            }),
        };
        let unit_price_cents = match t.price.trim() {
            "" => {
                fail(
                    "lines.unit_price_cents",
                    "The unit price is required.".into(),
                );
                0
            }
            p => parse_money(p).unwrap_or_else(|m| {
                fail("lines.unit_price_cents", m);
                0
            }),
        };
        // No insurance share typed: none.
        let insurance_share_cents = match t.insurance.trim() {
            "" => 0,
            s => parse_money(s).unwrap_or_else(|m| {
                fail("lines.insurance_share_cents", m);
                0
            }),
        };
        lines.push(InvoiceLine {
            code: t.code.trim().to_string(),
            description: t.description.trim().to_string(),
            quantity,
            unit_price_cents,
            insurance_share_cents,
        });
    }
    (lines, errors)
}

/// The form as typed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InvoiceText {
    pub number: String,
    pub date: String,
    pub lines: Vec<LineText>,
    pub notes: String,
}

/// What the checks need from the clinic's records besides the form.
pub struct Context<'a> {
    /// The chart's invoices and payments.
    pub ledger: &'a Ledger,
    /// Every invoice number in use in the clinic, with its record.
    pub numbers: &'a [(Uuid, u32)],
    /// The latest stored version of the record being edited (`None` for a new one).
    pub stored: Option<&'a Invoice>,
    pub today: &'a str,
}

/// Builds the invoice the form describes and every reason it cannot be saved: what does not
/// parse, the domain's rules, and the rules that need the clinic's other records.
pub fn read_invoice(
    seed: &InvoiceSeed,
    text: &InvoiceText,
    post: bool,
    cx: &Context,
) -> (Invoice, Vec<FieldError>) {
    let mut errors = Vec::new();
    let number = match text.number.trim().parse::<u32>() {
        Ok(n) => n,
        Err(_) => {
            errors.push(FieldError {
                field: "number",
                message: "The invoice number must be a whole number (1 or more).".into(),
            });
            0
        }
    };
    let (lines, line_errors) = read_lines(&text.lines);
    errors.extend(line_errors);
    let invoice = Invoice {
        number,
        date: text.date.trim().to_string(),
        lines,
        status: if post {
            InvoiceStatus::Posted
        } else {
            InvoiceStatus::Draft
        },
        credit_note_for: seed.invoice.credit_note_for,
        notes: text.notes.trim().to_string(),
    };
    if let Err(domain) = invoice.validate(cx.today) {
        // A field that did not parse already has its message; the domain would only add a
        // confusing second one about the 0 it was read as.
        let unparsed: Vec<(&str, String)> = errors
            .iter()
            .map(|e| (e.field, line_of(&e.message)))
            .collect();
        errors.extend(
            domain
                .into_iter()
                .filter(|e| !unparsed.contains(&(e.field, line_of(&e.message)))),
        );
    }
    if errors.is_empty() {
        errors.extend(clinic_rules(seed, &invoice, cx));
    }
    (invoice, errors)
}

/// The "Line N: " prefix of a message, or "" for a message about the whole invoice.
fn line_of(message: &str) -> String {
    match message.split_once(": ") {
        Some((head, _)) if head.starts_with("Line ") => head.to_string(),
        _ => String::new(),
    }
}

/// The rules that need more than the invoice itself.
fn clinic_rules(seed: &InvoiceSeed, invoice: &Invoice, cx: &Context) -> Vec<FieldError> {
    let mut errors = Vec::new();
    // Invoice numbers are unique per clinic.
    let taken = cx
        .numbers
        .iter()
        .any(|(id, n)| *n == invoice.number && *id != seed.record_id);
    if taken {
        let next = next_free(cx.numbers);
        errors.push(FieldError {
            field: "number",
            message: format!(
                "Invoice #{} already exists in this clinic{}.",
                invoice.number,
                next.map_or(String::new(), |n| format!("; the next free number is {n}"))
            ),
        });
    }
    // A posted invoice never changes (someone may have posted it since this form opened).
    if let Some(stored) = cx.stored {
        if let Err(e) = check_invoice_edit(stored, invoice) {
            errors.push(e);
        }
    }
    if let Some(original_id) = invoice.credit_note_for {
        errors.extend(credit_rules(seed, invoice, original_id, cx.ledger));
    }
    errors
}

fn next_free(numbers: &[(Uuid, u32)]) -> Option<u32> {
    optovault_shared::chart::next_invoice_number(numbers.iter().map(|(_, n)| *n))
}

/// A credit note credits a posted invoice of this chart, and never more than is left of it.
fn credit_rules(
    seed: &InvoiceSeed,
    invoice: &Invoice,
    original_id: Uuid,
    ledger: &Ledger,
) -> Vec<FieldError> {
    let Some(original) = ledger
        .invoice(&original_id)
        .filter(|e| is_billable(&e.invoice))
    else {
        return vec![FieldError {
            field: "credit_note_for",
            message: "A credit note must be for a posted invoice of this patient.".into(),
        }];
    };
    let left = match ledger.creditable(&original_id, Some(seed.record_id)) {
        Ok(left) => left,
        Err(e) => return vec![e],
    };
    match invoice.totals() {
        Ok(t) if t.total_cents > left => vec![FieldError {
            field: "lines",
            message: format!(
                "This credit note totals {}, more than the {} left to credit on invoice #{}.",
                format_money(t.total_cents),
                format_money(left.max(0)),
                original.invoice.number
            ),
        }],
        Ok(_) => Vec::new(),
        Err(e) => vec![e],
    }
}

/// The message of one field (of line `line`, prefix removed, when given).
fn message_for(errors: &[FieldError], field: &str, line: Option<usize>) -> Option<String> {
    let prefix = line.map(line_prefix);
    let msgs: Vec<&str> = errors
        .iter()
        .filter(|e| e.field == field)
        .filter_map(|e| match &prefix {
            Some(p) => e.message.strip_prefix(p.as_str()),
            None if line_of(&e.message).is_empty() => Some(e.message.as_str()),
            None => None,
        })
        .collect();
    (!msgs.is_empty()).then(|| msgs.join(" "))
}

/// The element id of the input an error belongs to (to move the focus there).
fn element_for(e: &FieldError) -> Option<String> {
    let line = line_of(&e.message)
        .strip_prefix("Line ")
        .and_then(|n| n.parse::<usize>().ok())
        .and_then(|n| n.checked_sub(1));
    let input = match e.field {
        "number" => return Some("invoice-number".into()),
        "date" => return Some("invoice-date".into()),
        "notes" => return Some("invoice-notes".into()),
        "lines.code" => "line-code",
        "lines.description" => "line-desc",
        "lines.quantity" => "line-qty",
        "lines.unit_price_cents" => "line-price",
        "lines.insurance_share_cents" => "line-insurance",
        _ => return None,
    };
    line.map(|i| format!("{input}-{i}"))
}

fn focus(id: &str) {
    let el = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(id))
        .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok());
    if let Some(el) = el {
        let _ = el.focus();
    }
}

/// One line's inputs (signals, so rows can be added and removed without losing what is typed).
#[derive(Clone, Copy)]
struct LineInputs {
    /// Stable across removals of other lines (the list's key).
    key: u64,
    code: RwSignal<String>,
    description: RwSignal<String>,
    quantity: RwSignal<String>,
    price: RwSignal<String>,
    insurance: RwSignal<String>,
}

impl LineInputs {
    fn new(key: u64, t: LineText) -> LineInputs {
        LineInputs {
            key,
            code: RwSignal::new(t.code),
            description: RwSignal::new(t.description),
            quantity: RwSignal::new(t.quantity),
            price: RwSignal::new(t.price),
            insurance: RwSignal::new(t.insurance),
        }
    }

    /// The typed text (tracked: live totals follow it).
    fn text(&self) -> LineText {
        LineText {
            code: self.code.get(),
            description: self.description.get(),
            quantity: self.quantity.get(),
            price: self.price.get(),
            insurance: self.insurance.get(),
        }
    }
}

#[component]
pub fn InvoiceForm(
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    chart_id: Uuid,
    seed: InvoiceSeed,
    ledger: Memo<Ledger>,
    /// Called with what was saved, once it is.
    on_saved: Callback<String>,
    on_cancel: Callback<()>,
) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let store: RwSignal<RecordStore> = app.store(clinic_id).into();
    let number = RwSignal::new(seed.invoice.number.to_string());
    let date = RwSignal::new(seed.invoice.date.clone());
    let notes = RwSignal::new(seed.invoice.notes.clone());
    let next_key = StoredValue::new(seed.invoice.lines.len() as u64);
    let lines = RwSignal::new(
        seed.invoice
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| LineInputs::new(i as u64, LineText::of(l)))
            .collect::<Vec<_>>(),
    );
    let errors = RwSignal::new(Vec::<FieldError>::new());
    let form_error = RwSignal::new(None::<String>);
    let saving = RwSignal::new(false);
    // The version this form writes over; moves on when a conflict shows a newer one.
    let version = RwSignal::new(seed.expected_version);
    let max_date = today();
    let is_credit = seed.invoice.is_credit_note();
    let title = match (seed.invoice.credit_note_for, seed.expected_version) {
        (Some(orig), _) => format!(
            "Credit note for invoice #{}",
            ledger.with_untracked(|l| l
                .invoice(&orig)
                .map_or(String::from("?"), |e| e.invoice.number.to_string()))
        ),
        (None, 0) => "New invoice".to_string(),
        (None, _) => format!("Edit draft invoice #{}", seed.invoice.number),
    };
    let record_id = seed.record_id;
    let seed = StoredValue::new(seed);

    // Totals as typed: `None` while an amount does not parse.
    let live = Memo::new(move |_| {
        let texts: Vec<LineText> = lines.with(|ls| ls.iter().map(LineInputs::text).collect());
        let (parsed, errs) = read_lines(&texts);
        if errs.iter().any(|e| AMOUNT_FIELDS.contains(&e.field)) {
            return None;
        }
        Some(
            Invoice {
                lines: parsed,
                ..Default::default()
            }
            .totals(),
        )
    });

    let submit = move |post: bool| {
        if saving.get_untracked() {
            return;
        }
        let text = InvoiceText {
            number: number.get_untracked(),
            date: date.get_untracked(),
            lines: lines.with_untracked(|ls| ls.iter().map(|l| l.text()).collect::<Vec<_>>()),
            notes: notes.get_untracked(),
        };
        let (numbers, stored) = store.with_untracked(|s| {
            let numbers: Vec<(Uuid, u32)> = s
                .all_items()
                .filter_map(|(_, i)| match &i.body {
                    RecordBody::Invoice(inv) => Some((i.id, inv.number)),
                    _ => None,
                })
                .collect();
            let stored = s.item(&chart_id, &record_id).and_then(|i| match &i.body {
                RecordBody::Invoice(inv) => Some(inv.clone()),
                _ => None,
            });
            (numbers, stored)
        });
        let today = today();
        let (invoice, errs) = ledger.with_untracked(|l| {
            seed.with_value(|seed| {
                let cx = Context {
                    ledger: l,
                    numbers: &numbers,
                    stored: stored.as_ref(),
                    today: &today,
                };
                read_invoice(seed, &text, post, &cx)
            })
        });
        if !errs.is_empty() {
            if let Some(id) = errs.iter().find_map(element_for) {
                focus(&id);
            }
            errors.set(errs);
            form_error.set(Some("Please correct the fields marked below.".into()));
            return;
        }
        errors.set(Vec::new());
        form_error.set(None);
        saving.set(true);
        let (me, navigate) = (me.clone(), navigate.clone());
        let expected = version.get_untracked();
        spawn_local(async move {
            let what = if invoice.is_credit_note() {
                "Credit note"
            } else {
                "Invoice"
            };
            let done = match invoice.status {
                InvoiceStatus::Posted => "posted",
                InvoiceStatus::Draft => "saved as a draft",
            };
            let msg = format!("{what} #{} {done}.", invoice.number);
            let body = RecordBody::Invoice(invoice);
            let saved = save_item(app, me, clinic_id, chart_id, record_id, expected, body).await;
            // Before `on_saved`, which closes (and so disposes) this form.
            saving.set(false);
            match saved {
                Ok(_) => {
                    // The component may be gone by now (the user moved on): nothing to tell then.
                    let _ = on_saved.try_run(msg);
                }
                Err(e) => {
                    if e.code == "version_conflict" {
                        // The store now holds the newer version: the next save writes over it
                        // (and the edit rules are checked against it).
                        let latest = store
                            .with_untracked(|s| s.item(&chart_id, &record_id).map(|i| i.version));
                        version.set(latest.unwrap_or(expected));
                    }
                    report_error(app, &navigate, form_error, e);
                }
            }
        });
    };
    let on_submit = {
        let submit = submit.clone();
        move |ev: SubmitEvent| {
            ev.prevent_default();
            submit(false);
        }
    };
    let on_post = move |_| submit(true);

    let add_line = move |_| {
        let key = next_key.get_value();
        next_key.set_value(key + 1);
        let blank = LineText {
            quantity: "1".into(),
            ..Default::default()
        };
        lines.update(|ls| ls.push(LineInputs::new(key, blank)));
        let index = lines.with_untracked(Vec::len).saturating_sub(1);
        // Errors are tied to line numbers, which no longer mean the same lines.
        errors.set(Vec::new());
        request_focus(format!("line-code-{index}"));
    };
    let remove_line = move |key: u64| {
        lines.update(|ls| ls.retain(|l| l.key != key));
        errors.set(Vec::new());
    };

    let err = move |field: &'static str| move || errors.with(|e| message_for(e, field, None));
    let invalid = move |field: &'static str| {
        move || {
            errors
                .with(|e| message_for(e, field, None).is_some())
                .then_some("true")
        }
    };
    // Errors about the whole invoice that have no input of their own.
    let rule_error = move || {
        errors.with(|e| {
            message_for(e, "status", None)
                .into_iter()
                .chain(message_for(e, "credit_note_for", None))
                .collect::<Vec<_>>()
        })
    };
    let total = move |f: fn(&InvoiceTotals) -> i64| {
        move || match live.get() {
            Some(Ok(t)) => format_money(f(&t)),
            Some(Err(_)) => "too large".to_string(),
            None => "—".to_string(),
        }
    };

    view! {
        <form id="invoice-form" class="invoice-form" class:credit-note-form=is_credit
            on:submit=on_submit novalidate aria-labelledby="invoice-form-title">
            <h3 id="invoice-form-title">{title}</h3>
            {move || form_error.get().map(|e| view! { <p id="invoice-error" class="error" role="alert">{e}</p> })}
            {move || rule_error().into_iter().map(|m| view! { <p class="error invoice-rule-error">{m}</p> }).collect_view()}
            <div class="grid">
                <div class="field">
                    <label for="invoice-number">"Invoice number"</label>
                    <input id="invoice-number" name="invoice-number" type="number" min="1" step="1"
                        inputmode="numeric" autocomplete="off"
                        aria-invalid=invalid("number") aria-describedby="invoice-number-error"
                        prop:value=move || number.get()
                        on:input=move |ev| number.set(event_target_value(&ev)) />
                    <p class="field-error" id="invoice-number-error">{err("number")}</p>
                </div>
                <div class="field">
                    <label for="invoice-date">"Date"</label>
                    <input id="invoice-date" name="invoice-date" type="date" max=max_date
                        aria-invalid=invalid("date") aria-describedby="invoice-date-error"
                        prop:value=move || date.get()
                        on:input=move |ev| date.set(event_target_value(&ev)) />
                    <p class="field-error" id="invoice-date-error">{err("date")}</p>
                </div>
            </div>
            <table class="invoice-lines-form">
                <caption class="visually-hidden">"Lines"</caption>
                <thead>
                    <tr>
                        <th scope="col">"Code"</th>
                        <th scope="col">"Description"</th>
                        <th scope="col">"Qty"</th>
                        <th scope="col">"Unit price"</th>
                        <th scope="col">"Insurance share"</th>
                        <th scope="col" class="money">"Line total"</th>
                        <th scope="col"><span class="visually-hidden">"Remove"</span></th>
                    </tr>
                </thead>
                <tbody>
                    <For each=move || lines.get().into_iter().enumerate()
                        key=|(i, l)| (*i, l.key)
                        children=move |(index, line)| view! {
                            <LineRow index=index line=line errors=errors on_remove=remove_line />
                        } />
                </tbody>
            </table>
            <p class="field-error" id="invoice-lines-error">{err("lines")}</p>
            <div class="actions">
                <button id="line-add" type="button" class="button secondary" on:click=add_line>
                    "Add line"
                </button>
            </div>
            <dl class="invoice-totals" aria-live="polite">
                <div><dt>"Total"</dt><dd id="invoice-total">{total(|t| t.total_cents)}</dd></div>
                <div><dt>"Insurance"</dt><dd id="invoice-insurance-total">{total(|t| t.insurance_cents)}</dd></div>
                <div><dt>"Patient"</dt><dd id="invoice-patient-total">{total(|t| t.patient_cents)}</dd></div>
            </dl>
            <div class="field wide">
                <label for="invoice-notes">"Notes"</label>
                <textarea id="invoice-notes" name="invoice-notes" rows="2"
                    aria-invalid=invalid("notes") aria-describedby="invoice-notes-error"
                    prop:value=move || notes.get()
                    on:input=move |ev| notes.set(event_target_value(&ev))></textarea>
                <p class="field-error" id="invoice-notes-error">{err("notes")}</p>
            </div>
            <p class="help">
                "A draft can be changed. Posting makes it final: a posted "
                {if is_credit { "credit note" } else { "invoice" }}
                " can no longer be edited, only corrected by a credit note."
            </p>
            <div class="actions">
                <button id="invoice-save" type="submit" class="button secondary" disabled=move || saving.get()>
                    "Save draft"
                </button>
                <button id="invoice-post" type="button" class="button primary" disabled=move || saving.get()
                    on:click=on_post>
                    {move || if saving.get() { "Saving…" } else { "Post" }}
                </button>
                <button id="invoice-cancel" type="button" class="button secondary"
                    on:click=move |_| on_cancel.run(())>
                    "Cancel"
                </button>
            </div>
        </form>
    }
}

/// Focuses an element once the view has been updated (it may not exist yet).
fn request_focus(id: String) {
    spawn_local(async move {
        crate::util::sleep(0).await;
        focus(&id);
    });
}

/// One line's inputs, each with its error beside it.
#[component]
fn LineRow(
    index: usize,
    line: LineInputs,
    errors: RwSignal<Vec<FieldError>>,
    on_remove: impl Fn(u64) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let n = index + 1;
    let cell = move |field: &'static str,
                     id_base: &'static str,
                     label: String,
                     value: RwSignal<String>,
                     kind: &'static str,
                     inputmode: &'static str| {
        let id = format!("{id_base}-{index}");
        let error_id = format!("{id}-error");
        let message = move || errors.with(|e| message_for(e, field, Some(index)));
        view! {
            <td>
                <label class="visually-hidden" for=id.clone()>{label}</label>
                <input id=id name=id_base type=kind inputmode=inputmode autocomplete="off"
                    aria-invalid=move || message().is_some().then_some("true")
                    aria-describedby=error_id.clone()
                    prop:value=move || value.get()
                    on:input=move |ev| value.set(event_target_value(&ev)) />
                <p class="field-error" id=error_id>{message}</p>
            </td>
        }
    };
    // This line's total as typed.
    let line_total = move || {
        let q = line.quantity.with(|q| q.trim().parse::<u32>().ok());
        let p = line.price.with(|p| parse_money(p).ok());
        match (q, p) {
            (Some(q), Some(p)) => i64::from(q)
                .checked_mul(p)
                .map_or_else(|| "too large".to_string(), format_money),
            _ => "—".to_string(),
        }
    };
    view! {
        <tr class="invoice-line-input" data-index=index.to_string()>
            {cell("lines.code", "line-code", format!("Code, line {n}"), line.code, "text", "text")}
            {cell("lines.description", "line-desc", format!("Description, line {n}"), line.description, "text", "text")}
            {cell("lines.quantity", "line-qty", format!("Quantity, line {n}"), line.quantity, "number", "numeric")}
            {cell("lines.unit_price_cents", "line-price", format!("Unit price, line {n}"), line.price, "text", "decimal")}
            {cell("lines.insurance_share_cents", "line-insurance", format!("Insurance share, line {n}"), line.insurance, "text", "decimal")}
            <td class="money line-total">{line_total}</td>
            <td>
                <button type="button" class="button secondary line-remove" id=format!("line-remove-{index}")
                    aria-label=format!("Remove line {n}") on:click=move |_| on_remove(line.key)>
                    "Remove"
                </button>
            </td>
        </tr>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Item;

    fn text(qty: &str, price: &str, ins: &str) -> LineText {
        LineText {
            code: "92014".into(),
            description: "Exam".into(),
            quantity: qty.into(),
            price: price.into(),
            insurance: ins.into(),
        }
    }

    #[test]
    fn lines_parse_exactly_and_name_their_line() {
        let (lines, errs) = read_lines(&[text("1", "120.00", "80.00"), text("2", "95.50", "")]);
        assert!(errs.is_empty());
        assert_eq!(lines[0].unit_price_cents, 12_000);
        assert_eq!(lines[0].insurance_share_cents, 8_000);
        assert_eq!(lines[1].total_cents(), Some(19_100));
        let (_, errs) = read_lines(&[text("1", "1", ""), text("1.5", "12.345", "x")]);
        let got: Vec<(&str, &str)> = errs.iter().map(|e| (e.field, e.message.as_str())).collect();
        assert_eq!(got.len(), 3);
        assert!(
            got.iter().all(|(_, m)| m.starts_with("Line 2: ")),
            "{got:?}"
        );
        assert_eq!(got[0].0, "lines.quantity");
        assert_eq!(got[1].0, "lines.unit_price_cents");
        assert_eq!(got[2].0, "lines.insurance_share_cents");
    }

    fn form(number: &str, lines: Vec<LineText>) -> InvoiceText {
        InvoiceText {
            number: number.into(),
            date: "2026-11-20".into(),
            lines,
            notes: String::new(),
        }
    }

    fn cx<'a>(ledger: &'a Ledger, numbers: &'a [(Uuid, u32)]) -> Context<'a> {
        Context {
            ledger,
            numbers,
            stored: None,
            today: "2026-11-26",
        }
    }

    #[test]
    fn quantity_zero_is_the_domain_error_beside_its_field() {
        let seed = InvoiceSeed::new_invoice(1, "2026-11-26");
        let ledger = Ledger::default();
        let (_, errs) = read_invoice(
            &seed,
            &form("1", vec![text("0", "120.00", "")]),
            false,
            &cx(&ledger, &[]),
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(
            message_for(&errs, "lines.quantity", Some(0)).as_deref(),
            Some("Quantity must be at least 1.")
        );
        assert_eq!(element_for(&errs[0]).as_deref(), Some("line-qty-0"));
        // A quantity that does not parse gets one message, not also the domain's about 0.
        let (_, errs) = read_invoice(
            &seed,
            &form("1", vec![text("", "120.00", "")]),
            false,
            &cx(&ledger, &[]),
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
    }

    #[test]
    fn numbers_are_unique_and_posted_invoices_frozen() {
        let seed = InvoiceSeed::new_invoice(3, "2026-11-26");
        let ledger = Ledger::default();
        let numbers = [(Uuid::new_v4(), 3), (Uuid::new_v4(), 7)];
        let (_, errs) = read_invoice(
            &seed,
            &form("3", vec![text("1", "10", "")]),
            true,
            &cx(&ledger, &numbers),
        );
        assert_eq!(errs[0].field, "number");
        assert!(
            errs[0].message.contains("next free number is 8"),
            "{errs:?}"
        );
        // Its own number is not a clash.
        let numbers = [(seed.record_id, 3)];
        let (inv, errs) = read_invoice(
            &seed,
            &form("3", vec![text("1", "10", "")]),
            true,
            &cx(&ledger, &numbers),
        );
        assert!(errs.is_empty());
        assert_eq!(inv.status, InvoiceStatus::Posted);
        // Posted since: nothing may change.
        let c = Context {
            stored: Some(&inv),
            ..cx(&ledger, &numbers)
        };
        let (_, errs) = read_invoice(&seed, &form("3", vec![text("1", "11", "")]), true, &c);
        assert_eq!(errs[0].field, "status");
    }

    #[test]
    fn credit_notes_credit_a_posted_invoice_up_to_its_total() {
        let orig_id = Uuid::new_v4();
        let orig = Invoice {
            number: 1,
            date: "2026-11-20".into(),
            lines: vec![
                InvoiceLine {
                    code: "92014".into(),
                    description: "Exam".into(),
                    quantity: 1,
                    unit_price_cents: 12_000,
                    insurance_share_cents: 8_000,
                },
                InvoiceLine {
                    code: String::new(),
                    description: "Lenses".into(),
                    quantity: 2,
                    unit_price_cents: 9_550,
                    insurance_share_cents: 0,
                },
            ],
            status: InvoiceStatus::Posted,
            credit_note_for: None,
            notes: String::new(),
        };
        let item = Item {
            id: orig_id,
            version: 1,
            seq: 1,
            body: RecordBody::Invoice(orig.clone()),
            author: "o".into(),
            former: false,
        };
        let ledger = Ledger::from_items([item]);
        let seed = InvoiceSeed::credit_note(orig_id, &orig, 2, "2026-11-26");
        assert_eq!(seed.invoice.lines, orig.lines);
        let whole: Vec<LineText> = seed.invoice.lines.iter().map(LineText::of).collect();
        let (cn, errs) = read_invoice(&seed, &form("2", whole.clone()), true, &cx(&ledger, &[]));
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(cn.credit_note_for, Some(orig_id));
        let mut more = whole;
        more[1].quantity = "3".into();
        let (_, errs) = read_invoice(&seed, &form("2", more), true, &cx(&ledger, &[]));
        assert_eq!(errs[0].field, "lines");
        assert!(
            errs[0].message.contains("more than the 311.00 left"),
            "{errs:?}"
        );
    }
}

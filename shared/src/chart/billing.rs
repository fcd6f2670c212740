//! Billing (compartment `billing`): invoices, credit notes, payments and refunds. All amounts are
//! integer cents; every sum and product is checked, so absurd amounts are a validation error,
//! never an overflow panic.
//!
//! * An invoice is a draft until posted; a posted invoice is never changed
//!   ([`check_invoice_edit`]). To correct one, post a *credit note*: an invoice whose
//!   `credit_note_for` names the original, its (positive) lines being the amounts credited.
//! * A payment's amount is always positive. A refund is a payment with `refund_of` set to the
//!   payment it gives money back on: its effect on the balance is negative
//!   ([`Payment::signed_cents`]).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{parse_date, Checks, LINE_MAX, NOTES_MAX};
use crate::domain::FieldError;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    #[default]
    Draft,
    Posted,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoiceLine {
    /// Service or product code (CPT, SKU...), optional.
    #[serde(default)]
    pub code: String,
    pub description: String,
    pub quantity: u32,
    pub unit_price_cents: i64,
    /// The part of this line's total billed to insurance (0..=line total).
    #[serde(default)]
    pub insurance_share_cents: i64,
}

impl InvoiceLine {
    /// quantity × unit price, `None` on overflow.
    pub fn total_cents(&self) -> Option<i64> {
        i64::from(self.quantity).checked_mul(self.unit_price_cents)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invoice {
    /// Unique per clinic (the client assigns it with [`next_invoice_number`]).
    pub number: u32,
    /// `YYYY-MM-DD`.
    pub date: String,
    pub lines: Vec<InvoiceLine>,
    pub status: InvoiceStatus,
    /// Set on a credit note: the record id of the invoice it credits.
    #[serde(default)]
    pub credit_note_for: Option<Uuid>,
    #[serde(default)]
    pub notes: String,
}

/// Formats cents as `1234.50` / `-20.00`: always two decimals, no currency symbol and no
/// thousands separator (the clinic's currency is not recorded; the client parses the same text
/// back). Exact for every `i64`, `i64::MIN` included.
pub fn format_money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// An invoice's sums, in cents: `total = insurance + patient`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceTotals {
    pub total_cents: i64,
    pub insurance_cents: i64,
    pub patient_cents: i64,
}

fn too_large() -> FieldError {
    FieldError {
        field: "lines",
        message: "The amounts are too large to add up.".into(),
    }
}

impl Invoice {
    pub fn is_credit_note(&self) -> bool {
        self.credit_note_for.is_some()
    }

    /// The sums, or an error if any product or sum overflows.
    pub fn totals(&self) -> Result<InvoiceTotals, FieldError> {
        let mut total: i64 = 0;
        let mut insurance: i64 = 0;
        for line in &self.lines {
            let t = line.total_cents().ok_or_else(too_large)?;
            total = total.checked_add(t).ok_or_else(too_large)?;
            insurance = insurance
                .checked_add(line.insurance_share_cents)
                .ok_or_else(too_large)?;
        }
        Ok(InvoiceTotals {
            total_cents: total,
            insurance_cents: insurance,
            patient_cents: total.checked_sub(insurance).ok_or_else(too_large)?,
        })
    }

    pub fn validate(&self, today: &str) -> Result<(), Vec<FieldError>> {
        let mut c = Checks::default();
        if self.number == 0 {
            c.err("number", "The invoice number must be 1 or more.");
        }
        c.date(
            "date",
            &self.date,
            "The invoice date",
            parse_date(today),
            true,
        );
        if self.lines.is_empty() {
            c.err("lines", "An invoice needs at least one line.");
        }
        for (i, line) in self.lines.iter().enumerate() {
            c.nested(&format!("Line {}: ", i + 1), |c| {
                c.text("lines.code", &line.code, 20, false);
                c.required_text(
                    "lines.description",
                    &line.description,
                    "The description",
                    LINE_MAX,
                );
                if line.quantity == 0 {
                    c.err("lines.quantity", "Quantity must be at least 1.");
                }
                if line.unit_price_cents < 0 {
                    c.err("lines.unit_price_cents", "The price cannot be negative.");
                }
                match line.total_cents() {
                    None => c.err("lines.unit_price_cents", "The line total is too large."),
                    Some(t) => {
                        if line.insurance_share_cents < 0 || line.insurance_share_cents > t {
                            c.err(
                                "lines.insurance_share_cents",
                                "The insurance share must be between 0 and the line total.",
                            );
                        }
                    }
                }
            });
        }
        if self.lines.iter().all(|l| l.total_cents().is_some()) && self.totals().is_err() {
            c.errors.push(too_large());
        }
        if self.credit_note_for.is_some_and(|id| id.is_nil()) {
            c.err(
                "credit_note_for",
                "Choose the invoice this credit note is for.",
            );
        }
        c.text("notes", &self.notes, NOTES_MAX, true);
        c.result()
    }
}

/// The next free invoice number: one more than the largest in use, 1 for the first. `None` when
/// the numbers are exhausted.
pub fn next_invoice_number(existing: impl IntoIterator<Item = u32>) -> Option<u32> {
    match existing.into_iter().max() {
        None => Some(1),
        Some(m) => m.checked_add(1),
    }
}

/// Whether `new` may replace `old`: a posted invoice cannot change at all (post a credit note
/// instead); a draft can change freely, including being posted.
pub fn check_invoice_edit(old: &Invoice, new: &Invoice) -> Result<(), FieldError> {
    if old.status == InvoiceStatus::Posted && new != old {
        return Err(FieldError {
            field: "status",
            message: "A posted invoice cannot be changed; issue a credit note instead.".into(),
        });
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    #[default]
    Cash,
    Card,
    Cheque,
    BankTransfer,
    Insurance,
    Other,
}

/// Money received for an invoice, or (with `refund_of`) given back.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payment {
    /// The invoice's record id.
    pub invoice_id: Uuid,
    /// Always more than zero; the direction is given by `refund_of`.
    pub amount_cents: i64,
    pub method: PaymentMethod,
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Set on a refund: the record id of the payment being (partly) refunded.
    #[serde(default)]
    pub refund_of: Option<Uuid>,
    /// Card slip, cheque number, transfer reference...
    #[serde(default)]
    pub reference: String,
}

impl Payment {
    pub fn is_refund(&self) -> bool {
        self.refund_of.is_some()
    }

    /// The effect on what has been paid: positive for a payment, negative for a refund.
    pub fn signed_cents(&self) -> i64 {
        if self.is_refund() {
            self.amount_cents.saturating_neg()
        } else {
            self.amount_cents
        }
    }

    pub fn validate(&self, today: &str) -> Result<(), Vec<FieldError>> {
        let mut c = Checks::default();
        if self.invoice_id.is_nil() {
            c.err("invoice_id", "Choose the invoice.");
        }
        if self.amount_cents <= 0 {
            c.err("amount_cents", "The amount must be more than zero.");
        }
        c.date(
            "date",
            &self.date,
            "The payment date",
            parse_date(today),
            true,
        );
        if self.refund_of.is_some_and(|id| id.is_nil()) {
            c.err("refund_of", "Choose the payment being refunded.");
        }
        c.text("reference", &self.reference, LINE_MAX, false);
        c.result()
    }
}

/// Checks a refund against the payment it refunds (`original`, whose record id is
/// `refund.refund_of`) and the other refunds already made on it: same invoice, and never more
/// refunded in all than was paid.
pub fn check_refund(
    refund: &Payment,
    original: &Payment,
    earlier_refunds: &[Payment],
) -> Result<(), FieldError> {
    let err = |message: &str| FieldError {
        field: "amount_cents",
        message: message.into(),
    };
    if !refund.is_refund() || original.is_refund() || refund.invoice_id != original.invoice_id {
        return Err(FieldError {
            field: "refund_of",
            message: "A refund must refer to a payment of the same invoice.".into(),
        });
    }
    let mut refunded = refund.amount_cents;
    for r in earlier_refunds {
        refunded = refunded
            .checked_add(r.amount_cents)
            .ok_or_else(|| err("The amounts are too large."))?;
    }
    if refunded > original.amount_cents {
        return Err(err("More would be refunded than was paid."));
    }
    Ok(())
}

/// Where an invoice stands, in cents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    pub total_cents: i64,
    /// Sum of the posted credit notes for this invoice.
    pub credited_cents: i64,
    /// Payments less refunds.
    pub paid_cents: i64,
    /// `total − credited − paid`: negative when the patient is owed money.
    pub due_cents: i64,
}

/// The balance of the invoice `invoice_id` from its posted credit notes and its payments. Other
/// invoices' credit notes and payments in the slices are ignored, so callers may pass a chart's
/// whole lists.
pub fn invoice_balance(
    invoice_id: Uuid,
    invoice: &Invoice,
    credit_notes: &[Invoice],
    payments: &[Payment],
) -> Result<Balance, FieldError> {
    let total = invoice.totals()?.total_cents;
    let mut credited: i64 = 0;
    for cn in credit_notes
        .iter()
        .filter(|cn| cn.credit_note_for == Some(invoice_id) && cn.status == InvoiceStatus::Posted)
    {
        credited = credited
            .checked_add(cn.totals()?.total_cents)
            .ok_or_else(too_large)?;
    }
    let mut paid: i64 = 0;
    for p in payments.iter().filter(|p| p.invoice_id == invoice_id) {
        paid = paid.checked_add(p.signed_cents()).ok_or_else(too_large)?;
    }
    let due = total
        .checked_sub(credited)
        .and_then(|d| d.checked_sub(paid))
        .ok_or_else(too_large)?;
    Ok(Balance {
        total_cents: total,
        credited_cents: credited,
        paid_cents: paid,
        due_cents: due,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn sample_invoice() -> Invoice {
        Invoice {
            number: 1042,
            date: "2026-11-20".into(),
            lines: vec![
                InvoiceLine {
                    code: "92014".into(),
                    description: "Comprehensive eye exam".into(),
                    quantity: 1,
                    unit_price_cents: 12_500,
                    insurance_share_cents: 10_000,
                },
                InvoiceLine {
                    code: "CL-OG-30".into(),
                    description: "OphthaGuard monthly, box of 6".into(),
                    quantity: 2,
                    unit_price_cents: 4_995,
                    insurance_share_cents: 0,
                },
            ],
            status: InvoiceStatus::Posted,
            credit_note_for: None,
            notes: String::new(),
        }
    }

    pub(crate) fn sample_payment(invoice_id: Uuid) -> Payment {
        Payment {
            invoice_id,
            amount_cents: 4_490,
            method: PaymentMethod::Card,
            date: "2026-11-20".into(),
            refund_of: None,
            reference: "slip 0031".into(),
        }
    }

    fn line(quantity: u32, unit: i64, ins: i64) -> InvoiceLine {
        InvoiceLine {
            code: String::new(),
            description: "Item".into(),
            quantity,
            unit_price_cents: unit,
            insurance_share_cents: ins,
        }
    }

    #[test]
    fn totals_and_balance() {
        let inv = sample_invoice();
        assert_eq!(inv.validate("2026-11-26"), Ok(()));
        assert_eq!(
            inv.totals(),
            Ok(InvoiceTotals {
                total_cents: 22_490,
                insurance_cents: 10_000,
                patient_cents: 12_490,
            })
        );
        let id = Uuid::new_v4();
        let other = Uuid::new_v4();
        let p1 = sample_payment(id);
        let ins = Payment {
            amount_cents: 10_000,
            method: PaymentMethod::Insurance,
            ..sample_payment(id)
        };
        let refund = Payment {
            amount_cents: 490,
            refund_of: Some(Uuid::new_v4()),
            ..sample_payment(id)
        };
        let elsewhere = sample_payment(other);
        let credit = Invoice {
            number: 1050,
            lines: vec![line(1, 1_000, 0)],
            credit_note_for: Some(id),
            ..sample_invoice()
        };
        let draft_credit = Invoice {
            status: InvoiceStatus::Draft,
            ..credit.clone()
        };
        let b = invoice_balance(
            id,
            &inv,
            &[credit, draft_credit],
            &[p1.clone(), ins, refund.clone(), elsewhere],
        )
        .unwrap();
        assert_eq!(
            b,
            Balance {
                total_cents: 22_490,
                credited_cents: 1_000,
                paid_cents: 4_490 + 10_000 - 490,
                due_cents: 22_490 - 1_000 - 14_000,
            }
        );
        assert_eq!(refund.signed_cents(), -490);
        assert_eq!(check_refund(&refund, &p1, &[]), Ok(()));
        let too_much = Payment {
            amount_cents: 4_001,
            ..refund.clone()
        };
        assert!(check_refund(&too_much, &p1, std::slice::from_ref(&refund)).is_err());
        assert!(check_refund(&p1, &p1, &[]).is_err());
    }

    #[test]
    fn validation() {
        let f = |i: &Invoice| -> Vec<&'static str> {
            i.validate("2026-11-26")
                .err()
                .unwrap_or_default()
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        let mut i = sample_invoice();
        i.lines[1].quantity = 0;
        i.lines[0].insurance_share_cents = 12_501;
        assert_eq!(f(&i), vec!["lines.insurance_share_cents", "lines.quantity"]);
        let mut i = sample_invoice();
        i.lines.clear();
        i.number = 0;
        assert_eq!(f(&i), vec!["number", "lines"]);
        let mut i = sample_invoice();
        i.lines[0].unit_price_cents = -1;
        let errs = i.validate("2026-11-26").unwrap_err();
        assert_eq!(errs.len(), 2);
        assert!(errs[0].message.starts_with("Line 1: "));
        let p = sample_payment(Uuid::nil());
        let fields: Vec<_> = Payment {
            amount_cents: 0,
            ..p
        }
        .validate("2026-11-26")
        .unwrap_err()
        .into_iter()
        .map(|e| e.field)
        .collect();
        assert_eq!(fields, vec!["invoice_id", "amount_cents"]);
    }

    #[test]
    fn posted_invoices_are_frozen() {
        let posted = sample_invoice();
        let mut changed = posted.clone();
        changed.lines[0].unit_price_cents += 1;
        assert_eq!(
            check_invoice_edit(&posted, &changed).unwrap_err().field,
            "status"
        );
        let mut unposted = posted.clone();
        unposted.status = InvoiceStatus::Draft;
        assert!(check_invoice_edit(&posted, &unposted).is_err());
        assert_eq!(check_invoice_edit(&posted, &posted.clone()), Ok(()));
        let draft = unposted;
        assert_eq!(check_invoice_edit(&draft, &changed), Ok(()));
    }

    #[test]
    fn invoice_numbers() {
        assert_eq!(next_invoice_number([]), Some(1));
        assert_eq!(next_invoice_number([3, 17, 5]), Some(18));
        assert_eq!(next_invoice_number([u32::MAX]), None);
    }

    proptest! {
        /// Totals never panic; they are an error exactly when the exact (i128) sums do not fit.
        #[test]
        fn totals_never_panic(lines in proptest::collection::vec(
            (any::<u32>(), any::<i64>(), any::<i64>()), 0..6)) {
            let inv = Invoice {
                lines: lines.iter().map(|(q, u, s)| line(*q, *u, *s)).collect(),
                ..sample_invoice()
            };
            let mut total: i128 = 0;
            let mut ins: i128 = 0;
            let mut fits = true;
            for (q, u, s) in &lines {
                let t = i128::from(*q) * i128::from(*u);
                fits &= i64::try_from(t).is_ok();
                total += t;
                ins += i128::from(*s);
                fits &= i64::try_from(total).is_ok() && i64::try_from(ins).is_ok();
            }
            fits &= i64::try_from(total - ins).is_ok();
            let got = inv.totals();
            prop_assert_eq!(got.is_ok(), fits);
            if let Ok(t) = got {
                prop_assert_eq!(i128::from(t.total_cents), total);
                prop_assert_eq!(i128::from(t.patient_cents), total - ins);
            }
            let _ = inv.validate("2026-11-26");
            let _ = invoice_balance(Uuid::nil(), &inv, std::slice::from_ref(&inv), &[]);
        }

        #[test]
        fn line_rules(q in 0u32..=5, unit in -5i64..=5_000, share in -5i64..=30_000) {
            let inv = Invoice { lines: vec![line(q, unit, share)], ..sample_invoice() };
            let ok = q > 0 && unit >= 0 && share >= 0 && share <= i64::from(q) * unit;
            prop_assert_eq!(inv.validate("2026-11-26").is_ok(), ok);
        }

        #[test]
        fn balance_never_panics(amounts in proptest::collection::vec((any::<i64>(), any::<bool>()), 0..6)) {
            let id = Uuid::new_v4();
            let payments: Vec<Payment> = amounts.iter().map(|(a, refund)| Payment {
                amount_cents: *a,
                refund_of: refund.then(Uuid::new_v4),
                ..sample_payment(id)
            }).collect();
            let _ = invoice_balance(id, &sample_invoice(), &[], &payments);
        }

        #[test]
        fn payment_amount(a in any::<i64>()) {
            let p = Payment { amount_cents: a, ..sample_payment(Uuid::new_v4()) };
            prop_assert_eq!(p.validate("2026-11-26").is_ok(), a > 0);
        }
    }
}

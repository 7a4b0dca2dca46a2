//! Invoice rules HubSpot applies on its own: an invoice leaves `draft` only with an associated
//! contact and at least one line item; its amount billed is the sum of its line items and its
//! balance due that less what its associated payments brought; an open invoice whose balance is
//! paid becomes `paid`, and goes back to `open` when a payment is removed. Both amounts are
//! read-only. Refunds are not taken off the paid amount (HubSpot's handling of them is unknown).

use super::error::ApiError;
use super::format::{iso, parse_decimal};
use super::objects::ObjectType;
use super::store::{money_text as money, Change, ChangeKind, Portal, Source};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// The statuses that follow the balance.
const FOLLOWS_BALANCE: [&str; 2] = ["open", "paid"];
/// Payment statuses that bring no money.
const UNPAID_PAYMENT: [&str; 3] = ["failed", "canceled", "processing"];

impl Portal {
    /// Refuses a write that would take an invoice out of draft before it has a contact and a
    /// line item. `id` is the invoice (none when creating); `adding` the types it is about to
    /// be associated with in the same request.
    pub fn check_invoice_opening(
        &self,
        id: Option<u64>,
        values: &BTreeMap<String, String>,
        adding: &[ObjectType],
    ) -> Result<(), ApiError> {
        let Some(status) = values.get("hs_invoice_status") else {
            return Ok(());
        };
        if !FOLLOWS_BALANCE.contains(&status.as_str()) {
            return Ok(());
        }
        let current = id
            .and_then(|id| self.live(ObjectType::Invoices, id))
            .and_then(|r| r.properties.get("hs_invoice_status"))
            .map(String::as_str);
        if current.is_some_and(|c| FOLLOWS_BALANCE.contains(&c)) {
            return Ok(());
        }
        let has = |t: ObjectType| {
            adding.contains(&t)
                || id.is_some_and(|id| !self.associated(ObjectType::Invoices, id, t).is_empty())
        };
        if has(ObjectType::Contacts) && has(ObjectType::LineItems) {
            return Ok(());
        }
        Err(ApiError::validation(format!(
            "An invoice can be set to {status} only once it is associated with a contact and at least one line item."
        ))
        .with_sub_category("INVOICE_MISSING_REQUIRED_ASSOCIATIONS"))
    }

    /// The invoices whose amounts may move when record `id` of type `t` changes.
    fn invoices_around(&self, t: ObjectType, id: u64) -> Vec<u64> {
        match t {
            ObjectType::Invoices => vec![id],
            ObjectType::LineItems | ObjectType::CommercePayments => self
                .associations
                .get(&(t, id, ObjectType::Invoices))
                .map(|edges| edges.keys().copied().collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Recomputes the amounts and status of the invoices around a changed record.
    pub fn settle_invoices_around(
        &mut self,
        t: ObjectType,
        id: u64,
        now: OffsetDateTime,
        source: &Source,
    ) {
        if self.seeding {
            return;
        }
        for invoice in self.invoices_around(t, id) {
            self.settle_invoice(invoice, Some((now, source)));
        }
    }

    /// Every invoice recomputed without a change being recorded (seed loads).
    pub fn settle_all_invoices(&mut self) {
        let ids: Vec<u64> = self.table(ObjectType::Invoices).map(|r| r.id).collect();
        for id in ids {
            self.settle_invoice(id, None);
        }
    }

    /// `changed`: when and by whom, for a write (the invoice's modification date moves and a
    /// change is recorded); `None` for a seed load.
    fn settle_invoice(&mut self, id: u64, changed: Option<(OffsetDateTime, &Source)>) {
        let sum = |portal: &Portal, t: ObjectType, amount: &str, counts: &dyn Fn(&str) -> bool| {
            portal
                .associated(ObjectType::Invoices, id, t)
                .iter()
                .filter_map(|(other, _)| portal.live(t, *other))
                .filter(|r| counts(r.properties.get("hs_latest_status").map_or("", |s| s)))
                .filter_map(|r| r.properties.get(amount).and_then(|v| parse_decimal(v)))
                .sum::<Decimal>()
        };
        let billed = sum(self, ObjectType::LineItems, "amount", &|_| true);
        let paid = sum(
            self,
            ObjectType::CommercePayments,
            "hs_initial_amount",
            &|status| !UNPAID_PAYMENT.contains(&status),
        );
        let paid_on = self
            .associated(ObjectType::Invoices, id, ObjectType::CommercePayments)
            .iter()
            .filter_map(|(other, _)| self.live(ObjectType::CommercePayments, *other))
            .filter_map(|r| r.properties.get("hs_initiated_date").cloned())
            .max();
        let Some(record) = self.live(ObjectType::Invoices, id) else {
            return;
        };
        let balance = billed - paid;
        let mut wanted: BTreeMap<&str, Option<String>> = BTreeMap::new();
        wanted.insert("hs_amount_billed", Some(money(billed)));
        wanted.insert("hs_balance_due", Some(money(balance)));
        let status = record.properties.get("hs_invoice_status").cloned();
        if status
            .as_deref()
            .is_some_and(|s| FOLLOWS_BALANCE.contains(&s))
        {
            let settled = paid > Decimal::ZERO && balance <= Decimal::ZERO;
            wanted.insert(
                "hs_invoice_status",
                Some(if settled { "paid" } else { "open" }.to_owned()),
            );
            wanted.insert("hs_payment_date", if settled { paid_on } else { None });
        }
        let moves: Vec<(String, Option<String>)> = wanted
            .into_iter()
            .filter(|(name, value)| record.properties.get(*name) != value.as_ref())
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        if moves.is_empty() {
            return;
        }
        let portal_id = self.id;
        let Some(record) = self.get_mut(ObjectType::Invoices, id) else {
            return;
        };
        for (name, value) in &moves {
            match value {
                Some(v) => record.properties.insert(name.clone(), v.clone()),
                None => record.properties.remove(name),
            };
        }
        let Some((now, source)) = changed else {
            return;
        };
        record.updated_at = now;
        record.properties.insert(
            ObjectType::Invoices.last_modified_property().into(),
            iso(now),
        );
        for (name, value) in moves {
            self.changes.push(Change {
                portal_id,
                object_type: ObjectType::Invoices,
                object_id: id,
                kind: ChangeKind::PropertyChange {
                    name,
                    value: value.unwrap_or_default(),
                },
                at: now,
                source: source.clone(),
            });
        }
    }
}

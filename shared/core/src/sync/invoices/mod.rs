//! Applying one message of QBO invoice changes to HubSpot (S11, S16, S17, S19).
//!
//! Each invoice that passes the filters becomes a HubSpot invoice upserted by its QBO id, with
//! a line item per QBO line (upserted by the line's key) and, where the portal has payments, a
//! HubSpot payment per QBO payment applied to it (upserted by the payment's key), so HubSpot's
//! own balance and status follow QBO. When an invoice is first linked it is associated with the
//! contact of its customer and that contact's primary company, and with the deal it was made
//! from when one is recorded; later associations are the user's and are never undone. Each
//! payment is told once on the timeline by a note on the invoice and its deals: the note is
//! claimed in the ledger before it is made, and a claim left without its note (an answer lost,
//! a worker killed) is settled by looking for the note on the invoice before making it again.
//! Last, each deal of a written invoice takes its properties from its most recently updated
//! invoice.
//!
//! Voided invoices stay in HubSpot as `voided`; deleted ones are archived there with their line
//! items and payments, and their entry is left out for good, so nothing brings them back.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

mod to_qbo;

use super::engine::{Applied, Engine, SyncError};
use crate::connection::registry::Connection;
use crate::domain::{ObjectKind, Provider};
use crate::filters::{self, Subject};
use crate::hubspot::{BatchInput, CrmObject, HubSpotError, Portal, PropertyDefinition};
use crate::ledger::{LedgerEntry, LinkStatus, Stored};
use crate::mapping::invoices::{self as map, QboInvoice, QboPayment};
use crate::qbo::query::Query;
use crate::qbo::Company;
use crate::settings::ObjectSettings;
use crate::store::{keys, CasOutcome, Item, Table};

/// A property the integration makes for itself, from its description in `mapping::invoices`.
fn property_definition(
    (_, group, name, label, kind, unique): map::OwnProperty,
) -> PropertyDefinition {
    PropertyDefinition {
        name: name.into(),
        label: label.into(),
        property_type: kind.into(),
        field_type: if kind == "number" { "number" } else { "text" }.into(),
        group_name: group.into(),
        description: "Set by the QuickBooks integration".into(),
        has_unique_value: unique,
    }
}

/// One message of invoice changes being applied.
pub(super) struct InvoiceRun<'a> {
    pub(super) engine: &'a Engine,
    pub(super) connection: &'a Connection,
    pub(super) settings: &'a ObjectSettings,
    pub(super) qbo: Company<'a>,
    pub(super) hubspot: Portal<'a>,
    pub(super) now: i64,
}

/// A payment note's claim: made before the note, completed with its id.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct NoteClaim {
    note_id: Option<String>,
    claimed_at: i64,
}

/// An invoice to write, with what its write needs.
struct Planned {
    invoice: QboInvoice,
    previous: Option<Stored>,
    /// The HubSpot contact of its customer (invoices made in HubSpot may have none linked).
    contact: Option<String>,
    /// Made in HubSpot: its HubSpot line items and number are HubSpot's own.
    from_hubspot: bool,
    /// Its custom-field values for HubSpot (S4), by property.
    custom: BTreeMap<String, String>,
    /// Set once written.
    hubspot_id: Option<String>,
    /// Why it could not be written, when it could not.
    refused: Option<Refusal>,
}

struct Refusal {
    category: String,
    message: String,
    retryable: bool,
}

impl Refusal {
    fn from_hubspot(error: &HubSpotError, what: &str) -> Self {
        Self {
            category: error.category().to_owned(),
            message: format!("HubSpot refused the {what}: {error}"),
            retryable: error.class() == crate::ErrorClass::Retryable,
        }
    }
}

/// Records invoices own, as upserted: the ids written and the refusals, by plan.
#[derive(Default)]
struct Owned {
    written: HashMap<usize, Vec<String>>,
    refused: Vec<(usize, Refusal)>,
}

/// The values once each, in order.
fn distinct(values: impl IntoIterator<Item = String>) -> Vec<String> {
    values
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The entry an invoice ends with, and how it counts.
enum Outcome {
    /// With what of its custom fields went to HubSpot.
    Written(String),
    Failed(Refusal),
    Excluded(String),
}

impl InvoiceRun<'_> {
    fn realm(&self) -> &str {
        self.connection.realm_id.as_str()
    }

    pub(super) async fn apply(
        &self,
        from: Provider,
        records: &[Value],
    ) -> Result<Applied, SyncError> {
        match from {
            Provider::Qbo if self.settings.direction.qbo_to_hubspot() => {
                self.apply_from_qbo(records).await
            }
            Provider::HubSpot if self.settings.direction.hubspot_to_qbo() => {
                self.apply_from_hubspot(records).await
            }
            _ => Ok(Applied::default()),
        }
    }

    async fn apply_from_qbo(&self, records: &[Value]) -> Result<Applied, SyncError> {
        let mut incoming: Vec<(QboInvoice, &Value)> = records
            .iter()
            .filter_map(|raw| QboInvoice::read(raw).map(|i| (i, raw)))
            .collect();
        // The newest version of each invoice only (a deletion outranks every version).
        incoming.sort_by(|(a, _), (b, _)| {
            a.id.cmp(&b.id)
                .then(b.deleted.cmp(&a.deleted))
                .then(b.sync_token.cmp(&a.sync_token))
        });
        incoming.dedup_by(|(a, _), (b, _)| a.id == b.id);
        if incoming.is_empty() {
            return Ok(Applied::default());
        }
        let ids: Vec<String> = incoming.iter().map(|(i, _)| i.id.clone()).collect();
        let entries = self
            .engine
            .ledger
            .find(
                &self.connection.id,
                ObjectKind::Invoice,
                Provider::Qbo,
                &ids,
                self.now,
            )
            .await?;
        let customers: Vec<String> =
            distinct(incoming.iter().filter_map(|(i, _)| i.customer_id.clone()));
        let contacts = self
            .linked(ObjectKind::Contact, Provider::Qbo, &customers)
            .await?;

        let mut applied = Applied::default();
        let mut outcomes: Vec<(QboInvoice, Option<Stored>, Option<String>, Outcome)> = Vec::new();
        let mut planned: Vec<Planned> = Vec::new();
        for (invoice, raw) in incoming {
            let previous = entries.get(&invoice.id).cloned();
            let linked_id = previous.as_ref().and_then(|s| s.entry.hubspot.id.clone());
            if previous.as_ref().is_some_and(|s| s.entry.qbo.gone) {
                continue; // deleted in QBO: never brought back
            }
            if invoice.deleted {
                if let Some(hubspot_id) = linked_id {
                    self.archive_invoice(&hubspot_id).await?;
                    let reason =
                        "deleted in QuickBooks; its HubSpot invoice was archived".to_owned();
                    outcomes.push((
                        invoice,
                        previous,
                        Some(hubspot_id),
                        Outcome::Excluded(reason),
                    ));
                }
                continue;
            }
            let from_hubspot = previous
                .as_ref()
                .is_some_and(|s| s.entry.first_side() == Provider::HubSpot);
            let custom = if from_hubspot {
                BTreeMap::new()
            } else {
                map::custom_values(raw, &self.settings.custom_mappings)
            };
            // Invoices made in QBO keep what of their custom fields went to HubSpot: a mapping
            // added later makes them differ, and they are written again.
            let unchanged = previous.as_ref().is_some_and(|s| {
                s.entry.status == LinkStatus::Synced
                    && s.entry.qbo.version == invoice.sync_token
                    && (from_hubspot
                        || s.entry.qbo.fingerprint.as_deref().unwrap_or_default()
                            == map::custom_fingerprint(&custom))
            });
            if unchanged {
                applied.unchanged += 1;
                continue;
            }
            let contact = invoice
                .customer_id
                .as_ref()
                .and_then(|c| contacts.get(c))
                .cloned();
            if from_hubspot {
                // Made in HubSpot: only edits that keep its shape sync back (S13).
                let entry = previous.as_ref().map(|s| &s.entry);
                let shape = entry
                    .and_then(|e| e.qbo.fingerprint.as_deref())
                    .and_then(map::InvoiceShape::parse);
                let payments = entry.map(|e| e.payments.clone()).unwrap_or_default();
                let forbidden = shape
                    .map(|shape| map::forbidden_edits(&shape, &payments, &invoice))
                    .unwrap_or_default();
                if !forbidden.is_empty() {
                    let refusal = Refusal {
                        category: "edited_in_quickbooks".into(),
                        message: format!(
                            "the invoice was made in HubSpot and edited in QuickBooks in a way that cannot sync back: {}; undo that edit in QuickBooks, or make the change in HubSpot",
                            forbidden.join(", ")
                        ),
                        retryable: false,
                    };
                    outcomes.push((invoice, previous, linked_id, Outcome::Failed(refusal)));
                    continue;
                }
                planned.push(Planned {
                    invoice,
                    previous,
                    contact,
                    from_hubspot: true,
                    custom,
                    hubspot_id: linked_id,
                    refused: None,
                });
                continue;
            }
            if let Err(excluded) =
                filters::evaluate(&self.settings.filters.qbo_to_hubspot, Subject::Qbo(raw))
            {
                outcomes.push((
                    invoice,
                    previous,
                    linked_id,
                    Outcome::Excluded(excluded.explanation()),
                ));
                continue;
            }
            let Some(contact) = contact else {
                let customer = invoice
                    .customer_name
                    .clone()
                    .or(invoice.customer_id.clone())
                    .unwrap_or_else(|| "(none)".into());
                let refusal = Refusal {
                    category: "customer_not_synced".into(),
                    message: format!(
                        "its customer {customer} is not synced to a HubSpot contact yet; it is tried again once the customer is"
                    ),
                    retryable: true,
                };
                outcomes.push((invoice, previous, linked_id, Outcome::Failed(refusal)));
                continue;
            };
            planned.push(Planned {
                invoice,
                previous,
                contact: Some(contact),
                from_hubspot: false,
                custom,
                hubspot_id: linked_id,
                refused: None,
            });
        }

        if !planned.is_empty() {
            self.ensure_own_properties().await?;
            self.write(&mut planned).await?;
        }
        for plan in planned {
            let outcome = match plan.refused {
                Some(refusal) => Outcome::Failed(refusal),
                None => Outcome::Written(map::custom_fingerprint(&plan.custom)),
            };
            outcomes.push((plan.invoice, plan.previous, plan.hubspot_id, outcome));
        }
        self.commit(outcomes, &mut applied).await?;
        Ok(applied)
    }

    /// The ids on the other side of the records of `side` linked to these (contacts of
    /// customers, products of items, customers of contacts), by id; gone ones left out.
    async fn linked(
        &self,
        object: ObjectKind,
        side: Provider,
        ids: &[String],
    ) -> Result<HashMap<String, String>, SyncError> {
        Ok(self
            .engine
            .ledger
            .linked(&self.connection.id, object, side, ids, self.now)
            .await?)
    }

    /// The first record of `to_type` associated with each of these invoices, by invoice.
    async fn first_associated(
        &self,
        to_type: &str,
        invoices: &[String],
    ) -> Result<HashMap<String, String>, SyncError> {
        Ok(self
            .hubspot
            .associations("invoices", to_type, invoices)
            .await?
            .into_iter()
            .filter_map(|(invoice, ids)| ids.into_iter().next().map(|id| (invoice, id)))
            .collect())
    }

    /// A failure or an exclusion recorded on an entry, and counted.
    fn record_refusal(
        &self,
        entry: &mut LedgerEntry,
        from: Provider,
        outcome: Result<Refusal, String>,
        applied: &mut Applied,
    ) {
        match outcome {
            Ok(refusal) => {
                entry.fail(
                    from,
                    &refusal.category,
                    refusal.message,
                    refusal.retryable,
                    self.now,
                );
                applied.failed += 1;
            }
            Err(reason) => {
                entry.mark_excluded(reason.clone());
                entry.record(self.now, from, "excluded", reason);
                applied.excluded += 1;
            }
        }
    }

    /// Updates HubSpot invoices by id; an update HubSpot refuses fails its plan.
    async fn update_invoices(
        &self,
        inputs: &[BatchInput],
        plans: &mut [&mut Planned],
        what: &str,
    ) -> Result<(), SyncError> {
        for chunk in inputs.chunks(crate::hubspot::MAX_BATCH_INPUTS) {
            let outcome = self.hubspot.batch_update("invoices", chunk).await?;
            for error in outcome.errors {
                for plan in plans.iter_mut() {
                    let concerned = plan
                        .hubspot_id
                        .as_ref()
                        .is_some_and(|id| error.ids.contains(id));
                    if concerned && plan.refused.is_none() {
                        plan.refused = Some(Refusal {
                            category: error.category.to_lowercase(),
                            message: format!("HubSpot refused {what}: {}", error.message),
                            retryable: false,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    async fn ensure_own_properties(&self) -> Result<(), SyncError> {
        let portal = self.connection.portal_id.to_string();
        if self.engine.is_ensured(&portal, "invoices") {
            return Ok(());
        }
        for own in map::OWN_PROPERTIES {
            self.hubspot
                .ensure_property(own.0, &property_definition(own))
                .await?;
        }
        // Payments exist only in portals with payments: without them, none are written.
        if let Err(error) = self
            .hubspot
            .ensure_property(
                map::PAYMENT_PROPERTY.0,
                &property_definition(map::PAYMENT_PROPERTY),
            )
            .await
        {
            tracing::info!(portal = %self.connection.portal_id, %error,
                "the portal has no payments: QuickBooks payments are shown as notes only");
        }
        self.engine.mark_ensured(&portal, "invoices");
        Ok(())
    }

    /// Writes the planned invoices: the invoices, their line items, associations, payments,
    /// status, notes and deal properties. Refusals are kept on each plan.
    async fn write(&self, planned: &mut [Planned]) -> Result<(), SyncError> {
        self.upsert_invoices(planned).await?;
        fn written(p: &&Planned) -> bool {
            p.refused.is_none() && p.hubspot_id.is_some()
        }

        // Associations made only when the invoice is first linked.
        let first: Vec<(String, String)> = planned
            .iter()
            .filter(written)
            .filter(|p| {
                p.previous
                    .as_ref()
                    .and_then(|s| s.entry.hubspot.id.as_ref())
                    .is_none()
            })
            .filter_map(|p| Some((p.hubspot_id.clone()?, p.contact.clone()?)))
            .collect();
        self.associate_first(&first, planned).await?;

        let items: Vec<String> = distinct(planned.iter().flat_map(|p| p.invoice.item_ids()));
        let products = self
            .linked(ObjectKind::Product, Provider::Qbo, &items)
            .await?;
        self.write_lines(planned, &products).await?;
        let payments = self.read_payments(planned).await?;
        self.write_payments(planned, &payments).await?;
        self.write_status(planned).await?;
        let deals = self
            .hubspot
            .associations(
                "invoices",
                "deals",
                &planned
                    .iter()
                    .filter(written)
                    .filter_map(|p| p.hubspot_id.clone())
                    .collect::<Vec<_>>(),
            )
            .await?;
        self.write_notes(planned, &payments, &deals).await?;
        self.write_deal_properties(&deals).await
    }

    async fn upsert_invoices(&self, planned: &mut [Planned]) -> Result<(), SyncError> {
        let (mut made_here, made_in_qbo): (Vec<&mut Planned>, Vec<&mut Planned>) =
            planned.iter_mut().partition(|p| p.from_hubspot);
        let inputs: Vec<BatchInput> = made_in_qbo
            .iter()
            .map(|p| {
                let mut properties = map::invoice_properties(&p.invoice);
                properties.extend(p.custom.clone());
                BatchInput {
                    id: Some(p.invoice.id.clone()),
                    id_property: Some(map::QBO_ID_PROPERTY.into()),
                    properties,
                    object_write_trace_id: Some(p.invoice.id.clone()),
                }
            })
            .collect();
        let outcomes = self.upsert_each("invoices", &inputs).await?;
        for (plan, outcome) in made_in_qbo.into_iter().zip(outcomes) {
            match outcome {
                Ok(record) => plan.hubspot_id = Some(record.id),
                Err(refusal) => plan.refused = Some(refusal),
            }
        }
        // Made in HubSpot: updated by id, keeping HubSpot's own number.
        let inputs: Vec<BatchInput> = made_here
            .iter()
            .filter_map(|p| {
                let mut properties = map::invoice_properties(&p.invoice);
                properties.remove("hs_number");
                Some(BatchInput {
                    id: Some(p.hubspot_id.clone()?),
                    id_property: None,
                    properties,
                    object_write_trace_id: None,
                })
            })
            .collect();
        self.update_invoices(&inputs, &mut made_here, "the invoice")
            .await
    }

    /// Upserts the records invoices own (line items, payments) by their key property; each
    /// input names the plan it belongs to. Answers what was written and what was refused, by plan.
    async fn upsert_owned(
        &self,
        object_type: &str,
        key_property: &str,
        inputs: Vec<(usize, String, BTreeMap<String, String>)>,
    ) -> Result<Owned, SyncError> {
        let (owners, batch): (Vec<usize>, Vec<BatchInput>) = inputs
            .into_iter()
            .map(|(index, key, properties)| {
                (
                    index,
                    BatchInput {
                        id: Some(key.clone()),
                        id_property: Some(key_property.to_owned()),
                        properties,
                        object_write_trace_id: Some(key),
                    },
                )
            })
            .unzip();
        let results = self.upsert_each(object_type, &batch).await?;
        let mut owned = Owned::default();
        for (index, result) in owners.into_iter().zip(results) {
            match result {
                Ok(record) => owned.written.entry(index).or_default().push(record.id),
                Err(refusal) => owned.refused.push((index, refusal)),
            }
        }
        Ok(owned)
    }

    /// Upserts in batches; a batch refused as a whole is sent input by input, so only the
    /// refused ones fail. Answers each input's record or refusal, in order.
    async fn upsert_each(
        &self,
        object_type: &str,
        inputs: &[BatchInput],
    ) -> Result<Vec<Result<CrmObject, Refusal>>, SyncError> {
        let mut out = Vec::with_capacity(inputs.len());
        for chunk in inputs.chunks(crate::hubspot::MAX_BATCH_INPUTS) {
            match self.hubspot.batch_upsert(object_type, chunk).await {
                Ok(outcome) => {
                    for input in chunk {
                        let key = input.id.as_deref().unwrap_or_default();
                        let id_property = input.id_property.as_deref().unwrap_or_default();
                        let found = outcome
                            .results
                            .iter()
                            .find(|r| r.property(id_property) == Some(key))
                            .cloned();
                        out.push(match found {
                            Some(record) => Ok(record),
                            None => {
                                let error = outcome.errors.iter().find(|e| {
                                    e.trace_id.as_deref() == input.object_write_trace_id.as_deref()
                                        || e.ids.iter().any(|i| i == key)
                                });
                                Err(Refusal {
                                    category: error
                                        .map(|e| e.category.to_lowercase())
                                        .unwrap_or_else(|| "hubspot_validation".into()),
                                    message: format!(
                                        "HubSpot refused the {object_type} record: {}",
                                        error.map_or("no answer for it", |e| e.message.as_str())
                                    ),
                                    retryable: false,
                                })
                            }
                        });
                    }
                }
                Err(error) if error.class() == crate::ErrorClass::Retryable => {
                    return Err(error.into())
                }
                // A scope the portal did not grant refuses every input alike.
                Err(error @ HubSpotError::Api { status: 403, .. }) => return Err(error.into()),
                Err(error) if chunk.len() == 1 => {
                    out.push(Err(Refusal::from_hubspot(&error, object_type)));
                }
                Err(_) => {
                    for input in chunk {
                        let one = std::slice::from_ref(input);
                        match self.hubspot.batch_upsert(object_type, one).await {
                            Ok(outcome) => match outcome.results.into_iter().next() {
                                Some(record) => out.push(Ok(record)),
                                None => out.push(Err(Refusal {
                                    category: "hubspot_validation".into(),
                                    message: format!(
                                        "HubSpot refused the {object_type} record: {}",
                                        outcome
                                            .errors
                                            .first()
                                            .map_or("no answer for it", |e| e.message.as_str())
                                    ),
                                    retryable: false,
                                })),
                            },
                            Err(error) if error.class() == crate::ErrorClass::Retryable => {
                                return Err(error.into())
                            }
                            Err(error) => out.push(Err(Refusal::from_hubspot(&error, object_type))),
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// The contact, its primary company and the recorded deal of newly linked invoices.
    async fn associate_first(
        &self,
        first: &[(String, String)],
        planned: &mut [Planned],
    ) -> Result<(), SyncError> {
        if first.is_empty() {
            return Ok(());
        }
        self.associate("invoices", "contacts", first, planned)
            .await?;
        let contact_ids: Vec<String> = distinct(first.iter().map(|(_, c)| c.clone()));
        let mut companies = Vec::new();
        for chunk in contact_ids.chunks(crate::hubspot::MAX_BATCH_INPUTS) {
            let read = self
                .hubspot
                .batch_read("contacts", chunk, &["associatedcompanyid"], None)
                .await?;
            for contact in read.results {
                if let Some(company) = contact.property("associatedcompanyid") {
                    for (invoice, _) in first.iter().filter(|(_, c)| *c == contact.id) {
                        companies.push((invoice.clone(), company.to_owned()));
                    }
                }
            }
        }
        self.associate("invoices", "companies", &companies, planned)
            .await?;
        let hints: Vec<(String, String)> = self.recorded_deals(first, planned).await?;
        self.associate("invoices", "deals", &hints, planned).await
    }

    /// Deals recorded for invoices made from them (`keys::ledger::invoice_deal`).
    async fn recorded_deals(
        &self,
        first: &[(String, String)],
        planned: &[Planned],
    ) -> Result<Vec<(String, String)>, SyncError> {
        #[derive(Deserialize)]
        struct DealHint {
            deal_id: String,
        }
        let wanted: Vec<(&str, &str)> = planned
            .iter()
            .filter_map(|p| {
                let hubspot = p.hubspot_id.as_deref()?;
                first
                    .iter()
                    .any(|(i, _)| i == hubspot)
                    .then_some((p.invoice.id.as_str(), hubspot))
            })
            .collect();
        let keys: Vec<_> = wanted
            .iter()
            .map(|(qbo, _)| keys::ledger::invoice_deal(&self.connection.id, qbo))
            .collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let items = self
            .engine
            .store
            .get_many(Table::Ledger, &keys, self.now)
            .await?;
        let mut hints = Vec::new();
        for item in items {
            let Ok(hint) = item.to_value::<DealHint>() else {
                continue;
            };
            if let Some((_, hubspot)) = wanted
                .iter()
                .find(|(qbo, _)| keys::ledger::invoice_deal(&self.connection.id, qbo) == item.key)
            {
                hints.push(((*hubspot).to_owned(), hint.deal_id));
            }
        }
        Ok(hints)
    }

    /// Associates pairs; a pair HubSpot refuses fails its invoice (found by the `from` id).
    async fn associate(
        &self,
        from_type: &str,
        to_type: &str,
        pairs: &[(String, String)],
        planned: &mut [Planned],
    ) -> Result<(), SyncError> {
        if pairs.is_empty() {
            return Ok(());
        }
        let errors = self
            .hubspot
            .associate_default(from_type, to_type, pairs)
            .await?;
        for error in errors {
            for plan in planned.iter_mut() {
                let Some(id) = plan.hubspot_id.clone() else {
                    continue;
                };
                let concerned = error.ids.contains(&id)
                    || pairs.iter().any(|(f, t)| {
                        (*f == id || *t == id) && error.ids.iter().any(|i| i == f || i == t)
                    });
                if concerned && plan.refused.is_none() {
                    plan.refused = Some(Refusal {
                        category: error.category.to_lowercase(),
                        message: format!(
                            "HubSpot refused to associate the invoice with its {to_type}: {}",
                            error.message
                        ),
                        retryable: false,
                    });
                }
            }
        }
        Ok(())
    }

    /// Line items: one per QBO line, upserted by its key and associated with the invoice;
    /// those of lines no longer on the invoice are archived.
    async fn write_lines(
        &self,
        planned: &mut [Planned],
        products: &HashMap<String, String>,
    ) -> Result<(), SyncError> {
        let mut inputs = Vec::new();
        for (index, plan) in planned.iter().enumerate() {
            // A HubSpot invoice's own line items are HubSpot's.
            if plan.refused.is_some() || plan.hubspot_id.is_none() || plan.from_hubspot {
                continue;
            }
            for line in map::line_items(self.realm(), &plan.invoice, products) {
                inputs.push((index, line.key, line.properties));
            }
        }
        let owned = self
            .upsert_owned("line_items", map::QBO_LINE_PROPERTY, inputs)
            .await?;
        let mut pairs = Vec::new();
        for (index, refusal) in owned.refused {
            let plan = &mut planned[index];
            if plan.refused.is_none() {
                plan.refused = Some(Refusal {
                    message: format!("a line of the invoice: {}", refusal.message),
                    ..refusal
                });
            }
        }
        for (index, lines) in &owned.written {
            if let Some(invoice) = &planned[*index].hubspot_id {
                pairs.extend(lines.iter().map(|line| (invoice.clone(), line.clone())));
            }
        }
        let current = owned.written;
        self.associate("invoices", "line_items", &pairs, planned)
            .await?;
        self.archive_stale(planned, "line_items", map::QBO_LINE_PROPERTY, &current)
            .await
    }

    /// Archives the records of `object_type` associated with updated invoices that the
    /// integration made (their key property starts with this company's realm) and that are no
    /// longer among `current`.
    async fn archive_stale(
        &self,
        planned: &[Planned],
        object_type: &str,
        key_property: &str,
        current: &HashMap<usize, Vec<String>>,
    ) -> Result<(), SyncError> {
        let updated: Vec<(usize, String)> = planned
            .iter()
            .enumerate()
            .filter(|(_, p)| p.refused.is_none())
            .filter(|(_, p)| {
                p.previous
                    .as_ref()
                    .is_some_and(|s| s.entry.hubspot.id.is_some())
            })
            .filter_map(|(i, p)| Some((i, p.hubspot_id.clone()?)))
            .collect();
        if updated.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = updated.iter().map(|(_, id)| id.clone()).collect();
        let associated = self
            .hubspot
            .associations("invoices", object_type, &ids)
            .await?;
        let mut candidates = Vec::new();
        for (index, invoice) in &updated {
            let keep = current.get(index).cloned().unwrap_or_default();
            for id in associated.get(invoice).into_iter().flatten() {
                if !keep.contains(id) {
                    candidates.push(id.clone());
                }
            }
        }
        self.archive_ours(object_type, key_property, &candidates)
            .await
    }

    /// Archives those of `ids` whose key property the integration set for this company.
    async fn archive_ours(
        &self,
        object_type: &str,
        key_property: &str,
        ids: &[String],
    ) -> Result<(), SyncError> {
        let prefix = format!("{}-", self.realm());
        let mut ours = Vec::new();
        for chunk in ids.chunks(crate::hubspot::MAX_BATCH_INPUTS) {
            let read = self
                .hubspot
                .batch_read(object_type, chunk, &[key_property], None)
                .await?;
            ours.extend(
                read.results
                    .into_iter()
                    .filter(|r| {
                        r.property(key_property)
                            .is_some_and(|k| k.starts_with(&prefix))
                    })
                    .map(|r| r.id),
            );
        }
        if !ours.is_empty() {
            self.hubspot.batch_archive(object_type, &ours).await?;
        }
        Ok(())
    }

    /// The QBO payments applied to the planned invoices, by id.
    async fn read_payments(
        &self,
        planned: &[Planned],
    ) -> Result<HashMap<String, QboPayment>, SyncError> {
        let ids: Vec<String> = distinct(
            planned
                .iter()
                .filter(|p| p.refused.is_none())
                .flat_map(|p| p.invoice.payment_ids.clone()),
        );
        let mut payments = HashMap::new();
        for chunk in ids.chunks(100) {
            let query = Query::select("Payment").any_of("Id", chunk.iter().map(String::as_str));
            for row in self.qbo.query_all_values(&query).await? {
                if let Some(payment) = QboPayment::read(&row) {
                    payments.insert(payment.id.clone(), payment);
                }
            }
        }
        Ok(payments)
    }

    /// HubSpot payments mirroring the QBO payments of each invoice (where the portal has
    /// payments), associated with it; those of payments no longer applied are archived.
    async fn write_payments(
        &self,
        planned: &mut [Planned],
        payments: &HashMap<String, QboPayment>,
    ) -> Result<(), SyncError> {
        let mut inputs = Vec::new();
        for (index, plan) in planned.iter().enumerate() {
            if plan.refused.is_some() || plan.hubspot_id.is_none() {
                continue;
            }
            for id in &plan.invoice.payment_ids {
                let Some(payment) = payments.get(id) else {
                    continue;
                };
                if let Some(properties) =
                    map::payment_properties(self.realm(), payment, &plan.invoice.id)
                {
                    let key = map::payment_key(self.realm(), id, &plan.invoice.id);
                    inputs.push((index, key, properties));
                }
            }
        }
        let owned = match self
            .upsert_owned("commerce_payments", map::QBO_PAYMENT_PROPERTY, inputs)
            .await
        {
            Ok(owned) => owned,
            Err(SyncError::HubSpot(HubSpotError::Api { status: 403, .. })) => return Ok(()),
            Err(error) => return Err(error),
        };
        // A portal without payments refuses each of them: the notes still tell them.
        for (_, refusal) in owned.refused {
            tracing::info!(category = %refusal.category, "a QuickBooks payment was not recorded as a HubSpot payment: {}", refusal.message);
        }
        let mut pairs = Vec::new();
        for (index, written) in &owned.written {
            if let Some(invoice) = &planned[*index].hubspot_id {
                pairs.extend(written.iter().map(|p| (p.clone(), invoice.clone())));
            }
        }
        let current = owned.written;
        if !pairs.is_empty() {
            let errors = self
                .hubspot
                .associate_default("commerce_payments", "invoices", &pairs)
                .await?;
            for error in errors {
                tracing::warn!(category = %error.category, "a HubSpot payment was not associated with its invoice: {}", error.message);
            }
        }
        match self
            .archive_stale(
                planned,
                "commerce_payments",
                map::QBO_PAYMENT_PROPERTY,
                &current,
            )
            .await
        {
            Err(SyncError::HubSpot(HubSpotError::Api { status: 403, .. })) => Ok(()),
            other => other,
        }
    }

    /// Each written invoice's status: open (HubSpot moves it to paid once its payments cover
    /// it), or voided.
    async fn write_status(&self, planned: &mut [Planned]) -> Result<(), SyncError> {
        let inputs: Vec<BatchInput> = planned
            .iter()
            .filter(|p| p.refused.is_none())
            .filter_map(|p| {
                Some(BatchInput {
                    id: Some(p.hubspot_id.clone()?),
                    id_property: None,
                    properties: BTreeMap::from([(
                        "hs_invoice_status".to_owned(),
                        map::hubspot_status(&p.invoice).to_owned(),
                    )]),
                    object_write_trace_id: None,
                })
            })
            .collect();
        let mut plans: Vec<&mut Planned> = planned.iter_mut().collect();
        self.update_invoices(&inputs, &mut plans, "the invoice's status")
            .await
    }

    /// HubSpot's default association type from one object to another, read once per process.
    async fn association_type(
        &self,
        from: &'static str,
        to: &'static str,
    ) -> Result<Option<u32>, SyncError> {
        if let Some(id) = self
            .engine
            .association_types
            .lock()
            .ok()
            .and_then(|known| known.get(&(from, to)).copied())
        {
            return Ok(Some(id));
        }
        let found = self.hubspot.default_association_type(from, to).await?;
        if let (Some(id), Ok(mut known)) = (found, self.engine.association_types.lock()) {
            known.insert((from, to), id);
        }
        Ok(found)
    }

    /// One timeline note per QBO payment on each written invoice, on the invoice, its deals
    /// and its contact.
    async fn write_notes(
        &self,
        planned: &[Planned],
        payments: &HashMap<String, QboPayment>,
        deals: &HashMap<String, Vec<String>>,
    ) -> Result<(), SyncError> {
        // (claim key, payment, plan) of every note there should be.
        let mut wanted = Vec::new();
        for plan in planned.iter().filter(|p| p.refused.is_none()) {
            for id in &plan.invoice.payment_ids {
                if let Some(payment) = payments.get(id) {
                    if payment.applied.contains_key(&plan.invoice.id) {
                        let key = map::payment_key(self.realm(), id, &plan.invoice.id);
                        wanted.push((key, payment, plan));
                    }
                }
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let store = &self.engine.store;
        let claim_keys: Vec<_> = wanted
            .iter()
            .map(|(key, _, _)| keys::ledger::payment_note(&self.connection.id, key))
            .collect();
        let claims: HashMap<_, _> = store
            .get_many(Table::Ledger, &claim_keys, self.now)
            .await?
            .into_iter()
            .map(|item| (item.key.clone(), item))
            .collect();
        // Notes to make: (claim key, claim version, payment, plan).
        let mut to_make = Vec::new();
        for ((key, payment, plan), claim_key) in wanted.into_iter().zip(claim_keys) {
            let (version, unsettled) = match claims.get(&claim_key) {
                Some(item) => match item.to_value::<NoteClaim>() {
                    Ok(NoteClaim {
                        note_id: Some(_), ..
                    }) => continue,
                    _ => (Some(item.version), true),
                },
                None => (None, false),
            };
            let hubspot_id = plan.hubspot_id.clone().unwrap_or_default();
            if unsettled {
                // A claim without its note: the note may exist; look for it on the invoice.
                if let Some(note) = self.find_note(&hubspot_id, &payment.id).await? {
                    self.complete_claim(claim_key, version, &note).await?;
                    continue;
                }
            }
            let claim = Item::from_value(
                claim_key.clone(),
                &NoteClaim {
                    note_id: None,
                    claimed_at: self.now,
                },
            )?;
            match store.put_versioned(Table::Ledger, claim, version).await? {
                CasOutcome::Written { version } => {
                    to_make.push((key, claim_key, version, payment, plan))
                }
                // Someone else claimed it meanwhile: theirs to make.
                CasOutcome::VersionConflict => continue,
            }
        }
        if to_make.is_empty() {
            return Ok(());
        }
        let to_invoice = self.association_type("notes", "invoices").await?;
        let to_deal = self.association_type("notes", "deals").await?;
        let to_contact = self.association_type("notes", "contacts").await?;
        let spec = |type_id: Option<u32>, id: &str| {
            type_id.map(|t| {
                json!({"to": {"id": id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": t}]})
            })
        };
        let inputs: Vec<Value> = to_make
            .iter()
            .map(|(key, _, _, payment, plan)| {
                let invoice = plan.hubspot_id.as_deref().unwrap_or_default();
                let mut associations: Vec<Value> = Vec::new();
                associations.extend(spec(to_invoice, invoice));
                if let Some(contact) = &plan.contact {
                    associations.extend(spec(to_contact, contact));
                }
                for deal in deals.get(invoice).into_iter().flatten() {
                    associations.extend(spec(to_deal, deal));
                }
                let at = payment
                    .date
                    .as_deref()
                    .map(|d| format!("{d}T12:00:00Z"))
                    .unwrap_or_else(|| self.now_iso());
                json!({
                    "properties": {
                        "hs_timestamp": at,
                        "hs_note_body": map::payment_note(payment, &plan.invoice).unwrap_or_default(),
                    },
                    "associations": associations,
                    "objectWriteTraceId": key,
                })
            })
            .collect();
        for (chunk, made) in inputs
            .chunks(crate::hubspot::MAX_BATCH_INPUTS)
            .zip(to_make.chunks(crate::hubspot::MAX_BATCH_INPUTS))
        {
            let outcome = self
                .hubspot
                .batch_create_with("notes", chunk.to_vec())
                .await?;
            for result in outcome.results {
                let Some((_, claim_key, version, _, _)) = made
                    .iter()
                    .find(|(key, ..)| result.object_write_trace_id.as_deref() == Some(key))
                else {
                    continue;
                };
                self.complete_claim(claim_key.clone(), Some(*version), &result.id)
                    .await?;
            }
            for error in outcome.errors {
                tracing::warn!(category = %error.category, "a payment note was refused: {}", error.message);
            }
        }
        Ok(())
    }

    fn now_iso(&self) -> String {
        time::OffsetDateTime::from_unix_timestamp(self.now)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default()
    }

    /// The note of a payment already on the invoice, if any (associations answer at once,
    /// unlike search).
    async fn find_note(&self, invoice: &str, payment: &str) -> Result<Option<String>, SyncError> {
        let notes = self
            .hubspot
            .associations("invoices", "notes", &[invoice.to_owned()])
            .await?;
        let ids = notes.get(invoice).cloned().unwrap_or_default();
        let marker = map::payment_note_marker(payment);
        for chunk in ids.chunks(crate::hubspot::MAX_BATCH_INPUTS) {
            let read = self
                .hubspot
                .batch_read("notes", chunk, &["hs_note_body"], None)
                .await?;
            if let Some(note) = read.results.into_iter().find(|n| {
                n.property("hs_note_body")
                    .is_some_and(|b| b.contains(&marker))
            }) {
                return Ok(Some(note.id));
            }
        }
        Ok(None)
    }

    async fn complete_claim(
        &self,
        key: crate::store::ItemKey,
        version: Option<u64>,
        note: &str,
    ) -> Result<(), SyncError> {
        let item = Item::from_value(
            key,
            &NoteClaim {
                note_id: Some(note.to_owned()),
                claimed_at: self.now,
            },
        )?;
        // A conflict means another worker completed it: the note is recorded either way.
        self.engine
            .store
            .put_versioned(Table::Ledger, item, version)
            .await?;
        Ok(())
    }

    /// Each deal takes its invoice properties from its most recently updated invoice.
    async fn write_deal_properties(
        &self,
        deals_of_invoices: &HashMap<String, Vec<String>>,
    ) -> Result<(), SyncError> {
        let deals: Vec<String> = distinct(deals_of_invoices.values().flatten().cloned());
        if deals.is_empty() {
            return Ok(());
        }
        let invoices_of_deals = self
            .hubspot
            .associations("deals", "invoices", &deals)
            .await?;
        let invoice_ids: Vec<String> = distinct(invoices_of_deals.values().flatten().cloned());
        let mut invoices: HashMap<String, CrmObject> = HashMap::new();
        for chunk in invoice_ids.chunks(crate::hubspot::MAX_BATCH_INPUTS) {
            let read = self
                .hubspot
                .batch_read("invoices", chunk, &map::INVOICE_PROPERTIES, None)
                .await?;
            invoices.extend(read.results.into_iter().map(|r| (r.id.clone(), r)));
        }
        let mut inputs = Vec::new();
        for deal in &deals {
            let latest = invoices_of_deals
                .get(deal)
                .into_iter()
                .flatten()
                .filter_map(|id| invoices.get(id))
                .max_by_key(|r| {
                    (
                        r.updated_at
                            .clone()
                            .or_else(|| r.property("hs_lastmodifieddate").map(str::to_owned))
                            .unwrap_or_default(),
                        r.id.parse::<u64>().unwrap_or(0),
                    )
                });
            if let Some(latest) = latest {
                inputs.push(BatchInput {
                    id: Some(deal.clone()),
                    id_property: None,
                    properties: map::deal_properties(&latest.properties),
                    object_write_trace_id: None,
                });
            }
        }
        for chunk in inputs.chunks(crate::hubspot::MAX_BATCH_INPUTS) {
            let outcome = self.hubspot.batch_update("deals", chunk).await?;
            for error in outcome.errors {
                tracing::warn!(category = %error.category, "a deal's invoice properties were refused: {}", error.message);
            }
        }
        Ok(())
    }

    /// Archives a HubSpot invoice and what the integration made for it.
    async fn archive_invoice(&self, hubspot_id: &str) -> Result<(), SyncError> {
        let ids = [hubspot_id.to_owned()];
        for (object_type, key_property) in [
            ("line_items", map::QBO_LINE_PROPERTY),
            ("commerce_payments", map::QBO_PAYMENT_PROPERTY),
        ] {
            let associated = match self
                .hubspot
                .associations("invoices", object_type, &ids)
                .await
            {
                Ok(found) => found,
                Err(HubSpotError::Api { status: 403, .. }) => continue,
                Err(error) => return Err(error.into()),
            };
            let children: Vec<String> = associated.into_values().flatten().collect();
            self.archive_ours(object_type, key_property, &children)
                .await?;
        }
        self.hubspot.batch_archive("invoices", &ids).await?;
        Ok(())
    }

    /// Records every invoice's outcome in the ledger, in one commit.
    async fn commit(
        &self,
        outcomes: Vec<(QboInvoice, Option<Stored>, Option<String>, Outcome)>,
        applied: &mut Applied,
    ) -> Result<(), SyncError> {
        let mut groups = Vec::new();
        let mut seen = HashSet::new();
        for (invoice, previous, hubspot_id, outcome) in outcomes {
            if !seen.insert(invoice.id.clone()) {
                continue;
            }
            let mut entry = previous
                .as_ref()
                .map(|s| s.entry.clone())
                .unwrap_or_else(|| {
                    LedgerEntry::new(
                        self.connection.id.clone(),
                        ObjectKind::Invoice,
                        Provider::Qbo,
                        &invoice.id,
                        self.now,
                    )
                });
            let was_linked = entry.hubspot.id.is_some();
            match outcome {
                Outcome::Written(custom) => {
                    entry.hubspot.id = hubspot_id.clone();
                    entry.hubspot.gone = false;
                    entry.qbo.version = invoice.sync_token;
                    if entry.first_side() == Provider::HubSpot {
                        entry.payments = invoice.payment_ids.clone();
                    } else {
                        entry.qbo.fingerprint = Some(custom);
                    }
                    entry.mark_synced();
                    let action = if was_linked { "updated" } else { "created" };
                    entry.record(
                        self.now,
                        Provider::Qbo,
                        action,
                        format!(
                            "{action} in HubSpot ({}) with {} line(s) and {} payment(s)",
                            hubspot_id.as_deref().unwrap_or_default(),
                            invoice.lines.len()
                                + usize::from(invoice.tax != crate::domain::Money::ZERO),
                            invoice.payment_ids.len()
                        ),
                    );
                    if was_linked {
                        applied.updated += 1;
                    } else {
                        applied.created += 1;
                    }
                }
                Outcome::Failed(refusal) => {
                    self.record_refusal(&mut entry, Provider::Qbo, Ok(refusal), applied)
                }
                Outcome::Excluded(reason) => {
                    if invoice.deleted {
                        entry.qbo.gone = true;
                        entry.hubspot.gone = true;
                    }
                    entry.qbo.version = invoice.sync_token;
                    self.record_refusal(&mut entry, Provider::Qbo, Err(reason), applied);
                }
            }
            groups.push(self.engine.ledger.writes(&entry, previous.as_ref())?);
        }
        self.engine.ledger.commit(groups).await?;
        Ok(())
    }
}

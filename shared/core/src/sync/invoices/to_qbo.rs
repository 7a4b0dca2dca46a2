//! HubSpot invoices into QBO (two-way, opt-in): an invoice that left draft is created in QBO
//! once, on its contact's customer (through the contact sync's link, or synced then under the
//! contact sync's own rules), each line on its QBO item (the product's link, else the SKU,
//! else the "Custom Line Item" item, made once with the income account of the invoice
//! settings). The create carries a `requestid` made from the HubSpot invoice, so a lost answer
//! or a killed worker never makes a second one. Later edits of the S12 fields go to QBO for
//! invoices made in HubSpot; invoices made in QBO are QBO's and never written back.
//!
//! A company outside the US needs a tax code on every line: without the invoice settings' tax
//! mapping its HubSpot invoices are refused with that reason (S14); with it, each line carries
//! the mapped code (S21). With custom transaction numbers on, the HubSpot number is sent and a
//! duplicate is a failure with its reason, not a retry.

use std::collections::HashMap;

use serde_json::Value;

use super::{distinct, InvoiceRun, Refusal};
use crate::domain::{ObjectKind, Provider, QboRequestId};
use crate::filters::{self, Subject};
use crate::hubspot::{BatchInput, CrmObject};
use crate::ledger::{LedgerEntry, LinkStatus, Stored};
use crate::mapping::invoices::{self as map, HubSpotLine, InvoiceShape, QboInvoice};
use crate::qbo::entities::{Entity, Invoice, Item, Ref};
use crate::qbo::query::Query;
use crate::qbo::{FaultCode, QboError};
use crate::sync::engine::{sha, Applied, SyncError};

/// The item unmatched HubSpot lines are booked on (S8).
pub const CUSTOM_LINE_ITEM: &str = "Custom Line Item";

/// What the company's documents say about invoices made here.
struct CompanyRules {
    us: bool,
    custom_numbers: bool,
}

/// A HubSpot invoice on its way to QBO.
struct ToCreate {
    record: CrmObject,
    previous: Option<Stored>,
    /// Its first contact, and that contact's QBO customer.
    contact: Option<String>,
    customer: Option<String>,
    lines: Vec<HubSpotLine>,
    /// S15: the lines' service date, from the invoice's deal.
    service_date: Option<String>,
}

enum Done {
    Created { qbo: Value },
    Updated { sync_token: Option<i64> },
    Unchanged,
    Failed(Refusal),
    Excluded(String),
}

fn version_of(record: &CrmObject) -> Option<i64> {
    record
        .updated_at
        .as_deref()
        .and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

fn refusal(error: &QboError, what: &str) -> Refusal {
    let (category, message) = match error.fault_code() {
        Some(FaultCode::DuplicateDocNumber) => (
            "duplicate_document_number".to_owned(),
            format!(
                "QuickBooks already has a document with this invoice's number (custom transaction numbers are on): give the HubSpot invoice another number, or turn custom numbers off in QuickBooks ({error})"
            ),
        ),
        _ => (
            error.category().to_owned(),
            format!("QuickBooks refused the {what}: {error}"),
        ),
    };
    Refusal {
        category,
        message,
        retryable: error.class() == crate::ErrorClass::Retryable,
    }
}

impl InvoiceRun<'_> {
    pub(super) async fn apply_from_hubspot(&self, records: &[Value]) -> Result<Applied, SyncError> {
        let mut incoming: Vec<CrmObject> = records
            .iter()
            .filter_map(|r| serde_json::from_value(r.clone()).ok())
            .collect();
        incoming.sort_by(|a, b| a.id.cmp(&b.id).then(version_of(b).cmp(&version_of(a))));
        incoming.dedup_by(|a, b| a.id == b.id);
        let ids: Vec<String> = incoming.iter().map(|r| r.id.clone()).collect();
        let entries = self
            .engine
            .ledger
            .find(
                &self.connection.id,
                ObjectKind::Invoice,
                Provider::HubSpot,
                &ids,
                self.now,
            )
            .await?;
        let mut applied = Applied::default();
        let mut done: Vec<(CrmObject, Option<Stored>, Done)> = Vec::new();
        let mut to_create = Vec::new();
        for record in incoming {
            let previous = entries.get(&record.id).cloned();
            let status = record.property("hs_invoice_status").unwrap_or("draft");
            if record.archived || status == "draft" {
                applied.unchanged += 1;
                continue;
            }
            match previous.as_ref().map(|s| &s.entry) {
                // Made in QBO: QBO's to change.
                Some(entry) if entry.first_side() == Provider::Qbo => {
                    applied.unchanged += 1;
                }
                Some(entry) if entry.qbo.id.is_some() => {
                    let outcome = self.update_in_qbo(&record, entry).await?;
                    done.push((record, previous, outcome));
                }
                _ => {
                    let properties = record.properties.clone();
                    let subject = Subject::HubSpot {
                        properties: &properties,
                        invoices: &[],
                    };
                    match filters::evaluate(&self.settings.filters.hubspot_to_qbo, subject) {
                        Err(excluded) => {
                            done.push((record, previous, Done::Excluded(excluded.explanation())))
                        }
                        Ok(()) => to_create.push(ToCreate {
                            record,
                            previous,
                            contact: None,
                            customer: None,
                            lines: Vec::new(),
                            service_date: None,
                        }),
                    }
                }
            }
        }
        if !to_create.is_empty() {
            let created = self.create_all(to_create).await?;
            done.extend(created);
        }
        self.commit_from_hubspot(done, &mut applied).await?;
        Ok(applied)
    }

    /// S12: the mapped fields of an invoice made in HubSpot, when they changed.
    async fn update_in_qbo(
        &self,
        record: &CrmObject,
        entry: &LedgerEntry,
    ) -> Result<Done, SyncError> {
        let fingerprint = map::updated_fingerprint(&record.properties);
        if entry.status == LinkStatus::Synced
            && entry.hubspot.fingerprint.as_deref() == Some(fingerprint.as_str())
        {
            return Ok(Done::Unchanged);
        }
        let Some(qbo_id) = entry.qbo.id.as_deref() else {
            return Ok(Done::Unchanged);
        };
        let current = self.qbo.read::<Invoice>(qbo_id).await;
        let current = match current {
            Ok(current) => current,
            Err(error) => return Ok(Done::Failed(refusal(&error, "invoice read"))),
        };
        let mut body = serde_json::Map::new();
        body.insert("Id".into(), Value::String(qbo_id.to_owned()));
        body.insert(
            "SyncToken".into(),
            current.0.get("SyncToken").cloned().unwrap_or(Value::Null),
        );
        body.insert("sparse".into(), Value::Bool(true));
        for (name, value) in map::updated_fields(&record.properties) {
            body.insert(name.into(), value);
        }
        match self.qbo.update(&Invoice(body)).await {
            Ok(updated) => Ok(Done::Updated {
                sync_token: updated
                    .0
                    .get("SyncToken")
                    .and_then(Value::as_str)
                    .and_then(|t| t.parse().ok()),
            }),
            Err(error @ QboError::Throttled { .. }) => Err(error.into()),
            Err(error) => Ok(Done::Failed(refusal(&error, "update of the invoice"))),
        }
    }

    /// The company as read when it was connected (its pre-flight record), else read now.
    async fn company_rules(&self) -> Result<CompanyRules, SyncError> {
        let stored = self
            .engine
            .connections
            .preflight(&self.connection.id, self.now)
            .await?;
        let profile = match stored {
            Some(preflight) => preflight.company,
            None => {
                let (info, preferences) = self.qbo.company_documents().await?;
                crate::qbo::company::read_profile(&info, &preferences)
                    .map_err(|e| SyncError::Qbo(QboError::Unreadable(e.to_string())))?
            }
        };
        Ok(CompanyRules {
            us: profile.us_edition,
            custom_numbers: profile.custom_txn_numbers,
        })
    }

    async fn create_all(
        &self,
        mut to_create: Vec<ToCreate>,
    ) -> Result<Vec<(CrmObject, Option<Stored>, Done)>, SyncError> {
        let mut done = Vec::new();
        let rules = self.company_rules().await?;
        let tax = self.settings.tax_mapping.as_ref();
        if !rules.us && tax.is_none() {
            for create in to_create {
                let reason = Refusal {
                    category: "tax_mapping_needed".into(),
                    message: "this QuickBooks company is outside the US, where every invoice line needs a tax code HubSpot does not give: choose a tax mapping in the invoice settings (a default QuickBooks tax code, and optionally one per HubSpot tax rate) and the invoice syncs".into(),
                    retryable: false,
                };
                done.push((create.record, create.previous, Done::Failed(reason)));
            }
            return Ok(done);
        }
        self.find_customers(&mut to_create).await?;
        self.read_lines(&mut to_create).await?;
        self.read_service_dates(&mut to_create).await?;
        let items = self.match_items(&to_create).await?;
        for create in to_create {
            let outcome = self.create_one(&create, &items, &rules).await?;
            done.push((create.record, create.previous, outcome));
        }
        Ok(done)
    }

    /// S15: the date the settings name, from each invoice's deal.
    async fn read_service_dates(&self, to_create: &mut [ToCreate]) -> Result<(), SyncError> {
        let Some(property) = self.settings.service_date_property.as_deref() else {
            return Ok(());
        };
        let ids: Vec<String> = to_create.iter().map(|c| c.record.id.clone()).collect();
        let deals_of = self.first_associated("deals", &ids).await?;
        let deals: Vec<String> = distinct(deals_of.values().cloned());
        let mut dates = HashMap::new();
        for chunk in deals.chunks(crate::hubspot::MAX_BATCH_INPUTS) {
            let read = self
                .hubspot
                .batch_read("deals", chunk, &[property], None)
                .await?;
            for deal in read.results {
                if let Some(date) = deal.property(property) {
                    dates.insert(deal.id.clone(), date.to_owned());
                }
            }
        }
        for create in to_create.iter_mut() {
            create.service_date = deals_of
                .get(&create.record.id)
                .and_then(|d| dates.get(d))
                .cloned();
        }
        Ok(())
    }

    /// The QBO customer of each invoice's contact; a contact not linked yet is synced first,
    /// under the contact sync's rules.
    async fn find_customers(&self, to_create: &mut [ToCreate]) -> Result<(), SyncError> {
        let ids: Vec<String> = to_create.iter().map(|c| c.record.id.clone()).collect();
        let contacts_of = self.first_associated("contacts", &ids).await?;
        let contacts: Vec<String> = distinct(contacts_of.values().cloned());
        let mut linked = self
            .linked(ObjectKind::Contact, Provider::HubSpot, &contacts)
            .await?;
        let missing: Vec<String> = contacts
            .iter()
            .filter(|c| !linked.contains_key(*c))
            .cloned()
            .collect();
        if !missing.is_empty() {
            self.sync_contacts(&missing).await?;
            linked = self
                .linked(ObjectKind::Contact, Provider::HubSpot, &contacts)
                .await?;
        }
        for create in to_create.iter_mut() {
            create.contact = contacts_of.get(&create.record.id).cloned();
            create.customer = create.contact.as_ref().and_then(|c| linked.get(c)).cloned();
        }
        Ok(())
    }

    /// Runs the contact sync on these contacts now, as their next change would.
    async fn sync_contacts(&self, contacts: &[String]) -> Result<(), SyncError> {
        Box::pin(
            self.engine
                .sync_from_hubspot(&self.connection.id, ObjectKind::Contact, contacts),
        )
        .await?;
        Ok(())
    }

    async fn read_lines(&self, to_create: &mut [ToCreate]) -> Result<(), SyncError> {
        let ids: Vec<String> = to_create.iter().map(|c| c.record.id.clone()).collect();
        let lines_of = self
            .hubspot
            .associations("invoices", "line_items", &ids)
            .await?;
        let line_ids: Vec<String> = lines_of.values().flatten().cloned().collect();
        let mut lines: HashMap<String, HubSpotLine> = HashMap::new();
        for chunk in line_ids.chunks(crate::hubspot::MAX_BATCH_INPUTS) {
            let read = self
                .hubspot
                .batch_read("line_items", chunk, &map::LINE_PROPERTIES, None)
                .await?;
            for line in read.results {
                lines.insert(
                    line.id.clone(),
                    HubSpotLine::read(&line.id, &line.properties),
                );
            }
        }
        for create in to_create.iter_mut() {
            let mut ids = lines_of.get(&create.record.id).cloned().unwrap_or_default();
            ids.sort_by_key(|id| id.parse::<u64>().unwrap_or(u64::MAX));
            create.lines = ids.iter().filter_map(|id| lines.get(id).cloned()).collect();
        }
        Ok(())
    }

    /// The QBO item of every line: the product's link, else the SKU, else the Custom Line Item
    /// (`None` for it when the invoice settings name no income account for it).
    async fn match_items(
        &self,
        to_create: &[ToCreate],
    ) -> Result<HashMap<String, Option<String>>, SyncError> {
        let lines: Vec<&HubSpotLine> = to_create.iter().flat_map(|c| &c.lines).collect();
        let products: Vec<String> = distinct(lines.iter().filter_map(|l| l.product_id.clone()));
        let linked = self
            .linked(ObjectKind::Product, Provider::HubSpot, &products)
            .await?;
        let skus: Vec<String> = distinct(
            lines
                .iter()
                .filter(|l| {
                    l.product_id
                        .as_ref()
                        .is_none_or(|p| !linked.contains_key(p))
                })
                .filter_map(|l| l.sku.clone()),
        );
        let by_sku = self.qbo.items_by_sku(&skus).await?;
        let mut items = HashMap::new();
        let mut custom: Option<Option<String>> = None;
        for line in lines {
            let matched = line.matched_item(&linked, &by_sku).cloned();
            let item = match matched {
                Some(item) => Some(item),
                None => {
                    if custom.is_none() {
                        custom = Some(self.custom_line_item().await?);
                    }
                    custom.clone().flatten()
                }
            };
            items.insert(line.id.clone(), item);
        }
        Ok(items)
    }

    /// The Custom Line Item item, made once (its create's `requestid` is the company's) with
    /// the income account the invoice settings name; `None` when they name none.
    async fn custom_line_item(&self) -> Result<Option<String>, SyncError> {
        let query = Query::select(Item::NAME).eq("Name", CUSTOM_LINE_ITEM);
        if let Some(id) = self
            .qbo
            .query_all::<Item>(&query)
            .await?
            .into_iter()
            .find_map(|i| i.id)
        {
            return Ok(Some(id));
        }
        let Some(account) = self.settings.custom_line_item_income_account.clone() else {
            return Ok(None);
        };
        let item = Item {
            name: Some(CUSTOM_LINE_ITEM.into()),
            item_type: Some("Service".into()),
            income_account_ref: Some(Ref::to(account)),
            description: Some("Invoice lines from HubSpot with no matching product".into()),
            ..Item::default()
        };
        let requestid = QboRequestId::parse(format!(
            "cli-{}",
            sha(&[self.connection.realm_id.as_str(), CUSTOM_LINE_ITEM])
        ))
        .map_err(|e| SyncError::Qbo(QboError::Unreadable(e.to_string())))?;
        Ok(self.qbo.create(&item, &requestid).await?.id)
    }

    async fn create_one(
        &self,
        create: &ToCreate,
        items: &HashMap<String, Option<String>>,
        rules: &CompanyRules,
    ) -> Result<Done, SyncError> {
        let Some(customer) = create.customer.as_deref() else {
            let reason = self.customer_reason(create).await?;
            return Ok(Done::Failed(Refusal {
                category: "customer_not_synced".into(),
                message: reason,
                retryable: true,
            }));
        };
        if create.lines.is_empty() {
            return Ok(Done::Failed(Refusal {
                category: "no_lines".into(),
                message: "the HubSpot invoice has no line items; add one and it syncs".into(),
                retryable: false,
            }));
        }
        let mut booked = HashMap::new();
        for line in &create.lines {
            match items.get(&line.id).cloned().flatten() {
                Some(item) => {
                    booked.insert(line.id.clone(), item);
                }
                None => {
                    return Ok(Done::Failed(Refusal {
                        category: "custom_line_item_account".into(),
                        message: format!(
                            "the line \"{}\" matches no QuickBooks item, so it is booked on the \"{CUSTOM_LINE_ITEM}\" item, which does not exist yet: choose its income account in the invoice settings",
                            line.name
                        ),
                        retryable: false,
                    }))
                }
            }
        }
        let mut body = map::qbo_invoice(
            &create.record.properties,
            customer,
            &create.lines,
            &booked,
            rules.custom_numbers,
            self.settings.tax_mapping.as_ref(),
        );
        if let Some(date) = &create.service_date {
            map::set_service_dates(&mut body, date);
        }
        let custom =
            map::custom_fields_for_qbo(&create.record.properties, &self.settings.custom_mappings);
        if !custom.is_empty() {
            body.insert("CustomField".into(), Value::Array(custom));
        }
        let requestid = QboRequestId::parse(format!(
            "hsinv-{}",
            sha(&[self.connection.id.as_str(), &create.record.id])
        ))
        .map_err(|e| SyncError::Qbo(QboError::Unreadable(e.to_string())))?;
        match self.qbo.create(&Invoice(body), &requestid).await {
            Ok(created) => Ok(Done::Created {
                qbo: Value::Object(created.0),
            }),
            // Throttled: the whole message waits. Any other passing failure fails this invoice
            // alone, tried again by the retry sweep with the same requestid.
            Err(error @ QboError::Throttled { .. }) => Err(error.into()),
            Err(error) => Ok(Done::Failed(refusal(&error, "invoice"))),
        }
    }

    /// Why an invoice's contact has no QBO customer: the contact sync's own reason if it has
    /// one.
    async fn customer_reason(&self, create: &ToCreate) -> Result<String, SyncError> {
        let Some(contact) = create.contact.as_ref() else {
            return Ok("the HubSpot invoice has no contact; associate one and it syncs".to_owned());
        };
        let entry = self
            .engine
            .ledger
            .find(
                &self.connection.id,
                ObjectKind::Contact,
                Provider::HubSpot,
                std::slice::from_ref(contact),
                self.now,
            )
            .await?
            .remove(contact);
        let why = entry
            .and_then(|s| s.entry.exclusion.or(s.entry.failure.map(|f| f.message)))
            .map(|w| format!(": {w}"))
            .unwrap_or_default();
        Ok(format!(
            "its contact {contact} is not synced to a QuickBooks customer{why}; it is tried again once the contact is"
        ))
    }

    async fn commit_from_hubspot(
        &self,
        done: Vec<(CrmObject, Option<Stored>, Done)>,
        applied: &mut Applied,
    ) -> Result<(), SyncError> {
        let mut groups = Vec::new();
        let mut write_back = Vec::new();
        for (record, previous, outcome) in done {
            let mut entry = previous
                .as_ref()
                .map(|s| s.entry.clone())
                .unwrap_or_else(|| {
                    LedgerEntry::new(
                        self.connection.id.clone(),
                        ObjectKind::Invoice,
                        Provider::HubSpot,
                        &record.id,
                        self.now,
                    )
                });
            let fingerprint = map::updated_fingerprint(&record.properties);
            match outcome {
                Done::Unchanged => {
                    applied.unchanged += 1;
                    continue;
                }
                Done::Created { qbo } => {
                    let Some(invoice) = QboInvoice::read(&qbo) else {
                        continue;
                    };
                    entry.qbo.id = Some(invoice.id.clone());
                    entry.qbo.version = invoice.sync_token;
                    entry.qbo.fingerprint = Some(InvoiceShape::of(&invoice).text());
                    entry.qbo.gone = false;
                    entry.hubspot.version = version_of(&record);
                    entry.hubspot.fingerprint = Some(fingerprint);
                    entry.payments = invoice.payment_ids.clone();
                    entry.mark_synced();
                    entry.record(
                        self.now,
                        Provider::HubSpot,
                        "created",
                        format!(
                            "created in QuickBooks as invoice {} ({})",
                            invoice.number.as_deref().unwrap_or("without a number"),
                            invoice.id
                        ),
                    );
                    write_back.push(BatchInput {
                        id: Some(record.id.clone()),
                        id_property: None,
                        properties: [(map::QBO_ID_PROPERTY.to_owned(), invoice.id.clone())]
                            .into_iter()
                            .collect(),
                        object_write_trace_id: None,
                    });
                    applied.created += 1;
                }
                Done::Updated { sync_token } => {
                    entry.qbo.version = sync_token;
                    entry.hubspot.version = version_of(&record);
                    entry.hubspot.fingerprint = Some(fingerprint);
                    entry.mark_synced();
                    entry.record(
                        self.now,
                        Provider::HubSpot,
                        "updated",
                        "updated in QuickBooks",
                    );
                    applied.updated += 1;
                }
                Done::Failed(refusal) => {
                    self.record_refusal(&mut entry, Provider::HubSpot, Ok(refusal), applied)
                }
                Done::Excluded(reason) => {
                    self.record_refusal(&mut entry, Provider::HubSpot, Err(reason), applied)
                }
            }
            groups.push(self.engine.ledger.writes(&entry, previous.as_ref())?);
        }
        self.engine.ledger.commit(groups).await?;
        if !write_back.is_empty() {
            self.ensure_own_properties().await?;
        }
        // The QBO id on the HubSpot invoice: what QBO's later changes find it by. Written after
        // the ledger, which already links the two.
        for chunk in write_back.chunks(crate::hubspot::MAX_BATCH_INPUTS) {
            let outcome = self.hubspot.batch_update("invoices", chunk).await?;
            for error in outcome.errors {
                tracing::warn!(category = %error.category, "the QuickBooks id was not written to a HubSpot invoice: {}", error.message);
            }
        }
        Ok(())
    }
}

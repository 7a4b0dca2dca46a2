//! One claimed execution: resolves the customer (A7) and the items (A8) of the enrolled record
//! and makes the document with the execution's `requestid`, so a retry, a duplicate or a
//! takeover gets QuickBooks' first answer instead of a second document.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::documents::{self, Made, SalesDocument};
use super::inputs::{Enrolled, Inputs};
use super::request::step_requestid;
use super::service::{ActionError, ActionService, Done};
use super::settings::{ActionSettings, CustomerMode};
use super::ActionKind;
use crate::connection::registry::Connection;
use crate::domain::{ObjectKind, PortalId, Provider, QboRequestId};
use crate::hubspot::Portal;
use crate::ledger::LedgerEntry;
use crate::mapping::invoices::{HubSpotLine, LINE_PROPERTIES};
use crate::qbo::entities::{
    Customer, EmailAddress, Entity, Estimate, Invoice, Item, Ref, SalesReceipt,
};
use crate::qbo::query::Query;
use crate::qbo::{Company, FaultCode, QboError};
use crate::store::{keys, Item as StoreItem, Table};

pub(super) struct Execution<'a> {
    pub service: &'a ActionService,
    pub kind: ActionKind,
    pub callback_id: &'a str,
    pub portal: &'a PortalId,
    pub connection: &'a Connection,
    pub settings: &'a ActionSettings,
    pub inputs: &'a Inputs,
    pub enrolled: &'a Enrolled,
    pub requestid: &'a QboRequestId,
    pub qbo: Company<'a>,
    pub hubspot: Portal<'a>,
    pub now: i64,
    /// An enrolled payment's first deal, read once (a payment link's contact and lines are
    /// its deal's).
    pub payment_deal: tokio::sync::OnceCell<Option<String>>,
}

pub(super) fn unreadable(what: &str) -> ActionError {
    ActionError::Qbo(QboError::Unreadable(format!(
        "QuickBooks' answer to the {what} names no id"
    )))
}

impl Execution<'_> {
    pub async fn run(&self) -> Result<Done, ActionError> {
        match self.enrolled {
            Enrolled::Payment(id) => self.payment_document(id).await,
            _ => self.sales_document().await,
        }
    }

    fn step(&self, step: &str) -> Result<QboRequestId, ActionError> {
        step_requestid(self.portal, self.callback_id, self.kind, step)
            .map_err(|e| ActionError::refused("invalid_request", e.to_string()))
    }

    /// A1–A3 from a deal or a quote: its customer, its line items, the document.
    async fn sales_document(&self) -> Result<Done, ActionError> {
        let lines = self
            .lines(self.enrolled.crm_type(), self.enrolled.id())
            .await?;
        if lines.is_empty() {
            return Err(ActionError::refused(
                "no_line_items",
                format!(
                    "the {} has no line items: add the products sold to it and run the action again",
                    self.enrolled.noun()
                ),
            ));
        }
        let customer = self.customer().await?;
        let items = self.items(&lines).await?;
        let term = match self.kind {
            ActionKind::CreateInvoice => self.inputs.term.as_deref(),
            _ => None,
        };
        let mut body = documents::sales_document(&SalesDocument {
            customer: &customer,
            lines: &lines,
            items: &items,
            term,
            memo: self.inputs.memo.as_deref(),
        });
        let created = match self.kind {
            ActionKind::CreateEstimate => self.create(Estimate(body)).await?.0,
            ActionKind::CreateSalesReceipt => {
                self.receipt_fields(&mut body);
                self.create(SalesReceipt(body)).await?.0
            }
            _ => self.create(Invoice(body)).await?.0,
        };
        let made = Made::read(&created).ok_or_else(|| unreadable("document"))?;
        let mut records = vec![self.document_record(&made, &customer, None)?];
        if let (ActionKind::CreateInvoice, Enrolled::Deal(deal)) = (self.kind, self.enrolled) {
            records.push(self.invoice_deal_record(&made.id, deal)?);
        }
        Ok(Done {
            outputs: documents::success_outputs(self.kind, &made, Some(&customer), None),
            records,
        })
    }

    pub(super) fn receipt_fields(&self, body: &mut Map<String, Value>) {
        if let Some(account) = &self.settings.deposit_account {
            body.insert("DepositToAccountRef".into(), json!({ "value": account }));
        }
        if let Some(method) = &self.settings.payment_method {
            body.insert("PaymentMethodRef".into(), json!({ "value": method }));
        }
    }

    pub(super) async fn create<E: Entity>(&self, entity: E) -> Result<E, ActionError> {
        Ok(self.qbo.create(&entity, self.requestid).await?)
    }

    /// The document made, linked to the enrolled record (what its record view lists).
    pub(super) fn document_record(
        &self,
        made: &Made,
        customer: &str,
        payment: Option<&str>,
    ) -> Result<(Table, StoreItem), ActionError> {
        let key = keys::ledger::action_document(
            &self.connection.id,
            self.enrolled.crm_type(),
            self.enrolled.id(),
            self.callback_id,
        );
        let item = StoreItem::from_value(
            key,
            &json!({
                "action": self.kind.document(),
                "callback_id": self.callback_id,
                "qbo_id": made.id,
                "qbo_number": made.number,
                "qbo_total": made.total,
                "qbo_customer": customer,
                "qbo_payment": payment,
                "hubspot_object": self.enrolled.crm_type(),
                "hubspot_id": self.enrolled.id(),
                "made_at": self.now,
            }),
        )?;
        Ok((Table::Ledger, item))
    }

    /// The deal an invoice was made from: the invoice sync puts the HubSpot invoice on it.
    fn invoice_deal_record(
        &self,
        qbo_invoice: &str,
        deal: &str,
    ) -> Result<(Table, StoreItem), ActionError> {
        let item = StoreItem::from_value(
            keys::ledger::invoice_deal(&self.connection.id, qbo_invoice),
            &json!({ "deal_id": deal }),
        )?;
        Ok((Table::Ledger, item))
    }

    /// The ids of `to_type` records associated with one record.
    pub(super) async fn associated(
        &self,
        from_type: &str,
        id: &str,
        to_type: &str,
    ) -> Result<Vec<String>, ActionError> {
        let id = id.to_owned();
        Ok(self
            .hubspot
            .associations(from_type, to_type, std::slice::from_ref(&id))
            .await?
            .remove(&id)
            .unwrap_or_default())
    }

    /// The line items of a deal, quote or payment, in HubSpot's order of creation.
    pub(super) async fn lines(
        &self,
        object_type: &str,
        id: &str,
    ) -> Result<Vec<HubSpotLine>, ActionError> {
        let mut ids = self.associated(object_type, id, "line_items").await?;
        ids.sort_by_key(|id| id.parse::<u64>().unwrap_or(u64::MAX));
        ids.dedup();
        let mut lines = Vec::new();
        for chunk in ids.chunks(crate::hubspot::MAX_BATCH_INPUTS) {
            let read = self
                .hubspot
                .batch_read("line_items", chunk, &LINE_PROPERTIES, None)
                .await?;
            let mut by_id: HashMap<String, HubSpotLine> = read
                .results
                .iter()
                .map(|l| (l.id.clone(), HubSpotLine::read(&l.id, &l.properties)))
                .collect();
            lines.extend(chunk.iter().filter_map(|id| by_id.remove(id)));
        }
        Ok(lines)
    }

    /// A7: the customer input, else the enrolled record's first contact's customer: its ledger
    /// link, else by the connection's customer mode.
    pub(super) async fn customer(&self) -> Result<String, ActionError> {
        if let Some(id) = &self.inputs.customer {
            return match self.qbo.read::<Customer>(id).await {
                Ok(customer) if !customer.is_deleted() && customer.active != Some(false) => {
                    Ok(id.clone())
                }
                Ok(_) | Err(QboError::Fault { .. }) => Err(ActionError::refused(
                    "customer_not_found",
                    format!("the QuickBooks customer {id} chosen in the action does not exist or is inactive"),
                )),
                Err(error) => Err(error.into()),
            };
        }
        let contact = self.billed_contact().await?.ok_or_else(|| {
                ActionError::refused(
                    "no_contact",
                    format!(
                        "the {} has no contact to bill: associate one, or choose the QuickBooks customer in the action",
                        self.enrolled.noun()
                    ),
                )
            })?;
        if let Some(customer) = self.linked_customer(&contact).await? {
            return Ok(customer);
        }
        match self.settings.customer_mode {
            CustomerMode::New => self.customer_through_sync(&contact).await,
            CustomerMode::Legacy => self.legacy_customer(&contact).await,
        }
    }

    /// The contact billed: the enrolled record's first; a payment without one (a payment
    /// link's) reaches it through its deal.
    async fn billed_contact(&self) -> Result<Option<String>, ActionError> {
        let (object_type, id) = (self.enrolled.crm_type(), self.enrolled.id());
        let first = |ids: Vec<String>| ids.into_iter().next();
        if let Some(contact) = first(self.associated(object_type, id, "contacts").await?) {
            return Ok(Some(contact));
        }
        match self.payment_deal().await? {
            Some(deal) => Ok(first(self.associated("deals", &deal, "contacts").await?)),
            None => Ok(None),
        }
    }

    /// The enrolled payment's first deal (`None` for other records).
    pub(super) async fn payment_deal(&self) -> Result<Option<String>, ActionError> {
        let Enrolled::Payment(id) = self.enrolled else {
            return Ok(None);
        };
        self.payment_deal
            .get_or_try_init(|| async {
                Ok(self
                    .associated("commerce_payments", id, "deals")
                    .await?
                    .into_iter()
                    .next())
            })
            .await
            .cloned()
    }

    async fn linked_customer(&self, contact: &str) -> Result<Option<String>, ActionError> {
        Ok(self
            .service
            .engine
            .ledger()
            .linked(
                &self.connection.id,
                ObjectKind::Contact,
                Provider::HubSpot,
                &[contact.to_owned()],
                self.now,
            )
            .await?
            .remove(contact))
    }

    /// New mode: the contact sync makes (or matches) the customer under its own filters; a
    /// contact they leave out gets no customer, and the action says why.
    async fn customer_through_sync(&self, contact: &str) -> Result<String, ActionError> {
        let contacts = [contact.to_owned()];
        Box::pin(self.service.engine.sync_from_hubspot(
            &self.connection.id,
            ObjectKind::Contact,
            &contacts,
        ))
        .await?;
        if let Some(customer) = self.linked_customer(contact).await? {
            return Ok(customer);
        }
        let entry = self
            .service
            .engine
            .ledger()
            .find(
                &self.connection.id,
                ObjectKind::Contact,
                Provider::HubSpot,
                &contacts,
                self.now,
            )
            .await?
            .remove(contact)
            .map(|s| s.entry);
        Err(match entry {
            Some(LedgerEntry {
                exclusion: Some(why),
                ..
            }) => ActionError::refused(
                "contact_excluded",
                format!("contact {contact} is left out by the contact sync's filters ({why}), so no QuickBooks customer is made for it: change the filters, choose the customer in the action, or use legacy customer matching"),
            ),
            Some(LedgerEntry {
                failure: Some(failure),
                ..
            }) => ActionError::refused(
                "customer_not_created",
                format!("contact {contact} could not be made a QuickBooks customer: {}", failure.message),
            ),
            _ => ActionError::refused(
                "contact_sync_off",
                format!("contact {contact} has no QuickBooks customer and the contact sync does not make customers from HubSpot contacts (it is off, or one-way from QuickBooks): turn it on, choose the customer in the action, or use legacy customer matching"),
            ),
        })
    }

    /// Legacy mode: a customer of the same first name, last name and email, else a new one.
    async fn legacy_customer(&self, contact: &str) -> Result<String, ActionError> {
        let record = self
            .hubspot
            .read(
                "contacts",
                contact,
                &["firstname", "lastname", "email"],
                false,
            )
            .await?
            .ok_or_else(|| {
                ActionError::refused("no_contact", format!("contact {contact} no longer exists"))
            })?;
        let first = record.property("firstname").map(str::trim).unwrap_or("");
        let last = record.property("lastname").map(str::trim).unwrap_or("");
        let email = record.property("email").map(str::trim).unwrap_or("");
        if first.is_empty() && last.is_empty() && email.is_empty() {
            return Err(ActionError::refused(
                "contact_without_name",
                format!("contact {contact} has no name and no email to find or make a customer by"),
            ));
        }
        let mut query = Query::select(Customer::NAME);
        if !first.is_empty() {
            query = query.eq("GivenName", first);
        }
        if !last.is_empty() {
            query = query.eq("FamilyName", last);
        }
        if first.is_empty() && last.is_empty() {
            query = query.eq("DisplayName", email);
        }
        let found = self
            .qbo
            .query_all::<Customer>(&query)
            .await?
            .into_iter()
            .filter(|c| !c.is_deleted())
            .find(|c| c.email().unwrap_or("").eq_ignore_ascii_case(email))
            .and_then(|c| c.id);
        if let Some(id) = found {
            return Ok(id);
        }
        let name = format!("{first} {last}").trim().to_owned();
        let name = if name.is_empty() {
            email.to_owned()
        } else {
            name
        };
        let candidates = [name.clone(), format!("{name} ({email})")];
        for (attempt, display_name) in candidates.iter().enumerate() {
            let customer = Customer {
                display_name: Some(display_name.clone()),
                given_name: (!first.is_empty()).then(|| first.to_owned()),
                family_name: (!last.is_empty()).then(|| last.to_owned()),
                primary_email_addr: (!email.is_empty()).then(|| EmailAddress {
                    address: Some(email.to_owned()),
                }),
                ..Customer::default()
            };
            let requestid = self.step(&format!("customer-{attempt}"))?;
            match self.qbo.create(&customer, &requestid).await {
                Ok(created) => return created.id.ok_or_else(|| unreadable("customer")),
                Err(error)
                    if error.fault_code() == Some(FaultCode::DuplicateName)
                        && attempt == 0
                        && !email.is_empty() =>
                {
                    continue
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(ActionError::refused(
            "customer_name_taken",
            format!(
                "QuickBooks has another customer named {name}: choose the customer in the action"
            ),
        ))
    }

    /// A8: each line's QBO item: its product's link, else its SKU; then the item input; then,
    /// when asked, a new item made once per product. Otherwise nothing is made and the
    /// unmatched lines are named.
    pub(super) async fn items(
        &self,
        lines: &[HubSpotLine],
    ) -> Result<HashMap<String, String>, ActionError> {
        let products = distinct(lines.iter().filter_map(|l| l.product_id.clone()));
        let linked = self
            .service
            .engine
            .ledger()
            .linked(
                &self.connection.id,
                ObjectKind::Product,
                Provider::HubSpot,
                &products,
                self.now,
            )
            .await?;
        let skus = distinct(lines.iter().filter_map(|l| l.sku.clone()));
        let by_sku = if skus.is_empty() {
            HashMap::new()
        } else {
            self.qbo.items_by_sku(&skus).await?
        };
        let mut items = HashMap::new();
        let mut unmatched = Vec::new();
        for line in lines {
            let matched = line
                .matched_item(&linked, &by_sku)
                .or(self.inputs.item.as_ref());
            match matched {
                Some(item) => {
                    items.insert(line.id.clone(), item.clone());
                }
                None => unmatched.push(line),
            }
        }
        if unmatched.is_empty() {
            return Ok(items);
        }
        if !self.inputs.create_products {
            let names: Vec<String> = unmatched
                .iter()
                .map(|l| match &l.sku {
                    Some(sku) => format!("\"{}\" (SKU {sku})", l.name),
                    None => format!("\"{}\" (no SKU)", l.name),
                })
                .collect();
            return Err(ActionError::refused(
                "unmatched_items",
                format!(
                    "no QuickBooks item matches {}: nothing was created. Sync the products, add their SKUs in QuickBooks, pick an item in the action, or let the action create missing products",
                    names.join(", ")
                ),
            ));
        }
        for line in unmatched {
            let item = self.make_item(line).await?;
            items.insert(line.id.clone(), item);
        }
        Ok(items)
    }

    /// A QBO item for a line that matched none, made once: one found by the line's name is
    /// used, and the create's `requestid` is the company's and the product's, so concurrent
    /// executions make one. A line of a product is linked to the item in the ledger.
    async fn make_item(&self, line: &HubSpotLine) -> Result<String, ActionError> {
        let by_name = Query::select(Item::NAME).eq("Name", &line.name);
        let existing = self
            .qbo
            .query_all::<Item>(&by_name)
            .await?
            .into_iter()
            .find(|i| !i.is_deleted())
            .and_then(|i| i.id);
        let id = match existing {
            Some(id) => id,
            None => {
                let identity = line
                    .product_id
                    .clone()
                    .or_else(|| line.sku.clone())
                    .unwrap_or_else(|| line.name.clone());
                let requestid = QboRequestId::parse(format!(
                    "actitem-{}",
                    crate::sync::engine::sha(&[self.connection.realm_id.as_str(), &identity])
                ))
                .map_err(|e| ActionError::refused("invalid_request", e.to_string()))?;
                let item = Item {
                    name: Some(line.name.clone()),
                    sku: line.sku.clone(),
                    description: line.description.clone(),
                    item_type: Some("Service".into()),
                    unit_price: Some(line.price),
                    income_account_ref: Some(Ref::to(self.income_account().await?)),
                    ..Item::default()
                };
                self.qbo
                    .create(&item, &requestid)
                    .await?
                    .id
                    .ok_or_else(|| unreadable("item"))?
            }
        };
        if let Some(product) = &line.product_id {
            self.link_product(product, &id).await?;
        }
        Ok(id)
    }

    /// The income account of items made here: the product settings', else the company's
    /// first.
    async fn income_account(&self) -> Result<String, ActionError> {
        let configured = self
            .service
            .object_settings
            .get(&self.connection.id, ObjectKind::Product, self.now)
            .await?
            .and_then(|s| s.income_account);
        if let Some(account) = configured {
            return Ok(account);
        }
        let query = Query::select("Account")
            .eq("AccountType", "Income")
            .page(1, 1);
        self.qbo
            .query::<crate::qbo::entities::Account>(&query)
            .await?
            .into_iter()
            .find_map(|a| a.id)
            .ok_or_else(|| {
                ActionError::refused(
                    "no_income_account",
                    "the QuickBooks company has no income account to book new items on: choose one in the product settings",
                )
            })
    }

    /// Links a HubSpot product to the item made for it, unless it is linked already.
    async fn link_product(&self, product: &str, item: &str) -> Result<(), ActionError> {
        let ledger = self.service.engine.ledger();
        let previous = ledger
            .find(
                &self.connection.id,
                ObjectKind::Product,
                Provider::HubSpot,
                &[product.to_owned()],
                self.now,
            )
            .await?
            .remove(product);
        if previous.as_ref().is_some_and(|p| p.entry.qbo.id.is_some()) {
            return Ok(());
        }
        let mut entry = previous.as_ref().map_or_else(
            || {
                LedgerEntry::new(
                    self.connection.id.clone(),
                    ObjectKind::Product,
                    Provider::HubSpot,
                    product,
                    self.now,
                )
            },
            |p| p.entry.clone(),
        );
        entry.qbo.id = Some(item.to_owned());
        entry.mark_synced();
        entry.record(
            self.now,
            Provider::HubSpot,
            "linked",
            format!(
                "QuickBooks item {item} made for it by the \"{}\" action",
                self.kind.label()
            ),
        );
        let writes = ledger.writes(&entry, previous.as_ref())?;
        match ledger.commit(vec![writes]).await {
            Ok(()) => Ok(()),
            // Linked meanwhile by another execution or the product sync: theirs stands.
            Err(crate::ledger::LedgerError::Conflict) => Ok(()),
            Err(error) => Err(crate::sync::engine::SyncError::from(error).into()),
        }
    }
}

fn distinct(values: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = values.collect();
    out.sort();
    out.dedup();
    out
}

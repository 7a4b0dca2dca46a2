//! QBO invoices → HubSpot invoices (S19), their line items and payments (S17), and the deal
//! properties of a deal's latest invoice (S16). Pure: what to write, never how.
//!
//! HubSpot computes an invoice's amount billed from its line items and its balance due from its
//! payments, so the QBO invoice becomes line items that add up to its total (its item lines, a
//! discount line, a tax line) and its QBO payments become HubSpot payments on the invoice where
//! the portal has them. The QBO total and balance are also kept in the integration's own
//! properties, which every portal has.

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;
use serde_json::Value;

use crate::domain::Money;
use crate::settings::{CustomMapping, MappingDirection};

/// HubSpot invoice properties the integration owns.
pub const QBO_ID_PROPERTY: &str = "qbo_invoice_id";
pub const QBO_TOTAL_PROPERTY: &str = "qbo_invoice_total";
pub const QBO_BALANCE_PROPERTY: &str = "qbo_invoice_balance";
pub const QBO_RECIPIENT_PROPERTY: &str = "qbo_invoice_recipient";
/// Line items: the QBO line they mirror (`<realm>-<invoice>-<line>`), unique.
pub const QBO_LINE_PROPERTY: &str = "qbo_line_id";
/// Payments: the QBO payment and invoice they mirror (`<realm>-<payment>-<invoice>`), unique.
pub const QBO_PAYMENT_PROPERTY: &str = "qbo_payment_key";

/// The HubSpot properties of an invoice the sync reads back.
pub const INVOICE_PROPERTIES: [&str; 14] = [
    "hs_invoice_status",
    "hs_number",
    "hs_invoice_date",
    "hs_purchase_order_number",
    "hs_comments",
    "hs_due_date",
    "hs_amount_billed",
    "hs_balance_due",
    "hs_currency",
    "hs_lastmodifieddate",
    QBO_ID_PROPERTY,
    QBO_TOTAL_PROPERTY,
    QBO_BALANCE_PROPERTY,
    QBO_RECIPIENT_PROPERTY,
];

/// Deal properties written from the deal's most recently updated invoice (S16). They live in
/// the deal's own group: the "Accounting" group belongs to HubSpot's native integration.
pub const DEAL_PROPERTIES: [(&str, &str, &str); 5] = [
    (
        "qbo_invoice_amount_billed",
        "Invoice amount billed",
        "number",
    ),
    ("qbo_invoice_recipient", "Invoice recipient", "string"),
    ("qbo_invoice_number", "Invoice number", "string"),
    ("qbo_invoice_status", "Invoice status", "string"),
    ("qbo_invoice_due_date", "Invoice due date", "string"),
];

/// What a QBO invoice is, read from its JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct QboInvoice {
    pub id: String,
    pub sync_token: Option<i64>,
    /// Deleted in QBO (CDC answers a stub with `status: Deleted`).
    pub deleted: bool,
    pub voided: bool,
    pub number: Option<String>,
    pub date: Option<String>,
    pub due_date: Option<String>,
    pub currency: String,
    pub customer_id: Option<String>,
    pub customer_name: Option<String>,
    pub total: Money,
    pub balance: Money,
    pub tax: Money,
    pub lines: Vec<InvoiceLine>,
    /// Payments applied to it (`LinkedTxn` of type Payment), in order.
    pub payment_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InvoiceLine {
    /// The line's id within the invoice (`Line[].Id`), or its position.
    pub id: String,
    pub item_id: Option<String>,
    pub name: String,
    pub description: Option<String>,
    pub quantity: Decimal,
    pub unit_price: Money,
    pub amount: Money,
    pub discount: bool,
    pub service_date: Option<String>,
}

fn text<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut at = value;
    for key in path {
        at = at.get(*key)?;
    }
    at.as_str().filter(|s| !s.is_empty())
}

fn money(value: Option<&Value>) -> Money {
    let text = match value {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => return Money::ZERO,
    };
    Money::parse(&text).unwrap_or(Money::ZERO)
}

fn decimal(value: Option<&Value>) -> Option<Decimal> {
    match value {
        Some(Value::Number(n)) => Money::parse(&n.to_string()).ok().map(Money::amount),
        Some(Value::String(s)) => Money::parse(s).ok().map(Money::amount),
        _ => None,
    }
}

impl QboInvoice {
    /// `None` when the JSON has no id.
    pub fn read(raw: &Value) -> Option<Self> {
        let id = text(raw, &["Id"])?.to_owned();
        let deleted = text(raw, &["status"]) == Some("Deleted");
        let lines: Vec<InvoiceLine> = raw
            .get("Line")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(position, line)| read_line(position, line))
            .collect();
        let total = money(raw.get("TotalAmt"));
        let voided = total == Money::ZERO
            && text(raw, &["PrivateNote"]).is_some_and(|n| n.starts_with("Voided"));
        let payment_ids = raw
            .get("LinkedTxn")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|l| text(l, &["TxnType"]) == Some("Payment"))
            .filter_map(|l| text(l, &["TxnId"]).map(str::to_owned))
            .collect();
        Some(Self {
            id,
            sync_token: text(raw, &["SyncToken"]).and_then(|t| t.parse().ok()),
            deleted,
            voided,
            number: text(raw, &["DocNumber"]).map(str::to_owned),
            date: text(raw, &["TxnDate"]).map(str::to_owned),
            due_date: text(raw, &["DueDate"]).map(str::to_owned),
            currency: text(raw, &["CurrencyRef", "value"])
                .unwrap_or("USD")
                .to_owned(),
            customer_id: text(raw, &["CustomerRef", "value"]).map(str::to_owned),
            customer_name: text(raw, &["CustomerRef", "name"]).map(str::to_owned),
            total,
            balance: money(raw.get("Balance")),
            tax: money(raw.get("TxnTaxDetail").and_then(|t| t.get("TotalTax"))),
            lines,
            payment_ids,
        })
    }

    /// The items its lines name.
    pub fn item_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .lines
            .iter()
            .filter_map(|l| l.item_id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

fn read_line(position: usize, line: &Value) -> Option<InvoiceLine> {
    let id = text(line, &["Id"])
        .map(str::to_owned)
        .unwrap_or_else(|| format!("p{}", position + 1));
    let amount = money(line.get("Amount"));
    match text(line, &["DetailType"])? {
        "SalesItemLineDetail" => {
            let detail = line.get("SalesItemLineDetail")?;
            let quantity = decimal(detail.get("Qty")).unwrap_or(Decimal::ONE);
            let unit_price = match decimal(detail.get("UnitPrice")) {
                Some(price) => Money::new(price),
                None if !quantity.is_zero() => Money::new(amount.amount() / quantity),
                None => amount,
            };
            Some(InvoiceLine {
                id,
                item_id: text(detail, &["ItemRef", "value"]).map(str::to_owned),
                name: text(detail, &["ItemRef", "name"])
                    .or_else(|| text(line, &["Description"]))
                    .unwrap_or("Item")
                    .to_owned(),
                description: text(line, &["Description"]).map(str::to_owned),
                quantity,
                unit_price,
                amount,
                discount: false,
                service_date: text(detail, &["ServiceDate"]).map(str::to_owned),
            })
        }
        "DiscountLineDetail" => Some(InvoiceLine {
            id,
            item_id: None,
            name: "Discount".into(),
            description: text(line, &["Description"]).map(str::to_owned),
            quantity: Decimal::ONE,
            unit_price: Money::new(-amount.amount()),
            amount: Money::new(-amount.amount()),
            discount: true,
            service_date: None,
        }),
        // Subtotal and description-only lines carry no amount of their own.
        _ => None,
    }
}

/// A HubSpot date-time for a QBO date (`2026-03-14` → midnight UTC).
fn hubspot_date(date: &str) -> String {
    format!("{date}T00:00:00Z")
}

/// The HubSpot status a QBO invoice stands for, before payments: HubSpot moves an open invoice
/// to paid itself once its payments cover it.
pub fn hubspot_status(invoice: &QboInvoice) -> &'static str {
    if invoice.voided {
        "voided"
    } else {
        "open"
    }
}

/// The properties of the HubSpot invoice (its status is set once its associations exist).
pub fn invoice_properties(invoice: &QboInvoice) -> BTreeMap<String, String> {
    let mut properties = BTreeMap::new();
    let mut put = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            properties.insert(name.to_owned(), value);
        }
    };
    put(QBO_ID_PROPERTY, Some(invoice.id.clone()));
    put("hs_currency", Some(invoice.currency.clone()));
    put("hs_number", invoice.number.clone());
    put("hs_invoice_date", invoice.date.as_deref().map(hubspot_date));
    put("hs_due_date", invoice.due_date.as_deref().map(hubspot_date));
    put(QBO_TOTAL_PROPERTY, Some(invoice.total.to_string()));
    put(QBO_BALANCE_PROPERTY, Some(invoice.balance.to_string()));
    put(QBO_RECIPIENT_PROPERTY, invoice.customer_name.clone());
    properties
}

/// One HubSpot line item to write: its unique key and properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineItem {
    pub key: String,
    pub properties: BTreeMap<String, String>,
}

pub fn line_key(realm: &str, invoice: &str, line: &str) -> String {
    format!("{realm}-{invoice}-{line}")
}

/// The line items that mirror an invoice: one per item or discount line, and one for its tax,
/// so that what HubSpot adds up is the QBO total. `products`: HubSpot product ids by QBO item.
pub fn line_items(
    realm: &str,
    invoice: &QboInvoice,
    products: &HashMap<String, String>,
) -> Vec<LineItem> {
    let mut items: Vec<LineItem> = invoice
        .lines
        .iter()
        .map(|line| {
            // HubSpot's amount is quantity × price: where QBO's line amount is not, the line
            // is written as one of its amount.
            let exact = line.unit_price.checked_mul(line.quantity) == Some(line.amount);
            let (quantity, price) = if exact {
                (line.quantity, line.unit_price)
            } else {
                (Decimal::ONE, line.amount)
            };
            let mut properties = BTreeMap::from([
                ("name".to_owned(), line.name.clone()),
                ("quantity".to_owned(), quantity.normalize().to_string()),
                ("price".to_owned(), price.to_string()),
                (
                    "hs_line_item_currency_code".to_owned(),
                    invoice.currency.clone(),
                ),
                (
                    QBO_LINE_PROPERTY.to_owned(),
                    line_key(realm, &invoice.id, &line.id),
                ),
            ]);
            if let Some(description) = &line.description {
                properties.insert("description".into(), description.clone());
            }
            if let Some(product) = line.item_id.as_ref().and_then(|i| products.get(i)) {
                properties.insert("hs_product_id".into(), product.clone());
            }
            LineItem {
                key: line_key(realm, &invoice.id, &line.id),
                properties,
            }
        })
        .collect();
    if invoice.tax != Money::ZERO {
        let key = line_key(realm, &invoice.id, "tax");
        items.push(LineItem {
            key: key.clone(),
            properties: BTreeMap::from([
                ("name".to_owned(), "Tax".to_owned()),
                ("quantity".to_owned(), "1".to_owned()),
                ("price".to_owned(), invoice.tax.to_string()),
                (
                    "hs_line_item_currency_code".to_owned(),
                    invoice.currency.clone(),
                ),
                (QBO_LINE_PROPERTY.to_owned(), key),
            ]),
        });
    }
    items
}

/// A QBO payment as far as an invoice is concerned.
#[derive(Debug, Clone, PartialEq)]
pub struct QboPayment {
    pub id: String,
    pub date: Option<String>,
    pub currency: String,
    pub method: Option<String>,
    pub reference: Option<String>,
    /// What it applies to each invoice, by invoice id.
    pub applied: BTreeMap<String, Money>,
}

impl QboPayment {
    pub fn read(raw: &Value) -> Option<Self> {
        let mut applied: BTreeMap<String, Money> = BTreeMap::new();
        for line in raw
            .get("Line")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let amount = money(line.get("Amount"));
            for link in line
                .get("LinkedTxn")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if text(link, &["TxnType"]) == Some("Invoice") {
                    if let Some(invoice) = text(link, &["TxnId"]) {
                        let sum = applied.entry(invoice.to_owned()).or_default();
                        *sum = sum.checked_add(amount).unwrap_or(*sum);
                    }
                }
            }
        }
        Some(Self {
            id: text(raw, &["Id"])?.to_owned(),
            date: text(raw, &["TxnDate"]).map(str::to_owned),
            currency: text(raw, &["CurrencyRef", "value"])
                .unwrap_or("USD")
                .to_owned(),
            method: text(raw, &["PaymentMethodRef", "name"]).map(str::to_owned),
            reference: text(raw, &["PaymentRefNum"]).map(str::to_owned),
            applied,
        })
    }
}

pub fn payment_key(realm: &str, payment: &str, invoice: &str) -> String {
    format!("{realm}-{payment}-{invoice}")
}

/// The HubSpot payment recording what a QBO payment brought to one invoice.
pub fn payment_properties(
    realm: &str,
    payment: &QboPayment,
    invoice: &str,
) -> Option<BTreeMap<String, String>> {
    let amount = payment.applied.get(invoice)?;
    let mut properties = BTreeMap::from([
        (
            QBO_PAYMENT_PROPERTY.to_owned(),
            payment_key(realm, &payment.id, invoice),
        ),
        ("hs_initial_amount".to_owned(), amount.to_string()),
        ("hs_currency_code".to_owned(), payment.currency.clone()),
        ("hs_latest_status".to_owned(), "succeeded".to_owned()),
    ]);
    if let Some(date) = &payment.date {
        properties.insert("hs_initiated_date".into(), hubspot_date(date));
    }
    if let Some(reference) = &payment.reference {
        properties.insert("hs_reference_number".into(), reference.clone());
    }
    Some(properties)
}

/// The words that name a payment in its timeline note: how a note already made is recognised.
pub fn payment_note_marker(payment: &str) -> String {
    format!("(QuickBooks payment {payment})")
}

/// The timeline note of a payment on an invoice: amount, date, method and reference.
pub fn payment_note(payment: &QboPayment, invoice: &QboInvoice) -> Option<String> {
    let amount = payment.applied.get(&invoice.id)?;
    let mut body = format!(
        "<strong>Payment received in QuickBooks</strong>: {} {amount:.2} on invoice {}",
        payment.currency,
        invoice.number.as_deref().unwrap_or(&invoice.id),
        amount = amount.amount()
    );
    if let Some(date) = &payment.date {
        body.push_str(&format!(", {date}"));
    }
    if let Some(method) = &payment.method {
        body.push_str(&format!(", by {method}"));
    }
    if let Some(reference) = &payment.reference {
        body.push_str(&format!(", reference {reference}"));
    }
    body.push(' ');
    body.push_str(&payment_note_marker(&payment.id));
    Some(body)
}

/// The deal properties from the deal's most recently updated invoice (HubSpot's properties).
pub fn deal_properties(latest: &BTreeMap<String, Option<String>>) -> BTreeMap<String, String> {
    let get = |name: &str| latest.get(name).cloned().flatten().unwrap_or_default();
    let billed = Some(get("hs_amount_billed"))
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| get(QBO_TOTAL_PROPERTY));
    let due = get("hs_due_date");
    BTreeMap::from([
        ("qbo_invoice_amount_billed".to_owned(), billed),
        (
            "qbo_invoice_recipient".to_owned(),
            get(QBO_RECIPIENT_PROPERTY),
        ),
        ("qbo_invoice_number".to_owned(), get("hs_number")),
        ("qbo_invoice_status".to_owned(), get("hs_invoice_status")),
        (
            "qbo_invoice_due_date".to_owned(),
            due.get(..10).unwrap_or(&due).to_owned(),
        ),
    ])
}

// S4: QBO sales-form custom fields (the first three string fields) ↔ HubSpot properties.

/// The QBO field name of custom field slot 1, 2 or 3 in a mapping (`CustomField2`).
pub const CUSTOM_FIELD_PREFIX: &str = "CustomField";

/// The slot a mapping's QBO field names (`CustomField2` → `"2"`), if it names one.
pub fn custom_field_slot(qbo_field: &str) -> Option<&str> {
    qbo_field
        .strip_prefix(CUSTOM_FIELD_PREFIX)
        .filter(|slot| matches!(*slot, "1" | "2" | "3"))
}

/// The custom-field mappings among an invoice's mappings.
pub fn custom_field_mappings(mappings: &[CustomMapping]) -> Vec<&CustomMapping> {
    mappings
        .iter()
        .filter(|m| custom_field_slot(&m.qbo_field).is_some())
        .collect()
}

/// The values of a QBO invoice's custom fields for the mappings flowing to HubSpot, by HubSpot
/// property (fields without a value are left out).
pub fn custom_values(raw: &Value, mappings: &[CustomMapping]) -> BTreeMap<String, String> {
    let fields: Vec<&Value> = raw
        .get("CustomField")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    custom_field_mappings(mappings)
        .into_iter()
        .filter(|m| m.direction != MappingDirection::HubSpotToQbo)
        .filter_map(|m| {
            let slot = custom_field_slot(&m.qbo_field)?;
            let value = fields
                .iter()
                .find(|f| match f.get("DefinitionId") {
                    Some(Value::String(id)) => id == slot,
                    Some(Value::Number(id)) => id.to_string() == slot,
                    _ => false,
                })
                .and_then(|f| text(f, &["StringValue"]))?;
            Some((m.hubspot_property.clone(), value.to_owned()))
        })
        .collect()
}

/// The custom fields of a QBO invoice made from HubSpot properties.
pub fn custom_fields_for_qbo(
    properties: &HubSpotProperties,
    mappings: &[CustomMapping],
) -> Vec<Value> {
    custom_field_mappings(mappings)
        .into_iter()
        .filter(|m| m.direction != MappingDirection::QboToHubSpot)
        .filter_map(|m| {
            let slot = custom_field_slot(&m.qbo_field)?;
            let value = property(properties, &m.hubspot_property)?;
            Some(serde_json::json!({"DefinitionId": slot, "Type": "StringType", "StringValue": value}))
        })
        .collect()
}

/// What of an invoice's custom fields went to HubSpot, as one comparable text: an invoice whose
/// text changes (a mapping added) is written again.
pub fn custom_fingerprint(values: &BTreeMap<String, String>) -> String {
    values
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";")
}

// HubSpot → QBO (two-way, opt-in).

/// HubSpot invoice properties that go to QBO on updates of invoices made in HubSpot (S12), with
/// the QBO field each becomes.
pub const UPDATED_FIELDS: [(&str, &str); 3] = [
    ("hs_due_date", "DueDate"),
    ("hs_purchase_order_number", "PONumber"),
    ("hs_comments", "CustomerMemo"),
];

/// Line item properties read to book a HubSpot line in QBO.
pub const LINE_PROPERTIES: [&str; 7] = [
    "name",
    "description",
    "quantity",
    "price",
    "hs_product_id",
    "hs_sku",
    "hs_tax_rate_group_id",
];

/// A HubSpot line item as booked in QBO.
#[derive(Debug, Clone, PartialEq)]
pub struct HubSpotLine {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub quantity: Decimal,
    pub price: Money,
    pub product_id: Option<String>,
    pub sku: Option<String>,
    pub tax_rate: Option<String>,
}

type HubSpotProperties = BTreeMap<String, Option<String>>;

fn property<'a>(properties: &'a HubSpotProperties, name: &str) -> Option<&'a str> {
    properties
        .get(name)
        .and_then(|v| v.as_deref())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

impl HubSpotLine {
    /// The QBO item this line is booked on, if it matches one: its product's ledger link
    /// (`linked`, by product id), else the item of its SKU (`by_sku`, by lower-cased SKU).
    pub fn matched_item<'a>(
        &self,
        linked: &'a HashMap<String, String>,
        by_sku: &'a HashMap<String, String>,
    ) -> Option<&'a String> {
        self.product_id
            .as_ref()
            .and_then(|p| linked.get(p))
            .or_else(|| {
                self.sku
                    .as_ref()
                    .and_then(|s| by_sku.get(&s.to_lowercase()))
            })
    }

    pub fn read(id: &str, properties: &HubSpotProperties) -> Self {
        let number = |name: &str| property(properties, name).and_then(|v| Money::parse(v).ok());
        Self {
            id: id.to_owned(),
            name: property(properties, "name").unwrap_or("Item").to_owned(),
            description: property(properties, "description").map(str::to_owned),
            quantity: number("quantity").map_or(Decimal::ONE, Money::amount),
            price: number("price").unwrap_or(Money::ZERO),
            product_id: property(properties, "hs_product_id").map(str::to_owned),
            sku: property(properties, "hs_sku").map(str::to_owned),
            tax_rate: property(properties, "hs_tax_rate_group_id").map(str::to_owned),
        }
    }
}

/// The date of a HubSpot date-time, as HubSpot writes it (`2026-03-14T00:00:00Z`) or in epoch
/// milliseconds (`1773446400000`) → `2026-03-14`.
fn date_part(value: &str) -> Option<String> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let ms: i64 = value.parse().ok()?;
        let at = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).ok()?;
        return Some(format!(
            "{:04}-{:02}-{:02}",
            at.year(),
            u8::from(at.month()),
            at.day()
        ));
    }
    let date = value.get(..10)?;
    let shaped = date.bytes().enumerate().all(|(i, b)| match i {
        4 | 7 => b == b'-',
        _ => b.is_ascii_digit(),
    });
    shaped.then(|| date.to_owned())
}

/// The QBO invoice for a HubSpot invoice: its customer, its lines on the items they were
/// matched to (`items`, by line id) with their tax codes, its dates, and its number when the
/// company numbers its invoices itself (`custom_numbers`).
pub fn qbo_invoice(
    invoice: &HubSpotProperties,
    customer: &str,
    lines: &[HubSpotLine],
    items: &HashMap<String, String>,
    custom_numbers: bool,
    tax: Option<&crate::settings::TaxMapping>,
) -> serde_json::Map<String, Value> {
    let mut body = serde_json::Map::new();
    body.insert(
        "CustomerRef".into(),
        serde_json::json!({ "value": customer }),
    );
    if let Some(date) = property(invoice, "hs_invoice_date").and_then(date_part) {
        body.insert("TxnDate".into(), Value::String(date));
    }
    if custom_numbers {
        if let Some(number) = property(invoice, "hs_number") {
            body.insert("DocNumber".into(), Value::String(number.to_owned()));
        }
    }
    for (name, value) in updated_fields(invoice) {
        body.insert(name.into(), value);
    }
    let lines: Vec<Value> = lines
        .iter()
        .filter_map(|line| {
            let item = items.get(&line.id)?;
            let amount = line
                .price
                .checked_mul(line.quantity)
                .map(Money::round_cents)
                .unwrap_or(Money::ZERO);
            let mut detail = serde_json::json!({
                "ItemRef": {"value": item},
                "Qty": Money::new(line.quantity),
                "UnitPrice": line.price,
            });
            if let Some(tax) = tax {
                detail["TaxCodeRef"] =
                    serde_json::json!({"value": tax.code_for(line.tax_rate.as_deref())});
            }
            let mut line_json = serde_json::json!({
                "DetailType": "SalesItemLineDetail",
                "Amount": amount,
                "SalesItemLineDetail": detail,
            });
            let description = line
                .description
                .clone()
                .unwrap_or_else(|| line.name.clone());
            line_json["Description"] = Value::String(description);
            Some(line_json)
        })
        .collect();
    body.insert("Line".into(), Value::Array(lines));
    body
}

/// S15: every item line takes the service date (from a HubSpot date-time or date).
pub fn set_service_dates(body: &mut serde_json::Map<String, Value>, date: &str) {
    let Some(date) = date_part(date.trim()) else {
        return;
    };
    for line in body
        .get_mut("Line")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(detail) = line
            .get_mut("SalesItemLineDetail")
            .and_then(Value::as_object_mut)
        {
            detail.insert("ServiceDate".into(), Value::String(date.clone()));
        }
    }
}

/// The QBO fields of the S12 properties a HubSpot invoice has.
pub fn updated_fields(invoice: &HubSpotProperties) -> Vec<(&'static str, Value)> {
    UPDATED_FIELDS
        .iter()
        .filter_map(|(hubspot, qbo)| {
            let value = property(invoice, hubspot)?;
            Some(match *qbo {
                "DueDate" => (*qbo, Value::String(date_part(value)?)),
                "CustomerMemo" => (*qbo, serde_json::json!({ "value": value })),
                _ => (*qbo, Value::String(value.to_owned())),
            })
        })
        .collect()
}

/// What of a HubSpot invoice goes to QBO on updates (S12), as one comparable text.
pub fn updated_fingerprint(invoice: &HubSpotProperties) -> String {
    updated_fields(invoice)
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// The shape of a QBO invoice that an edit in QBO must keep for an invoice made in HubSpot
/// (S13): its lines (item, quantity, price, in order) and its tax. Service dates, other fields,
/// payments and credits may change.
#[derive(Debug, Clone, PartialEq)]
pub struct InvoiceShape {
    pub lines: Vec<(String, Decimal, Money)>,
    pub tax: Money,
}

impl InvoiceShape {
    pub fn of(invoice: &QboInvoice) -> Self {
        Self {
            lines: invoice
                .lines
                .iter()
                .map(|l| {
                    (
                        l.item_id.clone().unwrap_or_else(|| l.name.clone()),
                        l.quantity.normalize(),
                        Money::new(l.unit_price.amount().normalize()),
                    )
                })
                .collect(),
            tax: invoice.tax,
        }
    }

    /// As kept in the ledger.
    pub fn text(&self) -> String {
        let lines: Vec<String> = self
            .lines
            .iter()
            .map(|(item, quantity, price)| format!("{item}*{quantity}@{price}"))
            .collect();
        format!("{}|tax={}", lines.join(","), self.tax)
    }

    pub fn parse(text: &str) -> Option<Self> {
        let (lines, tax) = text.rsplit_once("|tax=")?;
        let lines = if lines.is_empty() {
            Vec::new()
        } else {
            lines
                .split(',')
                .map(|line| {
                    let (item, rest) = line.rsplit_once('*')?;
                    let (quantity, price) = rest.split_once('@')?;
                    Some((
                        item.to_owned(),
                        Money::parse(quantity).ok()?.amount(),
                        Money::parse(price).ok()?,
                    ))
                })
                .collect::<Option<Vec<_>>>()?
        };
        Some(Self {
            lines,
            tax: Money::parse(tax).ok()?,
        })
    }
}

/// The edits made in QBO to an invoice made in HubSpot that cannot sync back (S13): empty when
/// the edit is allowed.
pub fn forbidden_edits(
    before: &InvoiceShape,
    before_payments: &[String],
    now: &QboInvoice,
) -> Vec<&'static str> {
    let after = InvoiceShape::of(now);
    let mut found = Vec::new();
    let items = |shape: &InvoiceShape| {
        let mut items: Vec<String> = shape.lines.iter().map(|l| l.0.clone()).collect();
        items.sort();
        items
    };
    if items(before) != items(&after) {
        found.push("lines were added or removed");
    } else if before.lines != after.lines {
        found.push("line prices or quantities were changed");
    }
    if after.tax != before.tax {
        found.push(if before.tax == Money::ZERO {
            "tax was added"
        } else {
            "the tax was changed"
        });
    }
    if before_payments.iter().any(|p| !now.payment_ids.contains(p)) {
        found.push("a payment was removed");
    }
    found
}

/// The properties the integration makes for itself: (HubSpot object type, group, name,
/// label, type, unique). Payments' is made only where the portal has payments.
pub type OwnProperty = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
);

pub const OWN_PROPERTIES: [OwnProperty; 10] = [
    (
        "invoices",
        "invoiceinformation",
        QBO_ID_PROPERTY,
        "QuickBooks invoice id",
        "string",
        true,
    ),
    (
        "invoices",
        "invoiceinformation",
        QBO_TOTAL_PROPERTY,
        "QuickBooks total",
        "number",
        false,
    ),
    (
        "invoices",
        "invoiceinformation",
        QBO_BALANCE_PROPERTY,
        "QuickBooks balance due",
        "number",
        false,
    ),
    (
        "invoices",
        "invoiceinformation",
        QBO_RECIPIENT_PROPERTY,
        "QuickBooks customer",
        "string",
        false,
    ),
    (
        "line_items",
        "lineiteminformation",
        QBO_LINE_PROPERTY,
        "QuickBooks invoice line",
        "string",
        true,
    ),
    (
        "deals",
        "dealinformation",
        DEAL_PROPERTIES[0].0,
        DEAL_PROPERTIES[0].1,
        DEAL_PROPERTIES[0].2,
        false,
    ),
    (
        "deals",
        "dealinformation",
        DEAL_PROPERTIES[1].0,
        DEAL_PROPERTIES[1].1,
        DEAL_PROPERTIES[1].2,
        false,
    ),
    (
        "deals",
        "dealinformation",
        DEAL_PROPERTIES[2].0,
        DEAL_PROPERTIES[2].1,
        DEAL_PROPERTIES[2].2,
        false,
    ),
    (
        "deals",
        "dealinformation",
        DEAL_PROPERTIES[3].0,
        DEAL_PROPERTIES[3].1,
        DEAL_PROPERTIES[3].2,
        false,
    ),
    (
        "deals",
        "dealinformation",
        DEAL_PROPERTIES[4].0,
        DEAL_PROPERTIES[4].1,
        DEAL_PROPERTIES[4].2,
        false,
    ),
];

pub const PAYMENT_PROPERTY: OwnProperty = (
    "commerce_payments",
    "commercepaymentinformation",
    QBO_PAYMENT_PROPERTY,
    "QuickBooks payment",
    "string",
    true,
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn invoice() -> Value {
        json!({"Id": "130", "SyncToken": "2", "DocNumber": "1037", "TxnDate": "2026-03-14",
            "DueDate": "2026-04-13", "CurrencyRef": {"value": "EUR"},
            "CustomerRef": {"value": "24", "name": "Sonnenschein Family Store"},
            "Line": [
                {"Id": "1", "Amount": 275.0, "Description": "Rock Fountain", "DetailType": "SalesItemLineDetail",
                 "SalesItemLineDetail": {"ItemRef": {"value": "5", "name": "Rock Fountain"}, "Qty": 1, "UnitPrice": 275}},
                {"Id": "2", "Amount": 60.25, "DetailType": "SalesItemLineDetail",
                 "SalesItemLineDetail": {"ItemRef": {"value": "6", "name": "Pump"}, "Qty": 3, "UnitPrice": 20.0833}},
                {"Amount": 335.25, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}},
                {"Id": "3", "Amount": 10, "DetailType": "DiscountLineDetail", "DiscountLineDetail": {"PercentBased": false}}],
            "TxnTaxDetail": {"TotalTax": 26.82},
            "TotalAmt": 352.07, "Balance": 100.07,
            "LinkedTxn": [{"TxnId": "100", "TxnType": "Estimate"}, {"TxnId": "201", "TxnType": "Payment"}]})
    }

    #[test]
    fn an_invoice_is_read_with_its_lines_payments_and_state() {
        let read = QboInvoice::read(&invoice()).unwrap();
        assert_eq!(read.sync_token, Some(2));
        assert_eq!(read.lines.len(), 3, "the subtotal line is no line");
        assert_eq!(read.payment_ids, ["201"]);
        assert_eq!(read.item_ids(), ["5", "6"]);
        assert!(!read.voided && !read.deleted);
        assert_eq!(hubspot_status(&read), "open");
        let voided = json!({"Id": "9", "TotalAmt": 0, "PrivateNote": "Voided", "Line": []});
        assert_eq!(
            hubspot_status(&QboInvoice::read(&voided).unwrap()),
            "voided"
        );
        let stub = json!({"Id": "9", "status": "Deleted", "domain": "QBO"});
        assert!(QboInvoice::read(&stub).unwrap().deleted);
        assert!(QboInvoice::read(&json!({"DocNumber": "1"})).is_none());
    }

    #[test]
    fn line_items_add_up_to_the_qbo_total() {
        let read = QboInvoice::read(&invoice()).unwrap();
        let products = HashMap::from([("5".to_owned(), "7001".to_owned())]);
        let items = line_items("r1", &read, &products);
        let cases = [
            ("r1-130-1", "1", "275", Some("7001")),
            // 3 × 20.0833 is not 60.25: written as one of its amount.
            ("r1-130-2", "1", "60.25", None),
            ("r1-130-3", "1", "-10", None),
            ("r1-130-tax", "1", "26.82", None),
        ];
        assert_eq!(items.len(), cases.len());
        let mut total = Decimal::ZERO;
        for (item, (key, quantity, price, product)) in items.iter().zip(cases) {
            assert_eq!(item.key, key);
            assert_eq!(item.properties["quantity"], quantity, "{key}");
            assert_eq!(item.properties["price"], price, "{key}");
            assert_eq!(
                item.properties.get("hs_product_id").map(String::as_str),
                product
            );
            assert_eq!(item.properties["hs_line_item_currency_code"], "EUR");
            let q: Decimal = item.properties["quantity"].parse().unwrap();
            let p: Decimal = item.properties["price"].parse().unwrap();
            total += q * p;
        }
        assert_eq!(total, read.total.amount());
    }

    #[test]
    fn invoice_properties_carry_the_qbo_amounts_and_dates() {
        let properties = invoice_properties(&QboInvoice::read(&invoice()).unwrap());
        let expected = [
            (QBO_ID_PROPERTY, "130"),
            ("hs_number", "1037"),
            ("hs_currency", "EUR"),
            ("hs_invoice_date", "2026-03-14T00:00:00Z"),
            ("hs_due_date", "2026-04-13T00:00:00Z"),
            (QBO_TOTAL_PROPERTY, "352.07"),
            (QBO_BALANCE_PROPERTY, "100.07"),
            (QBO_RECIPIENT_PROPERTY, "Sonnenschein Family Store"),
        ];
        for (name, value) in expected {
            assert_eq!(
                properties.get(name).map(String::as_str),
                Some(value),
                "{name}"
            );
        }
        assert!(!properties.contains_key("hs_invoice_status"));
        assert!(
            !properties.contains_key("hs_amount_billed"),
            "HubSpot computes it"
        );
    }

    #[test]
    fn a_payment_becomes_one_hubspot_payment_and_one_note_per_invoice() {
        let raw = json!({"Id": "201", "TxnDate": "2026-03-20", "PaymentRefNum": "PMT-88",
            "PaymentMethodRef": {"value": "2", "name": "Check"}, "TotalAmt": 300,
            "Line": [{"Amount": 250.0, "LinkedTxn": [{"TxnId": "130", "TxnType": "Invoice"}]},
                     {"Amount": 50, "LinkedTxn": [{"TxnId": "131", "TxnType": "Invoice"}]}]});
        let payment = QboPayment::read(&raw).unwrap();
        assert_eq!(payment.applied.len(), 2);
        let properties = payment_properties("r1", &payment, "130").unwrap();
        assert_eq!(properties["hs_initial_amount"], "250");
        assert_eq!(properties[QBO_PAYMENT_PROPERTY], "r1-201-130");
        assert_eq!(properties["hs_initiated_date"], "2026-03-20T00:00:00Z");
        assert!(payment_properties("r1", &payment, "999").is_none());
        let invoice = QboInvoice::read(&invoice()).unwrap();
        let note = payment_note(&payment, &invoice).unwrap();
        assert_eq!(
            note,
            "<strong>Payment received in QuickBooks</strong>: USD 250.00 on invoice 1037, \
             2026-03-20, by Check, reference PMT-88 (QuickBooks payment 201)"
        );
        assert!(note.contains(&payment_note_marker("201")));
    }

    #[test]
    fn a_hubspot_invoice_becomes_a_qbo_invoice_on_its_matched_items() {
        let props = |pairs: &[(&str, &str)]| -> HubSpotProperties {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned())))
                .collect()
        };
        let invoice = props(&[
            ("hs_number", "INV-7"),
            ("hs_invoice_date", "2026-03-14T09:00:00Z"),
            ("hs_due_date", "2026-04-13T00:00:00Z"),
            ("hs_comments", "Thanks"),
        ]);
        let lines = [
            HubSpotLine::read(
                "11",
                &props(&[
                    ("name", "Widget"),
                    ("quantity", "3"),
                    ("price", "19.99"),
                    ("hs_tax_rate_group_id", "zero"),
                ]),
            ),
            HubSpotLine::read("12", &props(&[("name", "Setup"), ("price", "50")])),
        ];
        let items = HashMap::from([
            ("11".to_owned(), "5".to_owned()),
            ("12".to_owned(), "99".to_owned()),
        ]);
        let body = qbo_invoice(&invoice, "24", &lines, &items, false, None);
        assert_eq!(body["CustomerRef"]["value"], "24");
        assert_eq!(body["TxnDate"], "2026-03-14");
        assert_eq!(body["DueDate"], "2026-04-13");
        assert_eq!(body["CustomerMemo"]["value"], "Thanks");
        assert!(body.get("DocNumber").is_none(), "QBO numbers it");
        let line = &body["Line"][0];
        assert_eq!(line["Amount"].to_string(), "59.97");
        assert_eq!(line["SalesItemLineDetail"]["ItemRef"]["value"], "5");
        assert_eq!(line["SalesItemLineDetail"]["Qty"].to_string(), "3");
        assert!(line["SalesItemLineDetail"].get("TaxCodeRef").is_none());
        assert_eq!(body["Line"][1]["Amount"].to_string(), "50");
        let tax = crate::settings::TaxMapping {
            default_tax_code: "2".into(),
            rates: vec![crate::settings::TaxRateMapping {
                hubspot: "zero".into(),
                qbo: "4".into(),
            }],
        };
        let mut body = qbo_invoice(&invoice, "24", &lines, &items, true, Some(&tax));
        set_service_dates(&mut body, "2026-02-28T00:00:00Z");
        assert_eq!(
            body["Line"][1]["SalesItemLineDetail"]["ServiceDate"],
            "2026-02-28"
        );
        set_service_dates(&mut body, "not a date");
        assert_eq!(
            body["Line"][1]["SalesItemLineDetail"]["ServiceDate"],
            "2026-02-28"
        );
        set_service_dates(&mut body, "1773446400000");
        assert_eq!(
            body["Line"][1]["SalesItemLineDetail"]["ServiceDate"],
            "2026-03-14"
        );
        set_service_dates(&mut body, "2026-02-28");
        assert_eq!(
            body["Line"][1]["SalesItemLineDetail"]["ServiceDate"],
            "2026-02-28"
        );
        assert_eq!(body["DocNumber"], "INV-7");
        assert_eq!(
            body["Line"][0]["SalesItemLineDetail"]["TaxCodeRef"]["value"],
            "4"
        );
        assert_eq!(
            body["Line"][1]["SalesItemLineDetail"]["TaxCodeRef"]["value"],
            "2"
        );
        assert_eq!(
            updated_fingerprint(&invoice),
            r#"DueDate="2026-04-13";CustomerMemo={"value":"Thanks"}"#
        );
    }

    #[test]
    fn qbo_edits_of_hubspot_invoices_are_told_apart() {
        let base = QboInvoice::read(&invoice()).unwrap();
        let shape = InvoiceShape::of(&base);
        assert_eq!(InvoiceShape::parse(&shape.text()), Some(shape.clone()));
        let edited = |edit: &dyn Fn(&mut Value)| {
            let mut raw = invoice();
            edit(&mut raw);
            QboInvoice::read(&raw).unwrap()
        };
        let paid = vec!["201".to_owned()];
        let cases: Vec<(&str, QboInvoice, Vec<&str>)> = vec![
            ("nothing", base.clone(), vec![]),
            (
                "a field and a service date",
                edited(&|r| {
                    r["DueDate"] = json!("2026-05-01");
                    r["Line"][0]["SalesItemLineDetail"]["ServiceDate"] = json!("2026-03-01");
                }),
                vec![],
            ),
            (
                "another payment",
                edited(&|r| {
                    r["LinkedTxn"]
                        .as_array_mut()
                        .unwrap()
                        .push(json!({"TxnId": "202", "TxnType": "Payment"}));
                }),
                vec![],
            ),
            (
                "a line added",
                edited(&|r| {
                    let extra = r["Line"][0].clone();
                    r["Line"].as_array_mut().unwrap().push(extra);
                }),
                vec!["lines were added or removed"],
            ),
            (
                "a price",
                edited(&|r| r["Line"][0]["SalesItemLineDetail"]["UnitPrice"] = json!(300)),
                vec!["line prices or quantities were changed"],
            ),
            (
                "tax",
                edited(&|r| r["TxnTaxDetail"]["TotalTax"] = json!(30)),
                vec!["the tax was changed"],
            ),
            (
                "a payment removed",
                edited(&|r| r["LinkedTxn"] = json!([])),
                vec!["a payment was removed"],
            ),
        ];
        for (what, now, expected) in cases {
            assert_eq!(forbidden_edits(&shape, &paid, &now), expected, "{what}");
        }
        let untaxed = InvoiceShape {
            tax: Money::ZERO,
            ..shape
        };
        assert_eq!(forbidden_edits(&untaxed, &[], &base), ["tax was added"]);
    }

    #[test]
    fn custom_fields_map_by_slot_each_way() {
        use crate::settings::FieldKind;
        let mapping = |property: &str, field: &str, direction| CustomMapping {
            hubspot_property: property.into(),
            qbo_field: field.into(),
            direction,
            kind: FieldKind::Text,
        };
        let mappings = [
            mapping("crew", "CustomField1", MappingDirection::Both),
            mapping("po_ref", "CustomField2", MappingDirection::HubSpotToQbo),
            mapping("memo", "CustomerMemo", MappingDirection::Both),
            mapping("bad", "CustomField4", MappingDirection::Both),
        ];
        assert_eq!(custom_field_mappings(&mappings).len(), 2);
        let raw = json!({"CustomField": [
            {"DefinitionId": "1", "Name": "Crew #", "Type": "StringType", "StringValue": "102"},
            {"DefinitionId": "2", "Name": "PO", "Type": "StringType", "StringValue": "X"},
            {"DefinitionId": "3", "Name": "Other", "Type": "StringType"}]});
        let values = custom_values(&raw, &mappings);
        assert_eq!(
            values,
            BTreeMap::from([("crew".to_owned(), "102".to_owned())])
        );
        assert_eq!(custom_fingerprint(&values), "crew=102");
        assert_eq!(custom_fingerprint(&BTreeMap::new()), "");
        let properties: HubSpotProperties = [("crew", "7"), ("po_ref", "PO-9")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Some(v.to_owned())))
            .collect();
        assert_eq!(
            custom_fields_for_qbo(&properties, &mappings),
            [
                json!({"DefinitionId": "1", "Type": "StringType", "StringValue": "7"}),
                json!({"DefinitionId": "2", "Type": "StringType", "StringValue": "PO-9"}),
            ]
        );
    }

    #[test]
    fn deal_properties_come_from_the_invoice() {
        let latest = BTreeMap::from([
            ("hs_amount_billed".to_owned(), Some("352.07".to_owned())),
            ("hs_number".to_owned(), Some("1037".to_owned())),
            ("hs_invoice_status".to_owned(), Some("paid".to_owned())),
            (
                "hs_due_date".to_owned(),
                Some("2026-04-13T00:00:00Z".to_owned()),
            ),
            (QBO_RECIPIENT_PROPERTY.to_owned(), Some("Acme".to_owned())),
        ]);
        let deal = deal_properties(&latest);
        assert_eq!(deal["qbo_invoice_amount_billed"], "352.07");
        assert_eq!(deal["qbo_invoice_due_date"], "2026-04-13");
        assert_eq!(deal["qbo_invoice_status"], "paid");
        assert_eq!(deal["qbo_invoice_recipient"], "Acme");
        let without_billed =
            BTreeMap::from([(QBO_TOTAL_PROPERTY.to_owned(), Some("10".to_owned()))]);
        assert_eq!(
            deal_properties(&without_billed)["qbo_invoice_amount_billed"],
            "10"
        );
    }
}

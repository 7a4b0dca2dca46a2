//! Deterministic company generator: the same options (including `seed`) always give the same
//! customers, items, invoices, payments, estimates and sales receipts.

use super::format::{format_date, money, parse_date};
use super::seed::{ids, CompanySettings, RealmSeed, Seed};
use crate::common::prng::Prng;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashSet;
use time::Duration;

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct GenerateOptions {
    pub seed: u64,
    pub realm_id: String,
    pub company_name: String,
    pub country: String,
    pub custom_txn_numbers: bool,
    pub customers: usize,
    pub items: usize,
    pub invoices: usize,
    pub estimates: usize,
    pub sales_receipts: usize,
    /// Share of invoices that get a payment (half of those only partly paid).
    pub paid_fraction: f64,
    /// Transactions are dated in the 90 days up to this date.
    pub anchor_date: String,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            seed: 1,
            realm_id: super::seed::DEFAULT_US_REALM.into(),
            company_name: "Generated Company".into(),
            country: "US".into(),
            custom_txn_numbers: false,
            customers: 25,
            items: 10,
            invoices: 40,
            estimates: 10,
            sales_receipts: 10,
            paid_fraction: 0.5,
            anchor_date: "2026-01-01".into(),
        }
    }
}

const FIRST: &[&str] = &[
    "Amy", "Bill", "Carla", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jamal", "Kofi",
    "Lena", "Mateo", "Nora", "Olu", "Priya", "Quinn", "Rosa", "Sven", "Tara", "Uma", "Victor",
    "Wen", "Ximena", "Yusuf", "Zoe",
];
const LAST: &[&str] = &[
    "Anders", "Brooks", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Haddad", "Ito", "Jensen",
    "Kowalski", "Lopez", "Murphy", "Nakamura", "O'Brien", "Patel", "Quiroga", "Rossi", "Schmidt",
    "Tanaka", "Usman", "Vargas", "Weber", "Xu", "Young", "Zimmer",
];
const COMPANY_SUFFIX: &[&str] = &[
    "Plumbing",
    "Bakery",
    "Design Studio",
    "Landscaping",
    "Consulting",
    "Bike Shop",
    "Dental",
];
const ADJECTIVE: &[&str] = &[
    "Premium", "Basic", "Deluxe", "Compact", "Rapid", "Eco", "Pro", "Classic",
];
const NOUN: &[&str] = &[
    "Installation",
    "Widget",
    "Consultation",
    "Repair",
    "Cleaning",
    "Fountain",
    "Lighting",
    "Audit",
];

pub fn generate(options: &GenerateOptions) -> Seed {
    let mut rng = Prng::new(options.seed);
    let us = options.country == "US";
    let anchor = parse_date(&options.anchor_date).unwrap_or(time::macros::date!(2026 - 01 - 01));
    let date = |rng: &mut Prng| format_date(anchor - Duration::days(rng.below(90) as i64));
    let tax_ref = || json!({"value": if us { "NON".to_string() } else { ids::TAX_CODE_STANDARD.to_string() }});

    // Customers: some without email, some sharing a company name.
    let mut customers = Vec::new();
    let mut names = HashSet::new();
    let mut companies: Vec<String> = Vec::new();
    for n in 1..=options.customers {
        let first = rng.pick(FIRST).copied().unwrap_or("Sam");
        let last = rng.pick(LAST).copied().unwrap_or("Lee");
        let mut display = format!("{first} {last}");
        let mut k = 2;
        while !names.insert(display.to_lowercase()) {
            display = format!("{first} {last} {k}");
            k += 1;
        }
        let company = if !companies.is_empty() && rng.chance(0.15) {
            rng.pick(&companies).cloned().unwrap_or_default()
        } else {
            let c = format!(
                "{last} {}",
                rng.pick(COMPANY_SUFFIX).copied().unwrap_or("Co")
            );
            companies.push(c.clone());
            c
        };
        let mut customer = json!({
            "Id": n.to_string(), "GivenName": first, "FamilyName": last, "DisplayName": display, "CompanyName": company,
            "BillAddr": {"Line1": format!("{} Main St", 10 + rng.below(900)), "City": "Springfield", "PostalCode": format!("{:05}", rng.below(99_999))}
        });
        if let Some(map) = customer.as_object_mut() {
            if rng.chance(0.8) {
                let local: String = format!("{first}.{last}{n}")
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
                    .collect();
                map.insert(
                    "PrimaryEmailAddr".into(),
                    json!({"Address": format!("{}@example.com", local.to_lowercase())}),
                );
            }
            if rng.chance(0.6) {
                map.insert("PrimaryPhone".into(), json!({"FreeFormNumber": format!("(555) {:03}-{:04}", rng.below(1000), rng.below(10_000))}));
            }
        }
        customers.push(customer);
    }

    // Items: with and without SKUs. Ids 1 and 2 are the base-data items.
    let mut items = Vec::new();
    let mut prices = Vec::new();
    let mut item_names = HashSet::new();
    for n in 0..options.items {
        let id = ids::ITEM_HOURS + 1 + n as u64;
        let mut name = format!(
            "{} {}",
            rng.pick(ADJECTIVE).copied().unwrap_or("Basic"),
            rng.pick(NOUN).copied().unwrap_or("Widget")
        );
        let mut k = 2;
        while !item_names.insert(name.to_lowercase()) || name == "Services" || name == "Hours" {
            name = format!("{name} {k}");
            k += 1;
        }
        let price = Decimal::new(500 + rng.below(49_500) as i64, 2);
        let service = rng.chance(0.5);
        let mut item = json!({
            "Id": id.to_string(), "Name": name, "Type": if service { "Service" } else { "NonInventory" },
            "UnitPrice": money(price), "Description": format!("{name} (generated)"),
            "IncomeAccountRef": {"value": ids::ACCOUNT_SALES_INCOME.to_string()}
        });
        if let Some(map) = item.as_object_mut() {
            if rng.chance(0.6) {
                map.insert("Sku".into(), Value::String(format!("SKU-{:05}", 1000 + n)));
            }
            if !us {
                map.insert("SalesTaxCodeRef".into(), tax_ref());
            }
        }
        items.push(item);
        prices.push((id, price));
    }
    if prices.is_empty() {
        prices.push((ids::ITEM_HOURS, Decimal::from(100)));
    }

    let lines = |rng: &mut Prng| -> (Vec<Value>, Decimal) {
        let mut total = Decimal::ZERO;
        let count = rng.between(1, 4);
        let lines = (0..count)
            .map(|_| {
                let (item, price) = *rng.pick(&prices).unwrap_or(&(ids::ITEM_HOURS, Decimal::from(100)));
                let qty = Decimal::from(rng.between(1, 10));
                let amount = qty * price;
                total += amount;
                json!({"DetailType": "SalesItemLineDetail", "Amount": money(amount),
                       "SalesItemLineDetail": {"ItemRef": {"value": item.to_string()}, "Qty": money(qty), "UnitPrice": money(price), "TaxCodeRef": tax_ref()}})
            })
            .collect();
        (lines, total)
    };
    let customer_count = options.customers.max(1) as u64;
    let doc = |prefix: &str, n: usize| json!(format!("{prefix}-{n:05}"));

    let mut invoices = Vec::new();
    let mut payments = Vec::new();
    for n in 1..=options.invoices {
        let customer = 1 + rng.below(customer_count);
        let (line_values, total) = lines(&mut rng);
        let txn_date = date(&mut rng);
        let mut invoice = json!({"Id": n.to_string(), "CustomerRef": {"value": customer.to_string()}, "TxnDate": txn_date, "Line": line_values});
        if options.custom_txn_numbers {
            if let Some(map) = invoice.as_object_mut() {
                map.insert("DocNumber".into(), doc("INV", n));
            }
        }
        invoices.push(invoice);
        if options.customers > 0 && rng.chance(options.paid_fraction) {
            let paid = if rng.chance(0.5) {
                total
            } else {
                (total / Decimal::from(2)).round_dp(2)
            };
            payments.push(json!({
                "Id": (payments.len() + 1).to_string(), "CustomerRef": {"value": customer.to_string()}, "TotalAmt": money(paid),
                "TxnDate": txn_date, "DepositToAccountRef": {"value": ids::ACCOUNT_UNDEPOSITED_FUNDS.to_string()},
                "Line": [{"Amount": money(paid), "LinkedTxn": [{"TxnId": n.to_string(), "TxnType": "Invoice"}]}]
            }));
        }
    }
    let mut estimates = Vec::new();
    for n in 1..=options.estimates {
        let customer = 1 + rng.below(customer_count);
        let (line_values, _) = lines(&mut rng);
        let mut estimate = json!({"Id": n.to_string(), "CustomerRef": {"value": customer.to_string()}, "TxnDate": date(&mut rng), "Line": line_values});
        if options.custom_txn_numbers {
            if let Some(map) = estimate.as_object_mut() {
                map.insert("DocNumber".into(), doc("EST", n));
            }
        }
        estimates.push(estimate);
    }
    let mut receipts = Vec::new();
    for n in 1..=options.sales_receipts {
        let (line_values, _) = lines(&mut rng);
        let mut receipt = json!({"Id": n.to_string(), "TxnDate": date(&mut rng), "Line": line_values,
                                 "DepositToAccountRef": {"value": ids::ACCOUNT_UNDEPOSITED_FUNDS.to_string()}});
        if let Some(map) = receipt.as_object_mut() {
            if options.customers > 0 && rng.chance(0.7) {
                map.insert(
                    "CustomerRef".into(),
                    json!({"value": (1 + rng.below(customer_count)).to_string()}),
                );
            }
            if options.custom_txn_numbers {
                map.insert("DocNumber".into(), doc("SR", n));
            }
        }
        receipts.push(receipt);
    }
    if options.customers == 0 {
        invoices.clear();
        estimates.clear();
    }

    let mut realm = RealmSeed::new(
        options.realm_id.clone(),
        CompanySettings {
            company_name: options.company_name.clone(),
            country: options.country.clone(),
            custom_txn_numbers: options.custom_txn_numbers,
            custom_fields: vec!["Crew #".into()],
            ..CompanySettings::default()
        },
    );
    for (name, objects) in [
        ("Customer", customers),
        ("Item", items),
        ("Invoice", invoices),
        ("Payment", payments),
        ("Estimate", estimates),
        ("SalesReceipt", receipts),
    ] {
        if !objects.is_empty() {
            realm.entities.insert(name.into(), objects);
        }
    }
    Seed {
        realms: vec![realm],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qbo::entity::EntityKind;
    use crate::qbo::seed::load;
    use crate::qbo::store::QboState;

    #[test]
    fn same_seed_same_company() {
        let options = GenerateOptions::default();
        assert_eq!(generate(&options), generate(&options));
        let other = GenerateOptions {
            seed: 2,
            ..GenerateOptions::default()
        };
        assert_ne!(generate(&options), generate(&other));
    }

    #[test]
    fn generated_companies_load_cleanly() {
        for (country, custom) in [("US", false), ("GB", true)] {
            let options = GenerateOptions {
                country: country.into(),
                custom_txn_numbers: custom,
                customers: 60,
                items: 15,
                invoices: 80,
                ..GenerateOptions::default()
            };
            let mut state = QboState::default();
            let loaded = load(
                &mut state,
                &generate(&options),
                time::OffsetDateTime::now_utc(),
                time::UtcOffset::UTC,
            );
            assert!(loaded.is_ok(), "{loaded:?}");
            let realm = state.realm(&options.realm_id);
            assert!(realm.is_some_and(
                |r| r.count(EntityKind::Customer) == 60 && r.count(EntityKind::Invoice) == 80
            ));
            // Some customers have no email; some share a company name.
            let customers: Vec<&Value> = realm
                .map(|r| r.values(EntityKind::Customer).collect())
                .unwrap_or_default();
            assert!(customers
                .iter()
                .any(|c| c.get("PrimaryEmailAddr").is_none()));
            let mut seen = HashSet::new();
            assert!(customers
                .iter()
                .any(|c| !seen.insert(c.get("CompanyName").and_then(Value::as_str).unwrap_or(""))));
        }
    }
}

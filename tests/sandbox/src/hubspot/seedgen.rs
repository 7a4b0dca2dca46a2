//! Deterministic seed generator: a portal with companies, contacts (some without email, several
//! per company), products (with and without SKUs), deals in the default pipeline with line items
//! from products, quotes (signed and not), invoices and commerce payments (processing/platform
//! fees, refunds, invoice vs payment-link source), and notes — all from one seed number.

use super::format::{format_date, iso};
use super::seed::{AssocSeed, HubSeed, PortalSeed, RecordSeed, DEFAULT_PORTAL};
use crate::common::prng::Prng;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use time::{Date, Duration, OffsetDateTime};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct GenerateOptions {
    pub seed: u64,
    pub portal_id: u64,
    pub companies: usize,
    pub contacts: usize,
    pub products: usize,
    pub deals: usize,
    /// Fractions of deals that get a quote / an invoice.
    pub quote_fraction: f64,
    pub invoice_fraction: f64,
    /// Fraction of invoices with a payment; plus this many payment-link payments on deals.
    pub paid_fraction: f64,
    pub payment_link_payments: usize,
    pub notes: usize,
    /// Records are dated in the 180 days before this date (`YYYY-MM-DD`).
    pub anchor_date: String,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            seed: 1,
            portal_id: DEFAULT_PORTAL,
            companies: 10,
            contacts: 30,
            products: 8,
            deals: 20,
            quote_fraction: 0.5,
            invoice_fraction: 0.6,
            paid_fraction: 0.6,
            payment_link_payments: 3,
            notes: 10,
            anchor_date: "2026-01-01".into(),
        }
    }
}

const FIRST: &[&str] = &[
    "Ann", "Bob", "Carla", "Dev", "Eve", "Farid", "Gina", "Hiro", "Ines", "Jon", "Kira", "Luis",
    "Mona", "Nils", "Olga", "Pat",
];
const LAST: &[&str] = &[
    "Smith", "Okafor", "Nguyen", "Garcia", "Müller", "Kowalski", "Rossi", "Tanaka", "Dubois",
    "Silva", "O'Brien", "Haddad",
];
const COMPANY: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Hooli",
    "Vandelay",
    "Pied Piper",
];
const SUFFIX: &[&str] = &["Inc", "LLC", "Ltd", "GmbH", "Co"];
const PRODUCTS: &[&str] = &[
    "Consulting hour",
    "Implementation",
    "Support plan",
    "Widget",
    "Gadget",
    "Training day",
    "License seat",
    "Hardware kit",
    "Audit",
    "Design sprint",
];
const STAGES: &[&str] = &[
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
    "closedwon",
    "closedlost",
];

fn money(cents: i64) -> String {
    Decimal::new(cents, 2).to_string()
}

fn props(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect()
}

struct Gen {
    prng: Prng,
    next_id: u64,
    records: BTreeMap<String, Vec<RecordSeed>>,
    associations: Vec<AssocSeed>,
    anchor: OffsetDateTime,
}

impl Gen {
    fn add(&mut self, t: &str, properties: Map<String, Value>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.records.entry(t.into()).or_default().push(RecordSeed {
            id: Some(id),
            properties,
            updated_at: None,
        });
        id
    }

    fn link(&mut self, from: &str, from_id: u64, to: &str, to_id: u64, type_id: u32) {
        self.associations.push(AssocSeed {
            from_type: from.into(),
            from_id,
            to_type: to.into(),
            to_id,
            type_id: Some(type_id),
        });
    }

    fn date_back(&mut self, max_days: u64) -> OffsetDateTime {
        let days = self.prng.below(max_days.max(1));
        let secs = self.prng.below(86_400);
        self.anchor
            - Duration::days(i64::try_from(days).unwrap_or(0))
            - Duration::seconds(i64::try_from(secs).unwrap_or(0))
    }
}

/// Generates one portal, deterministic from `options.seed`.
pub fn generate(options: &GenerateOptions) -> HubSeed {
    let anchor = super::format::parse_date(&options.anchor_date)
        .unwrap_or_else(|| {
            Date::from_calendar_date(2026, time::Month::January, 1).unwrap_or(Date::MIN)
        })
        .midnight()
        .assume_utc();
    let mut g = Gen {
        prng: Prng::new(options.seed),
        next_id: 20_001,
        records: BTreeMap::new(),
        associations: Vec::new(),
        anchor,
    };

    // Products: about 60 % with a SKU.
    let mut products = Vec::new();
    for i in 0..options.products {
        let name = format!(
            "{} {}",
            PRODUCTS[i % PRODUCTS.len()],
            i / PRODUCTS.len() + 1
        );
        let price = 1_000 + i64::try_from(g.prng.below(200_000)).unwrap_or(0);
        let sku = g.prng.chance(0.6).then(|| format!("SKU-{:05}", 100 + i));
        let created = g.date_back(365);
        let mut p = props(&[
            ("name", json!(name)),
            ("price", json!(money(price))),
            ("description", json!(format!("{name} (generated)"))),
            ("createdate", json!(iso(created))),
        ]);
        if let Some(s) = &sku {
            p.insert("hs_sku".into(), json!(s));
        }
        let id = g.add("products", p);
        products.push((id, name, price, sku));
    }

    // Companies.
    let mut companies = Vec::new();
    for i in 0..options.companies {
        let base = COMPANY[i % COMPANY.len()];
        let name = format!(
            "{base} {} {}",
            SUFFIX[g.prng.below(SUFFIX.len() as u64) as usize],
            i + 1
        );
        let domain = format!(
            "{}{}.example.com",
            base.to_lowercase().replace(' ', ""),
            i + 1
        );
        let created = g.date_back(180);
        let id = g.add(
            "companies",
            props(&[
                ("name", json!(name)),
                ("domain", json!(domain)),
                ("city", json!("Springfield")),
                ("country", json!("United States")),
                ("createdate", json!(iso(created))),
            ]),
        );
        companies.push(id);
    }

    // Contacts: about 20 % without email; most belong to a company (several per company).
    let mut contacts = Vec::new();
    for i in 0..options.contacts {
        let first = FIRST[g.prng.below(FIRST.len() as u64) as usize];
        let last = LAST[g.prng.below(LAST.len() as u64) as usize];
        let created = g.date_back(180);
        let mut p = props(&[
            ("firstname", json!(first)),
            ("lastname", json!(last)),
            ("createdate", json!(iso(created))),
        ]);
        if !g.prng.chance(0.2) {
            p.insert(
                "email".into(),
                json!(format!(
                    "{}.{}{}@example.com",
                    first.to_lowercase(),
                    last.to_lowercase().replace(['\'', 'ü'], ""),
                    i + 1
                )),
            );
        }
        if g.prng.chance(0.3) {
            p.insert("phone".into(), json!(format!("+1 555 01{:02}", i % 100)));
        }
        let id = g.add("contacts", p);
        let company = if companies.is_empty() || g.prng.chance(0.15) {
            None
        } else {
            Some(companies[g.prng.below(companies.len() as u64) as usize])
        };
        if let Some(c) = company {
            g.link("contacts", id, "companies", c, 1);
        }
        contacts.push((id, company));
    }

    // Deals with line items; quotes and invoices with their own copies of the line items.
    let mut invoices = Vec::new();
    for i in 0..options.deals {
        let created = g.date_back(120);
        let stage = STAGES[g.prng.below(STAGES.len() as u64) as usize];
        let contact = contacts
            .get(g.prng.below(contacts.len().max(1) as u64) as usize)
            .copied();
        let mut lines = Vec::new();
        for _ in 0..(1 + g.prng.below(4)) {
            if let Some(p) = products
                .get(g.prng.below(products.len().max(1) as u64) as usize)
                .cloned()
            {
                let qty = 1 + i64::try_from(g.prng.below(5)).unwrap_or(0);
                lines.push((p, qty));
            }
        }
        let total: i64 = lines.iter().map(|((_, _, price, _), q)| price * q).sum();
        let deal = g.add(
            "deals",
            props(&[
                ("dealname", json!(format!("Deal {} — {}", i + 1, stage))),
                ("amount", json!(money(total))),
                ("pipeline", json!("default")),
                ("dealstage", json!(stage)),
                ("closedate", json!(iso(created + Duration::days(30)))),
                ("deal_currency_code", json!("USD")),
                ("createdate", json!(iso(created))),
            ]),
        );
        if let Some((c, company)) = contact {
            g.link("deals", deal, "contacts", c, 3);
            if let Some(co) = company {
                g.link("deals", deal, "companies", co, 5);
            }
        }
        let make_lines = |g: &mut Gen, parent: &str, parent_id: u64, type_id: u32| {
            for ((pid, name, price, sku), qty) in &lines {
                let mut p = props(&[
                    ("name", json!(name)),
                    ("price", json!(money(*price))),
                    ("quantity", json!(qty.to_string())),
                    ("hs_product_id", json!(pid.to_string())),
                    ("createdate", json!(iso(created))),
                ]);
                if let Some(s) = sku {
                    p.insert("hs_sku".into(), json!(s));
                }
                let li = g.add("line_items", p);
                g.link(parent, parent_id, "line_items", li, type_id);
            }
        };
        make_lines(&mut g, "deals", deal, 19);
        if g.prng.chance(options.quote_fraction) {
            let signed = g.prng.chance(0.5);
            let quote = g.add(
                "quotes",
                props(&[
                    ("hs_title", json!(format!("Quote for deal {}", i + 1))),
                    (
                        "hs_expiration_date",
                        json!(iso(created + Duration::days(60))),
                    ),
                    (
                        "hs_status",
                        json!(if signed {
                            "APPROVED"
                        } else {
                            "APPROVAL_NOT_NEEDED"
                        }),
                    ),
                    ("hs_currency", json!("USD")),
                    ("hs_quote_amount", json!(money(total))),
                    ("hs_esign_enabled", json!("true")),
                    ("hs_esign_num_signers_required", json!("1")),
                    (
                        "hs_esign_num_signers_completed",
                        json!(if signed { "1" } else { "0" }),
                    ),
                    ("createdate", json!(iso(created + Duration::days(1)))),
                ]),
            );
            g.link("quotes", quote, "deals", deal, 64);
            if let Some((c, _)) = contact {
                g.link("quotes", quote, "contacts", c, 69);
            }
            make_lines(&mut g, "quotes", quote, 67);
        }
        if g.prng.chance(options.invoice_fraction) {
            let date = created + Duration::days(2);
            let paid = g.prng.chance(options.paid_fraction);
            let status = if paid {
                "paid"
            } else if g.prng.chance(0.2) {
                "draft"
            } else {
                "open"
            };
            let invoice = g.add(
                "invoices",
                props(&[
                    ("hs_currency", json!("USD")),
                    ("hs_invoice_status", json!(status)),
                    ("hs_invoice_date", json!(iso(date))),
                    ("hs_due_date", json!(iso(date + Duration::days(30)))),
                    ("hs_number", json!(format!("INV-{:04}", 1000 + i))),
                    ("hs_amount_billed", json!(money(total))),
                    ("hs_balance_due", json!(money(if paid { 0 } else { total }))),
                    ("createdate", json!(iso(date))),
                ]),
            );
            g.link("invoices", invoice, "deals", deal, 175);
            if let Some((c, company)) = contact {
                g.link("invoices", invoice, "contacts", c, 177);
                if let Some(co) = company {
                    g.link("invoices", invoice, "companies", co, 179);
                }
            }
            make_lines(&mut g, "invoices", invoice, 409);
            invoices.push((invoice, deal, contact, total, date, paid));
        }
    }

    // Commerce payments: paid invoices (source INVOICE) and payment links on deals.
    let pay = |g: &mut Gen,
               amount: i64,
               at: OffsetDateTime,
               source: &str,
               contact: Option<(u64, Option<u64>)>|
     -> u64 {
        let processing = amount * 29 / 1000 + 30;
        let platform = amount / 200;
        let refunded = if g.prng.chance(0.15) { amount / 2 } else { 0 };
        let status = if refunded > 0 {
            "partially_refunded"
        } else {
            "succeeded"
        };
        let method = if g.prng.chance(0.7) { "card" } else { "ach" };
        let reference = format!("PMT-{}", g.next_id);
        let id = g.add(
            "commerce_payments",
            props(&[
                ("hs_initial_amount", json!(money(amount))),
                ("hs_initiated_date", json!(iso(at))),
                ("hs_latest_status", json!(status)),
                ("hs_currency_code", json!("USD")),
                ("hs_processing_fee", json!(money(processing))),
                ("hs_platform_fee", json!(money(platform))),
                ("hs_fees_amount", json!(money(processing + platform))),
                ("hs_refunds_amount", json!(money(refunded))),
                (
                    "hs_net_amount",
                    json!(money(amount - processing - platform - refunded)),
                ),
                ("hs_payment_source", json!(source)),
                ("hs_payment_method_type", json!(method)),
                ("hs_reference_number", json!(reference)),
                ("hs_createdate", json!(iso(at))),
            ]),
        );
        if let Some((c, _)) = contact {
            g.link("commerce_payments", id, "contacts", c, 387);
        }
        id
    };
    for (invoice, _deal, contact, total, date, paid) in invoices.clone() {
        if paid {
            let at = date + Duration::days(3);
            let p = pay(&mut g, total, at, "INVOICE", contact);
            g.link("commerce_payments", p, "invoices", invoice, 542);
        }
    }
    let deal_ids: Vec<u64> = g
        .records
        .get("deals")
        .map(|v| v.iter().filter_map(|r| r.id).collect())
        .unwrap_or_default();
    for i in 0..options.payment_link_payments {
        if let Some(&deal) = deal_ids.get(i % deal_ids.len().max(1)) {
            let at = g.date_back(60);
            let amount = 5_000 + i64::try_from(g.prng.below(50_000)).unwrap_or(0);
            let p = pay(&mut g, amount, at, "PAYMENT_LINK", None);
            g.link("commerce_payments", p, "deals", deal, 391);
        }
    }

    // Notes on deals.
    for i in 0..options.notes {
        if let Some(&deal) = deal_ids.get(i % deal_ids.len().max(1)) {
            let at = g.date_back(90);
            let n = g.add(
                "notes",
                props(&[
                    ("hs_timestamp", json!(iso(at))),
                    (
                        "hs_note_body",
                        json!(format!(
                            "<p>Call notes {} ({})</p>",
                            i + 1,
                            format_date(at.date())
                        )),
                    ),
                ]),
            );
            g.link("notes", n, "deals", deal, 214);
        }
    }

    HubSeed {
        portals: vec![PortalSeed {
            portal_id: options.portal_id,
            domain: None,
            properties: BTreeMap::new(),
            records: g.records,
            associations: g.associations,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_data() {
        let a = generate(&GenerateOptions::default());
        let b = generate(&GenerateOptions::default());
        assert_eq!(a, b);
        let c = generate(&GenerateOptions {
            seed: 2,
            ..GenerateOptions::default()
        });
        assert_ne!(a, c);
    }
}

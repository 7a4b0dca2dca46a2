//! The demo: a generated QuickBooks company and HubSpot portal in the sandboxes, connected
//! through the install pages as a person in a browser would (consents are automatic).

use std::collections::BTreeMap;

use std::time::{Duration, Instant};

use anyhow::Context;
use hubspot_qbo_core::domain::{ConnectionId, ObjectKind};
use hubspot_qbo_core::ledger::{Ledger, LinkStatus};
use hubspot_qbo_core::runtime::Services;
use hubspot_qbo_core::sync::settings::SyncSettings;
use reqwest::Url;
use serde_json::{json, Value};

use crate::stack::LocalStack;

/// The demo portal and company (the sandboxes' defaults, so consent picks them).
pub const PORTAL: &str = "62515";
pub const REALM: &str = "9130350000000001";
/// The demo's customer outside the US.
const ABROAD: &str = "Brighton Tea Rooms";

/// A browser's cookies for the install function's host.
#[derive(Default)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn header(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| {
            self.0
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn keep(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all("set-cookie") {
            let Ok(text) = value.to_str() else { continue };
            let pair = text.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                self.0
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }
}

/// Opens `{install}install` and follows every redirect through both consents; returns the
/// connection as the install function answers it (JSON).
pub async fn connect(install_url: &str, portal: &str, realm: &str) -> anyhow::Result<Value> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let base = install_url.trim_end_matches('/');
    let mut url = Url::parse(&format!("{base}/install"))?;
    let mut jar = Jar::default();
    for _ in 0..10 {
        if url.path().ends_with("/oauth/authorize") {
            url.query_pairs_mut().append_pair("portal_id", portal);
        }
        if url.path().ends_with("/connect/oauth2") {
            url.query_pairs_mut().append_pair("realm_id", realm);
        }
        let ours = url.as_str().starts_with(base);
        let mut request = http.get(url.clone()).header("accept", "application/json");
        if ours {
            if let Some(cookies) = jar.header() {
                request = request.header("cookie", cookies);
            }
        }
        let response = request.send().await?;
        if ours {
            jar.keep(&response);
        }
        if response.status().is_redirection() {
            let location = response
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .context("a redirect without Location")?;
            url = url.join(location)?;
            continue;
        }
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "connecting failed ({status}): {body}");
        return Ok(body);
    }
    anyhow::bail!("connecting took too many redirects")
}

/// What the demo company and portal hold.
#[derive(Debug, Clone, Copy)]
pub struct DemoSize {
    pub customers: usize,
    pub items: usize,
    pub contacts: usize,
    pub products: usize,
}

impl Default for DemoSize {
    fn default() -> Self {
        Self {
            customers: 25,
            items: 10,
            contacts: 12,
            products: 6,
        }
    }
}

/// Loads the demo company (customers with and without email, shared company names, an
/// apostrophe, items with and without SKU) and the demo portal (contacts and products).
pub async fn seed(qbo: &str, hubspot: &str, size: DemoSize) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    http.post(format!("{qbo}/_sandbox/seed/generate"))
        .json(
            &json!({"seed": 7, "realm_id": REALM, "company_name": "Demo Company",
            "customers": size.customers, "items": size.items, "invoices": 0, "estimates": 0,
            "sales_receipts": 0}),
        )
        .send()
        .await?
        .error_for_status()
        .context("seeding the QuickBooks sandbox")?;
    // An apostrophe in a name, on purpose.
    let token = crate::sandboxes::issued_token(&http, qbo, json!({"realm_id": REALM})).await?;
    http.post(format!("{qbo}/v3/company/{REALM}/customer?minorversion=75"))
        .bearer_auth(&token)
        .json(&json!({"DisplayName": "O'Brien's Bakery", "GivenName": "Siobhan", "FamilyName": "O'Brien",
            "CompanyName": "O'Brien's Bakery", "PrimaryEmailAddr": {"Address": "siobhan@obriens.example"}}))
        .send()
        .await?
        .error_for_status()
        .context("adding the apostrophe customer")?;
    // A customer abroad, billed like the others.
    http.post(format!("{qbo}/v3/company/{REALM}/customer?minorversion=75"))
        .bearer_auth(&token)
        .json(&json!({"DisplayName": ABROAD, "CompanyName": ABROAD,
            "PrimaryEmailAddr": {"Address": "accounts@brightontea.example"},
            "BillAddr": {"Line1": "12 North Laine", "City": "Brighton", "PostalCode": "BN1 1AA",
                "Country": "GB"}}))
        .send()
        .await?
        .error_for_status()
        .context("adding the customer abroad")?;
    http.post(format!("{hubspot}/_sandbox/seed/generate"))
        .json(
            &json!({"seed": 7, "portal_id": PORTAL.parse::<u64>().unwrap_or(62515),
            "companies": 4, "contacts": size.contacts, "products": size.products, "deals": 0,
            "notes": 0, "payment_link_payments": 0}),
        )
        .send()
        .await?
        .error_for_status()
        .context("seeding the HubSpot sandbox")?;
    Ok(())
}

/// The demo connection of a running stack.
pub struct Demo {
    pub connection: ConnectionId,
    services: Services,
    qbo: String,
    hubspot: String,
    http: reqwest::Client,
}

impl Demo {
    /// Seeds the sandboxes and connects them through the install pages.
    pub async fn start(stack: &LocalStack, size: DemoSize) -> anyhow::Result<Self> {
        let sandboxes = stack
            .sandboxes
            .as_ref()
            .context("the stack runs no sandboxes")?;
        seed(&sandboxes.qbo, &sandboxes.hubspot, size).await?;
        let connected = connect(stack.url("OAuthInstallFunction")?, PORTAL, REALM).await?;
        let connection =
            ConnectionId::parse(connected["connection_id"].as_str().unwrap_or_default())?;
        let environment = &stack.manifest.function("ObjectSyncFunction")?.environment;
        let config =
            hubspot_qbo_core::config::Config::from_lookup(|k| environment.get(k).cloned())?;
        Ok(Self {
            connection,
            services: Services::new(config, &stack.aws.sdk_config().await),
            qbo: sandboxes.qbo.clone(),
            hubspot: sandboxes.hubspot.clone(),
            http: reqwest::Client::new(),
        })
    }

    /// Lets HubSpot contacts through to QuickBooks (the default waits for a HubSpot invoice).
    pub async fn open_contacts(&self) -> anyhow::Result<()> {
        SyncSettings::new(self.services.store.clone())
            .edit(
                &self.connection,
                ObjectKind::Contact,
                self.services.clock.now_seconds(),
                |s| s.filters.hubspot_to_qbo.clear(),
            )
            .await?
            .context("no contact settings")?;
        Ok(())
    }

    /// Synced, failing and excluded records per object, as the ledger counts them.
    pub async fn counts(&self) -> anyhow::Result<Value> {
        let ledger = Ledger::new(self.services.store.clone());
        let now = self.services.clock.now_seconds();
        let mut all = serde_json::Map::new();
        for (name, object) in [
            ("contacts", ObjectKind::Contact),
            ("products", ObjectKind::Product),
            ("invoices", ObjectKind::Invoice),
        ] {
            let counts = ledger.counts(&self.connection, object, now).await?;
            all.insert(
                name.into(),
                json!({"synced": counts[&LinkStatus::Synced], "failing": counts[&LinkStatus::Failing],
                       "excluded": counts[&LinkStatus::Excluded]}),
            );
        }
        Ok(Value::Object(all))
    }

    /// Why the failing records fail: each category with how many, and one example.
    pub async fn failures(&self) -> anyhow::Result<Vec<String>> {
        let ledger = Ledger::new(self.services.store.clone());
        let now = self.services.clock.now_seconds();
        let mut lines = Vec::new();
        for object in ObjectKind::ALL {
            let mut by_category: BTreeMap<String, (usize, String)> = BTreeMap::new();
            for entry in ledger
                .with_status(&self.connection, object, LinkStatus::Failing, now)
                .await?
            {
                if let Some(failure) = entry.failure {
                    let slot = by_category
                        .entry(failure.category)
                        .or_insert((0, failure.message));
                    slot.0 += 1;
                }
            }
            for (category, (count, example)) in by_category {
                lines.push(format!(
                    "{object}: {count} failing with {category}, e.g. {example}"
                ));
            }
        }
        Ok(lines)
    }

    /// Invoices both ways: invoices two-way (unmatched HubSpot lines on a Custom Line Item
    /// booked to Sales), QuickBooks invoices unpaid, paid, partly paid, voided and one billed to
    /// a customer abroad, and HubSpot invoices on deals. Answers what was made, in words.
    pub async fn add_invoices(&self) -> anyhow::Result<Vec<String>> {
        SyncSettings::new(self.services.store.clone())
            .edit(
                &self.connection,
                ObjectKind::Invoice,
                self.services.clock.now_seconds(),
                |s| {
                    s.direction = hubspot_qbo_core::domain::Direction::TwoWay;
                    s.custom_line_item_income_account = Some("5".into());
                },
            )
            .await?
            .context("no invoice settings")?;
        let token =
            crate::sandboxes::issued_token(&self.http, &self.qbo, json!({"realm_id": REALM}))
                .await?;
        let qbo = |entity: &'static str, query: &'static str, body: Value| {
            let request = self
                .http
                .post(format!(
                    "{}/v3/company/{REALM}/{}?minorversion=75{query}",
                    self.qbo,
                    entity.to_lowercase()
                ))
                .bearer_auth(&token)
                .json(&body);
            async move {
                let answer: Value = request.send().await?.error_for_status()?.json().await?;
                answer
                    .get(entity)
                    .cloned()
                    .with_context(|| format!("writing a {entity}: {answer}"))
            }
        };
        let customers = self.entities("Customer").await?;
        let billed: Vec<&Value> = customers
            .iter()
            .filter(|c| c["Active"] != false && c["PrimaryEmailAddr"]["Address"].is_string())
            .take(4)
            .collect();
        anyhow::ensure!(
            billed.len() == 4,
            "the demo company has too few customers with email"
        );
        let abroad = customers
            .iter()
            .find(|c| c["DisplayName"] == ABROAD)
            .context("the demo company has no customer abroad")?;
        let line = |qty: u32, price: u32| {
            json!({"Amount": qty * price, "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {"ItemRef": {"value": "2"}, "Qty": qty, "UnitPrice": price}})
        };
        let mut made = Vec::new();
        let plans = [
            ("unpaid", 0),
            ("paid in full", 100),
            ("partly paid", 40),
            ("voided", 0),
            ("unpaid", 0),
            ("billed abroad", 0),
        ];
        for (i, (what, paid_percent)) in plans.into_iter().enumerate() {
            let customer = if what == "billed abroad" {
                abroad
            } else {
                billed[i % billed.len()]
            };
            let invoice = qbo(
                "Invoice",
                "",
                json!({"CustomerRef": {"value": customer["Id"]}, "Line": [line(2, 150), line(1, 80)]}),
            )
            .await?;
            let total = 380 * paid_percent / 100;
            if total > 0 {
                qbo(
                    "Payment",
                    "",
                    json!({"CustomerRef": {"value": customer["Id"]}, "TotalAmt": total,
                        "PaymentRefNum": format!("DEMO-{i}"),
                        "Line": [{"Amount": total, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]}),
                )
                .await?;
            }
            if what == "voided" {
                qbo(
                    "Invoice",
                    "&operation=void",
                    json!({"Id": invoice["Id"], "SyncToken": invoice["SyncToken"]}),
                )
                .await?;
            }
            made.push(format!(
                "QuickBooks: invoice {} for {} ({what})",
                invoice["DocNumber"], customer["DisplayName"]
            ));
        }
        let portal = format!("{}/_sandbox/portals/{PORTAL}", self.hubspot);
        let contacts: Value = self
            .http
            .get(format!("{portal}/objects/contacts"))
            .send()
            .await?
            .json()
            .await?;
        let contacts: Vec<String> = contacts["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["properties"]["email"].is_string())
            .filter_map(|c| c["id"].as_str().map(str::to_owned))
            .take(2)
            .collect();
        let hubspot_token = crate::sandboxes::issued_token(
            &self.http,
            &self.hubspot,
            json!({"portal_id": PORTAL.parse::<u64>()?}),
        )
        .await?;
        let associate = |from: &str, id: &str, to: &str, other: &str| {
            self.http
                .put(format!(
                    "{}/crm/v4/objects/{from}/{id}/associations/default/{to}/{other}",
                    self.hubspot
                ))
                .bearer_auth(&hubspot_token)
                .send()
        };
        for (i, contact) in contacts.iter().enumerate() {
            let create = |object: &str, properties: Value| {
                self.http
                    .post(format!("{portal}/objects/{object}"))
                    .json(&json!({ "properties": properties }))
                    .send()
            };
            let deal: Value = create("deals", json!({"dealname": format!("Demo deal {}", i + 1)}))
                .await?
                .json()
                .await?;
            let invoice: Value = create("invoices", json!({"hs_currency": "USD"}))
                .await?
                .json()
                .await?;
            let line: Value = create(
                "line_items",
                json!({"name": "Onboarding workshop", "quantity": "1", "price": "450"}),
            )
            .await?
            .json()
            .await?;
            let (deal, invoice, line) = (
                deal["id"].as_str().unwrap_or_default(),
                invoice["id"].as_str().unwrap_or_default(),
                line["id"].as_str().unwrap_or_default(),
            );
            for (to, other) in [
                ("contacts", contact.as_str()),
                ("line_items", line),
                ("deals", deal),
            ] {
                associate("invoices", invoice, to, other)
                    .await?
                    .error_for_status()?;
            }
            self.http
                .patch(format!("{portal}/objects/invoices/{invoice}"))
                .json(&json!({"properties": {"hs_invoice_status": "open"}}))
                .send()
                .await?
                .error_for_status()?;
            made.push(format!("HubSpot: invoice {invoice} on deal {deal}"));
        }
        Ok(made)
    }

    async fn entities(&self, entity: &str) -> anyhow::Result<Vec<Value>> {
        let dump: Value = self
            .http
            .get(format!(
                "{}/_sandbox/realms/{REALM}/entities/{entity}",
                self.qbo
            ))
            .send()
            .await?
            .json()
            .await?;
        Ok(dump["objects"].as_array().cloned().unwrap_or_default())
    }

    /// Waits until the queues are empty and the ledger stops moving.
    pub async fn settle(&self, stack: &LocalStack) -> anyhow::Result<()> {
        let sqs = aws_sdk_sqs::Client::new(&stack.aws.sdk_config().await);
        let started = Instant::now();
        let mut quiet = 0;
        let mut last = Value::Null;
        while started.elapsed() < Duration::from_secs(300) {
            let waiting = stack.messages_waiting(&sqs).await?;
            let counts = self.counts().await?;
            quiet = if waiting == 0 && counts == last {
                quiet + 1
            } else {
                0
            };
            if quiet >= 4 {
                return Ok(());
            }
            last = counts;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        anyhow::bail!("the sync did not settle within five minutes")
    }

    /// A few edits on each side, as people make them.
    pub async fn edit(&self) -> anyhow::Result<Vec<String>> {
        let mut done = Vec::new();
        let token =
            crate::sandboxes::issued_token(&self.http, &self.qbo, json!({"realm_id": REALM}))
                .await?;
        let customers: Value = self
            .http
            .get(format!(
                "{}/_sandbox/realms/{REALM}/entities/Customer",
                self.qbo
            ))
            .send()
            .await?
            .json()
            .await?;
        if let Some(customer) = customers["objects"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["Active"] != false))
        {
            self.http
                .post(format!("{}/v3/company/{REALM}/customer?minorversion=75", self.qbo))
                .bearer_auth(&token)
                .json(&json!({"Id": customer["Id"], "SyncToken": customer["SyncToken"], "sparse": true,
                    "PrimaryPhone": {"FreeFormNumber": "555-0199"}}))
                .send()
                .await?
                .error_for_status()?;
            done.push(format!(
                "QuickBooks: customer {} gets a new phone number",
                customer["DisplayName"]
            ));
        }
        let contact: Value = self
            .http
            .post(format!("{}/_sandbox/portals/{PORTAL}/objects/contacts", self.hubspot))
            .json(&json!({"properties": {"email": "demo.new@example.com", "firstname": "Dana", "lastname": "Demo"}}))
            .send()
            .await?
            .json()
            .await?;
        done.push(format!(
            "HubSpot: new contact Dana Demo ({})",
            contact["id"]
        ));
        Ok(done)
    }
}

/// `make demo`: a fresh stack, the demo connected, the initial sync, a few edits on each side
/// and one incremental round; prints a summary, then the counts as one JSON line.
pub async fn run(stack: &LocalStack) -> anyhow::Result<Value> {
    let demo = Demo::start(stack, DemoSize::default()).await?;
    println!(
        "demo connection {} (HubSpot portal {PORTAL}, QuickBooks company {REALM})",
        demo.connection
    );
    demo.open_contacts().await?;
    println!("contacts: the HubSpot → QuickBooks filter is cleared for the demo (the default waits for a HubSpot invoice)");
    demo.settle(stack).await?;
    println!("initial sync done: {}", demo.counts().await?);
    for invoice in demo.add_invoices().await? {
        println!("invoice: {invoice}");
    }
    for edit in demo.edit().await? {
        println!("edit: {edit}");
    }
    let poller = stack.function("ScheduledPollFunction")?;
    poller
        .invoke(&crate::triggers::scheduled_event(
            "arn:aws:events:us-east-1:1:rule/demo",
        ))
        .await?;
    demo.settle(stack).await?;
    let counts = demo.counts().await?;
    println!("after one incremental round: {counts}");
    for line in demo.failures().await? {
        println!("{line}");
    }
    Ok(counts)
}

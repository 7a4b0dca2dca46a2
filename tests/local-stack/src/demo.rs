//! The demo: a generated QuickBooks company and HubSpot portal in the sandboxes, connected
//! through the install pages as a person in a browser would (consents are automatic).

use std::collections::BTreeMap;

use anyhow::Context;
use reqwest::Url;
use serde_json::{json, Value};

/// The demo portal and company (the sandboxes' defaults, so consent picks them).
pub const PORTAL: &str = "62515";
pub const REALM: &str = "9130350000000001";

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
    let token: Value = http
        .post(format!("{qbo}/_sandbox/tokens"))
        .json(&json!({"realm_id": REALM}))
        .send()
        .await?
        .json()
        .await?;
    let token = token["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    http.post(format!("{qbo}/v3/company/{REALM}/customer?minorversion=75"))
        .bearer_auth(&token)
        .json(&json!({"DisplayName": "O'Brien's Bakery", "GivenName": "Siobhan", "FamilyName": "O'Brien",
            "CompanyName": "O'Brien's Bakery", "PrimaryEmailAddr": {"Address": "siobhan@obriens.example"}}))
        .send()
        .await?
        .error_for_status()
        .context("adding the apostrophe customer")?;
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

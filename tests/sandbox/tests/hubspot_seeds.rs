//! The HubSpot seed generator: deterministic portals with the shapes the sync has to handle.

mod hubspot_harness;
use hubspot_harness::Hub;
use reqwest::Method;
use sandbox::hubspot::{generate, GenerateOptions};
use serde_json::{json, Value};

#[tokio::test]
async fn generated_portal_loads_and_is_deterministic() {
    let a = generate(&GenerateOptions {
        seed: 7,
        ..GenerateOptions::default()
    });
    assert_eq!(
        a,
        generate(&GenerateOptions {
            seed: 7,
            ..GenerateOptions::default()
        })
    );
    let h = Hub::start().await;
    let loaded = h
        .control(
            Method::POST,
            "/_sandbox/seed/generate",
            json!({"seed": 7, "contacts": 40, "deals": 25}),
        )
        .await;
    assert_eq!(loaded["portals"][0]["counts"]["contacts"], 40);
    let contacts = h
        .control_get("/_sandbox/portals/62515/objects/contacts")
        .await;
    let list = contacts["results"].as_array().cloned().unwrap_or_default();
    assert!(
        list.iter().any(|c| c["properties"].get("email").is_none()),
        "some contacts lack email"
    );
    let products = h
        .control_get("/_sandbox/portals/62515/objects/products")
        .await["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(products
        .iter()
        .any(|p| p["properties"].get("hs_sku").is_some()));
    assert!(products
        .iter()
        .any(|p| p["properties"].get("hs_sku").is_none()));
    let payments = h
        .control_get("/_sandbox/portals/62515/objects/commerce_payments")
        .await["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let source = |s: &str| {
        payments
            .iter()
            .any(|p| p["properties"]["hs_payment_source"] == s)
    };
    assert!(source("INVOICE") && source("PAYMENT_LINK"));
    assert!(payments
        .iter()
        .all(|p| p["properties"]["hs_processing_fee"].is_string()));
    let quotes = h
        .control_get("/_sandbox/portals/62515/objects/quotes")
        .await["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let signed = |n: &str| {
        quotes
            .iter()
            .any(|q| q["properties"]["hs_esign_num_signers_completed"] == n)
    };
    assert!(signed("1") && signed("0"));
    // The API sees the same data, with associations.
    let (_, deals) = h
        .get("/crm/v3/objects/deals?limit=100&associations=line_items&properties=amount")
        .await;
    let deals: Vec<Value> = deals["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(deals.len(), 25);
    assert!(deals
        .iter()
        .all(|d| d["associations"]["line_items"]["results"]
            .as_array()
            .is_some_and(|l| !l.is_empty())));
    let (_, search) = h.post("/crm/v3/objects/invoices/search", json!({"filterGroups": [{"filters": [{"propertyName": "hs_invoice_status", "operator": "EQ", "value": "paid"}]}]})).await;
    assert!(search["total"].as_u64().unwrap_or(0) > 0);
}

//! Seeds: generated companies load with settled balances; explicit Ids and MetaData are kept.

mod harness;
use harness::Sbx;
use sandbox::qbo::{generate, GenerateOptions, QboConfig, Seed};
use serde_json::{json, Value};

#[tokio::test]
async fn generated_company_has_paid_invoices_linked_both_ways() {
    let seed = generate(&GenerateOptions {
        seed: 11,
        customers: 40,
        invoices: 60,
        ..GenerateOptions::default()
    });
    let sbx = Sbx::start_with(QboConfig {
        seed: Some(seed),
        ..QboConfig::default()
    })
    .await;
    let (_, payments) = sbx.query("SELECT * FROM Payment MAXRESULTS 1000").await;
    let payments = payments["QueryResponse"]["Payment"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!payments.is_empty());
    for payment in &payments {
        let invoice_id = payment["Line"][0]["LinkedTxn"][0]["TxnId"]
            .as_str()
            .unwrap_or_default();
        let (_, invoice) = sbx.get(&format!("invoice/{invoice_id}")).await;
        let invoice = &invoice["Invoice"];
        let paid = payment["TotalAmt"].as_f64().unwrap_or(0.0);
        let expected = invoice["TotalAmt"].as_f64().unwrap_or(0.0) - paid;
        assert!((invoice["Balance"].as_f64().unwrap_or(-1.0) - expected).abs() < 0.005);
        assert_eq!(
            invoice["LinkedTxn"][0],
            json!({"TxnId": payment["Id"], "TxnType": "Payment"})
        );
    }
    // The customer's balance is the sum of its invoices' balances.
    let customer = payments[0]["CustomerRef"]["value"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (_, invoices) = sbx
        .query(&format!(
            "SELECT * FROM Invoice WHERE CustomerRef = '{customer}' MAXRESULTS 1000"
        ))
        .await;
    let owed: f64 = invoices["QueryResponse"]["Invoice"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| i["Balance"].as_f64().unwrap_or(0.0))
        .sum();
    let (_, c) = sbx.get(&format!("customer/{customer}")).await;
    assert!((c["Customer"]["Balance"].as_f64().unwrap_or(-1.0) - owed).abs() < 0.005);
}

#[tokio::test]
async fn seeds_keep_explicit_ids_and_old_timestamps() {
    let seed: Seed = serde_json::from_value(json!({"realms": [{"realm_id": "9130350000000001", "entities": {
        "Customer": [
            {"Id": "40", "DisplayName": "Old Olga", "MetaData": {"CreateTime": "2020-01-01T10:00:00-08:00", "LastUpdatedTime": "2020-01-02T10:00:00-08:00"}},
            {"Id": "41", "DisplayName": "Gone Gus", "Active": false}
        ]}}]}))
    .expect("seed");
    let sbx = Sbx::start_with(QboConfig {
        seed: Some(seed),
        ..QboConfig::default()
    })
    .await;
    let (_, old) = sbx.get("customer/40").await;
    assert_eq!(
        old["Customer"]["MetaData"]["LastUpdatedTime"],
        "2020-01-02T10:00:00-08:00"
    );
    let (_, recent) = sbx
        .query("SELECT * FROM Customer WHERE MetaData.LastUpdatedTime > '2021-01-01T00:00:00Z' AND Active IN (true, false)")
        .await;
    let ids: Vec<&Value> = recent["QueryResponse"]["Customer"]
        .as_array()
        .map(|a| a.iter().map(|c| &c["Id"]).collect())
        .unwrap_or_default();
    assert_eq!(ids, [&json!("41")]);
    // New customers continue after the highest seeded Id.
    let created = sbx.customer("New Nia").await;
    assert_eq!(created["Id"], "42");
}

use integration_tests::harness::SyncStack;
use serde_json::json;
use std::time::Instant;

#[tokio::test]
async fn scratch() -> anyhow::Result<()> {
    let s = SyncStack::start_with("scratch", |o| {
        o.parameters
            .insert("QboRequestsPerMinute".into(), "50000".into());
        o.parameters
            .insert("QboBatchesPerMinute".into(), "4000".into());
        o.parameters
            .insert("HubSpotRequestsPer10Seconds".into(), "11000".into());
        o.parameters
            .insert("HubSpotSearchesPerSecond".into(), "500".into());
    })
    .await?;
    let http = reqwest::Client::new();
    http.post(format!("{}/_sandbox/throttle", s.qbo)).json(&json!({"enabled": false, "per_minute": 500, "concurrent": 10, "batch_per_minute": 40, "scale": 1.0})).send().await?.error_for_status()?;
    http.post(format!("{}/_sandbox/throttle", s.hubspot))
        .json(&json!({"enabled": false}))
        .send()
        .await?;
    let p = s.pair().await?;
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    http.post(format!("{}/_sandbox/seed/generate", s.qbo)).json(&json!({"seed": 3, "realm_id": p.realm, "company_name": "Perf", "customers": n, "items": 0, "invoices": 0, "estimates": 0, "sales_receipts": 0})).send().await?.error_for_status()?;
    let t = Instant::now();
    s.sync().await?;
    let contacts = p.hubspot_all("contacts").await?.len();
    println!(
        "PERF {n} customers -> {contacts} contacts in {:?}",
        t.elapsed()
    );
    println!(
        "PERF counts {:?}",
        p.counts(hubspot_qbo_core::domain::ObjectKind::Contact)
            .await?
    );
    s.stop().await
}

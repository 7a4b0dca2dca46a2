//! The admin API end to end: an operator sees the connections, each object's counts, the
//! records with their reasons and history, retries what fails, edits the settings (checked
//! field by field) and reads the workflow-action runs; nobody else sees anything.

use hubspot_qbo_core::domain::{ObjectKind, Provider};
use hubspot_qbo_core::ledger::LinkStatus;
use integration_tests::harness::{
    action_call, answered_call, record_id as id, SyncStack, TEST_OPERATOR_KEY,
};
use reqwest::Method;
use serde_json::{json, Value};

const CONTACT: ObjectKind = ObjectKind::Contact;

/// Calls the admin API with `key` (none: unauthenticated); answers status and body.
async fn call(
    s: &SyncStack,
    method: Method,
    path: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> anyhow::Result<(u16, Value)> {
    let url = format!(
        "{}{}",
        s.stack.url("AdminFunction")?.trim_end_matches('/'),
        path
    );
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

async fn get(s: &SyncStack, path: &str) -> anyhow::Result<Value> {
    let (status, body) = call(s, Method::GET, path, None, Some(TEST_OPERATOR_KEY)).await?;
    anyhow::ensure!(status == 200, "{path}: {status} {body}");
    Ok(body)
}

#[tokio::test]
async fn an_operator_sees_counts_records_and_history_retries_and_edits_settings(
) -> anyhow::Result<()> {
    let s = SyncStack::start("admin").await?;
    let p = s.pair().await?;
    p.settings(CONTACT, |c| c.filters.hubspot_to_qbo.clear())
        .await?;
    // A HubSpot contact whose name a QuickBooks customer already has fails; another syncs.
    p.qbo_create(
        "Customer",
        json!({"DisplayName": "Zoe Hart", "PrimaryEmailAddr": {"Address": "zoe@books.example"}}),
    )
    .await?;
    let zoe = id(&p
        .hubspot_create(
            "contacts",
            json!({"firstname": "Zoe", "lastname": "Hart", "email": "zoe@crm.example"}),
        )
        .await?);
    let ann = id(&p
        .hubspot_create(
            "contacts",
            json!({"firstname": "Ann", "lastname": "Lee", "email": "ann@crm.example"}),
        )
        .await?);
    s.sync().await?;
    let conn = p.connection.as_str().to_owned();
    let base = format!("/api/connections/{conn}");

    // Nobody without the operator key sees anything.
    for key in [None, Some("not-the-key")] {
        let (status, body) = call(&s, Method::GET, "/api/connections", None, key).await?;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["category"], "unauthenticated");
        let (status, _) = call(&s, Method::GET, &format!("{base}/overview"), None, key).await?;
        assert_eq!(status, 401);
    }

    let listed = get(&s, "/api/connections").await?;
    let mine = listed["connections"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["connection_id"] == conn.as_str())
        .cloned()
        .expect("the connection is listed");
    assert_eq!(mine["status"], "active");
    assert_eq!(mine["portal_id"], p.portal.to_string());

    // V1: the counts are the ledger's.
    let overview = get(&s, &format!("{base}/overview")).await?;
    let contacts = overview["objects"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["object"] == "contact")
        .cloned()
        .expect("contacts");
    let (synced, failing, excluded, _) = p.counts(CONTACT).await?;
    assert_eq!(contacts["counts"]["synced"], json!(synced), "{overview}");
    assert_eq!(contacts["counts"]["failing"], json!(failing));
    assert_eq!(contacts["counts"]["excluded"], json!(excluded));
    assert_eq!(failing, 1);
    assert_eq!(contacts["enabled"], true);

    // V3: filtered records, and a record's history with its failure explained (V2).
    let failing_rows = get(&s, &format!("{base}/records/contact?status=failing")).await?;
    assert_eq!(failing_rows["total"], 1, "{failing_rows}");
    let row = &failing_rows["records"][0];
    assert_eq!(row["hubspot_id"], zoe.as_str());
    assert_eq!(row["category"], "duplicate_display_name");
    assert!(
        row["reason"].as_str().unwrap_or("").contains("Zoe Hart"),
        "{row}"
    );
    let found = get(&s, &format!("{base}/records/contact?q=ann%40crm")).await?;
    assert_eq!(found["total"], 1, "{found}");
    assert_eq!(found["records"][0]["hubspot_id"], ann.as_str());
    let paged = get(&s, &format!("{base}/records/contact?limit=1")).await?;
    assert_eq!(paged["records"].as_array().map(Vec::len), Some(1));
    assert_eq!(paged["next"], "1");
    let (status, bad) = call(
        &s,
        Method::GET,
        &format!("{base}/records/contact?status=broken"),
        None,
        Some(TEST_OPERATOR_KEY),
    )
    .await?;
    assert_eq!(
        (status, bad["category"].as_str()),
        (400, Some("invalid_filter")),
        "{bad}"
    );
    let record = get(&s, &format!("{base}/records/contact/hubspot/{zoe}")).await?;
    assert_eq!(record["explanation"]["code"], "duplicate_display_name");
    assert!(record["explanation"]["fix"]
        .as_str()
        .unwrap_or("")
        .contains("disambiguation"));
    assert!(
        record["activity"].as_array().is_some_and(|a| !a.is_empty()),
        "{record}"
    );
    for path in [
        format!("{base}/records/contact/hubspot/999999"),
        format!("{base}/records/widget"),
        "/api/connections/nobody/overview".to_owned(),
    ] {
        let (status, body) = call(&s, Method::GET, &path, None, Some(TEST_OPERATOR_KEY)).await?;
        assert_eq!(status, 404, "{path}: {body}");
    }

    // V5: a record that is not failing is not retried; a failing one is, now.
    let (status, body) = call(
        &s,
        Method::POST,
        &format!("{base}/retry/contact"),
        Some(json!({"side": "hubspot", "id": ann})),
        Some(TEST_OPERATOR_KEY),
    )
    .await?;
    assert_eq!(
        (status, body["category"].as_str()),
        (409, Some("not_failing")),
        "{body}"
    );
    let (status, body) = call(
        &s,
        Method::POST,
        &format!("{base}/retry/contact"),
        Some(json!({"side": "hubspot", "id": zoe})),
        Some(TEST_OPERATOR_KEY),
    )
    .await?;
    assert_eq!((status, body["retried"].clone()), (200, json!(1)), "{body}");
    let entry = p
        .entry(CONTACT, Provider::HubSpot, &zoe)
        .await?
        .expect("zoe's entry");
    assert!(
        entry
            .failure
            .as_ref()
            .and_then(|f| f.next_retry_at)
            .is_some(),
        "due for retry: {entry:?}"
    );
    let (status, body) = call(
        &s,
        Method::POST,
        &format!("{base}/retry/contact"),
        Some(json!({"category": "*"})),
        Some(TEST_OPERATOR_KEY),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    let (status, _) = call(
        &s,
        Method::POST,
        &format!("{base}/retry/contact"),
        Some(json!({})),
        Some(TEST_OPERATOR_KEY),
    )
    .await?;
    assert_eq!(status, 400);

    // S1: settings read with their version; an invalid edit names its fields; a valid one takes
    // effect — the retry with disambiguation on makes Zoe's customer.
    let read = get(&s, &format!("{base}/settings/contact")).await?;
    assert!(read["version"].as_u64().is_some(), "{read}");
    let mut settings = read["settings"].clone();
    settings["filters"]["hubspot_to_qbo"] =
        json!([{"property": "createdate", "operator": "after", "values": ["yesterday"]}]);
    let (status, body) = call(
        &s,
        Method::PUT,
        &format!("{base}/settings/contact"),
        Some(settings.clone()),
        Some(TEST_OPERATOR_KEY),
    )
    .await?;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["fields"][0]["field"], "filters.hubspot_to_qbo[0].values",
        "{body}"
    );
    let (status, _) = call(
        &s,
        Method::PUT,
        &format!("{base}/settings/contact"),
        Some(json!("not settings")),
        Some(TEST_OPERATOR_KEY),
    )
    .await?;
    assert_eq!(status, 400);
    let mut settings = read["settings"].clone();
    settings["disambiguate_display_names"] = json!(true);
    let (status, body) = call(
        &s,
        Method::PUT,
        &format!("{base}/settings/contact"),
        Some(settings),
        Some(TEST_OPERATOR_KEY),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    let read = get(&s, &format!("{base}/settings/contact")).await?;
    assert_eq!(read["settings"]["disambiguate_display_names"], true);
    s.sync().await?;
    assert_eq!(p.entries(CONTACT, LinkStatus::Failing).await?.len(), 0);

    // The portal's workflow-action runs, with their outcome; the categories table.
    let deal = p
        .hubspot_sale(
            "deals",
            json!({"dealname": "Runs"}),
            Some(&ann),
            &[json!({"name": "Work", "price": "10", "quantity": "1"})],
        )
        .await?;
    let (_, answer) = answered_call(
        s.stack.url("ActionCreateInvoiceFunction")?,
        &action_call("ap-admin-1", p.portal, ("DEAL", &deal), json!({})),
    )
    .await?;
    assert_eq!(
        answer["outputFields"]["errorCode"], "unmatched_items",
        "{answer}"
    );
    let runs = get(&s, &format!("{base}/action-runs")).await?;
    let run = runs["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["callback_id"] == "ap-admin-1")
        .cloned()
        .expect("the run is listed");
    assert_eq!(run["state"], "done");
    assert_eq!(
        run["outcome"]["outputFields"]["errorCode"],
        "unmatched_items"
    );
    // The workflow-action settings: defaults until saved, checked field by field.
    let actions = get(&s, &format!("{base}/action-settings")).await?;
    assert_eq!(actions["settings"]["customer_mode"], "new", "{actions}");
    let mut edited = actions["settings"].clone();
    edited["fee_expense_account"] = json!("Office expenses");
    let (status, body) = call(
        &s,
        Method::PUT,
        &format!("{base}/action-settings"),
        Some(edited.clone()),
        Some(TEST_OPERATOR_KEY),
    )
    .await?;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["fields"][0]["field"], "fee_expense_account");
    edited["fee_expense_account"] = json!("7");
    edited["customer_mode"] = json!("legacy");
    let (status, body) = call(
        &s,
        Method::PUT,
        &format!("{base}/action-settings"),
        Some(edited),
        Some(TEST_OPERATOR_KEY),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    let actions = get(&s, &format!("{base}/action-settings")).await?;
    assert_eq!(actions["settings"]["customer_mode"], "legacy");
    assert_eq!(actions["settings"]["fee_expense_account"], "7");
    let categories = get(&s, "/api/categories").await?;
    assert!(categories["categories"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["code"] == "unmatched_items"));
    s.stop().await
}

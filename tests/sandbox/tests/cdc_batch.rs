//! CDC (window, cap, deleted stubs, one QueryResponse per entity) and batch (limit, per-item
//! faults, bId echo).

mod harness;
use harness::{code, Sbx};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn since(sbx: &Sbx, minutes_ago: i64) -> String {
    let t = sbx.qbo.app.services.clock.now() - time::Duration::minutes(minutes_ago);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

async fn cdc(sbx: &Sbx, entities: &str, since: &str) -> (StatusCode, Value) {
    let resp = sbx
        .http
        .get(sbx.api("cdc"))
        .query(&[
            ("entities", entities),
            ("changedSince", since),
            ("minorversion", "75"),
        ])
        .bearer_auth(&sbx.token)
        .send()
        .await
        .expect("cdc");
    (resp.status(), resp.json().await.unwrap_or_default())
}

#[tokio::test]
async fn cdc_returns_changes_and_deleted_stubs_per_entity() {
    let sbx = Sbx::start().await;
    let start = since(&sbx, 1);
    let c = sbx.customer("Cdc Carl").await;
    let keep = sbx
        .invoice(c["Id"].as_str().unwrap_or_default(), 1, 5.0)
        .await;
    let gone = sbx
        .invoice(c["Id"].as_str().unwrap_or_default(), 1, 6.0)
        .await;
    sbx.post(
        "invoice?operation=delete",
        json!({"Id": gone["Id"], "SyncToken": "0"}),
    )
    .await;
    let (s, body) = cdc(&sbx, "Customer,Invoice,Estimate", &start).await;
    assert_eq!(s, StatusCode::OK);
    let responses = body["CDCResponse"][0]["QueryResponse"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        responses.len(),
        2,
        "only entities with changes: {responses:?}"
    );
    let invoices = responses
        .iter()
        .find_map(|r| r.get("Invoice"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    assert!(invoices
        .iter()
        .any(|i| i["Id"] == keep["Id"] && i["TotalAmt"] == 5));
    let stub = invoices
        .iter()
        .find(|i| i["Id"] == gone["Id"])
        .cloned()
        .unwrap_or_default();
    assert_eq!(stub["status"], "Deleted");
    assert_eq!(stub["domain"], "QBO");
    assert!(stub.get("Line").is_none());
    // Nothing changed since now: one empty element.
    let (_, none) = cdc(&sbx, "Customer", &since(&sbx, -1)).await;
    assert_eq!(none["CDCResponse"], json!([{"QueryResponse": [{}]}]));
}

#[tokio::test]
async fn cdc_refuses_more_than_30_days_and_caps_at_1000_objects() {
    let sbx = Sbx::start().await;
    let (s, old) = cdc(&sbx, "Customer", &since(&sbx, 31 * 24 * 60)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code(&old), "4000");
    let start = since(&sbx, 1);
    sbx.control(
        Method::POST,
        "/_sandbox/seed/generate",
        json!({"seed": 9, "customers": 700, "items": 400, "invoices": 0, "estimates": 0, "sales_receipts": 0}),
    )
    .await;
    let (_, body) = cdc(&sbx, "Customer,Item", &start).await;
    let total: usize = body["CDCResponse"][0]["QueryResponse"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["maxResults"].as_u64().unwrap_or(0) as usize)
        .sum();
    assert_eq!(total, 1000);
    let (s, taxcode) = cdc(&sbx, "TaxCode", &start).await;
    assert_eq!(
        (s, code(&taxcode).as_str()),
        (StatusCode::BAD_REQUEST, "500")
    );
}

#[tokio::test]
async fn batch_answers_200_with_per_item_faults_and_echoed_bids() {
    let sbx = Sbx::start().await;
    let c = sbx.customer("Batch Bea").await;
    let inv = sbx
        .invoice(c["Id"].as_str().unwrap_or_default(), 1, 9.0)
        .await;
    let (s, body) = sbx
        .post(
            "batch?minorversion=75",
            json!({"BatchItemRequest": [
                {"bId": "bid1", "operation": "create", "Vendor": {"DisplayName": "Boraski Family Store"}},
                {"bId": "bid2", "operation": "delete", "Invoice": {"Id": "12345", "SyncToken": "0"}},
                {"bId": "bid3", "operation": "update", "Invoice": {"sparse": true, "Id": inv["Id"], "SyncToken": "7", "PrivateNote": "x"}},
                {"bId": "bid4", "Query": "select * from Invoice where TotalAmt > '5.00'"},
                {"bId": "bid5", "operation": "create", "Customer": {"DisplayName": "Batch Bea"}},
                {"bId": "bid6", "operation": "delete", "Invoice": {"Id": inv["Id"], "SyncToken": "0"}}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let items = body["BatchItemResponse"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let b_ids: Vec<&str> = items.iter().filter_map(|i| i["bId"].as_str()).collect();
    assert_eq!(b_ids, ["bid1", "bid2", "bid3", "bid4", "bid5", "bid6"]);
    assert_eq!(items[0]["Vendor"]["DisplayName"], "Boraski Family Store");
    assert_eq!(items[1]["Fault"]["Error"][0]["code"], "610");
    assert_eq!(items[2]["Fault"]["Error"][0]["code"], "5010");
    assert_eq!(items[3]["QueryResponse"]["Invoice"][0]["Id"], inv["Id"]);
    assert_eq!(items[4]["Fault"]["Error"][0]["code"], "6240");
    assert_eq!(items[5]["Invoice"]["status"], "Deleted");
}

#[tokio::test]
async fn batch_over_30_items_is_refused_whole() {
    let sbx = Sbx::start().await;
    let items: Vec<Value> = (0..31)
        .map(|i| json!({"bId": format!("b{i}"), "operation": "create", "Customer": {"DisplayName": format!("Many {i}")}}))
        .collect();
    let (s, body) = sbx.post("batch", json!({"BatchItemRequest": items})).await;
    assert_eq!((s, code(&body).as_str()), (StatusCode::BAD_REQUEST, "1040"));
    let (_, count) = sbx.query("SELECT COUNT(*) FROM Customer").await;
    assert_eq!(
        count["QueryResponse"],
        json!({"totalCount": 0}),
        "nothing was written"
    );
}

//! HubSpot CRM objects over HTTP: batch limits, 207 partial errors, all-or-nothing batches,
//! upsert, last-modified maintenance, object type ids, errors.

mod hubspot_harness;
use axum::http::StatusCode;
use hubspot_harness::Hub;
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn batch_over_100_inputs_is_rejected() {
    let h = Hub::start().await;
    let inputs: Vec<Value> = (0..101)
        .map(|i| json!({"properties": {"firstname": format!("n{i}")}}))
        .collect();
    let (status, body) = h
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": inputs}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["category"], "VALIDATION_ERROR");
    assert!(body["correlationId"]
        .as_str()
        .is_some_and(|c| c.len() == 36));
    let inputs: Vec<Value> = (0..100)
        .map(|i| json!({"properties": {"firstname": format!("n{i}")}}))
        .collect();
    let (status, body) = h
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": inputs}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["status"], "COMPLETE");
    assert_eq!(body["results"].as_array().map(Vec::len), Some(100));
}

#[tokio::test]
async fn batch_create_is_all_or_nothing_without_trace_ids_and_207_with_them() {
    let h = Hub::start().await;
    let bad = json!({"inputs": [
        {"properties": {"email": "ok@example.com"}},
        {"properties": {"no_such_prop": "x"}}
    ]});
    let (status, body) = h.post("/crm/v3/objects/contacts/batch/create", bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (_, page) = h.get("/crm/v3/objects/contacts").await;
    assert_eq!(
        page["results"].as_array().map(Vec::len),
        Some(0),
        "nothing written"
    );

    let traced = json!({"inputs": [
        {"properties": {"email": "ok@example.com"}, "objectWriteTraceId": "t1"},
        {"properties": {"no_such_prop": "x"}, "objectWriteTraceId": "t2"}
    ]});
    let (status, body) = h
        .post("/crm/v3/objects/contacts/batch/create", traced)
        .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(body["numErrors"], 1);
    assert_eq!(body["errors"][0]["category"], "VALIDATION_ERROR");
    assert_eq!(body["errors"][0]["context"]["objectWriteTraceId"][0], "t2");
    assert_eq!(body["results"][0]["properties"]["email"], "ok@example.com");
    assert_eq!(body["results"][0]["objectWriteTraceId"], "t1");
}

#[tokio::test]
async fn batch_read_update_report_missing_ids_with_207() {
    let h = Hub::start().await;
    let id = h
        .create("deals", json!({"dealname": "A", "amount": "10.50"}))
        .await;
    let (status, body) = h
        .post(
            "/crm/v3/objects/deals/batch/read",
            json!({"inputs": [{"id": id}, {"id": "99999"}], "properties": ["amount"]}),
        )
        .await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(body["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(body["errors"][0]["context"]["ids"][0], "99999");
    assert_eq!(body["results"][0]["properties"]["amount"], "10.50");
    let (status, body) = h
        .post("/crm/v3/objects/deals/batch/update", json!({"inputs": [{"id": id, "properties": {"amount": "11"}}, {"id": "99999", "properties": {"amount": "1"}}]}))
        .await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(body["results"][0]["properties"]["amount"], "11");
    let (status, body) = h
        .post(
            "/crm/v3/objects/deals/batch/update",
            json!({"inputs": [{"id": id, "properties": {}}, {"id": id, "properties": {}}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "duplicate ids: {body}");
    let (status, _) = h
        .post(
            "/crm/v3/objects/deals/batch/archive",
            json!({"inputs": [{"id": id}, {"id": "5"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn upsert_by_email_creates_then_updates() {
    let h = Hub::start().await;
    let body = json!({"inputs": [{"id": "u@example.com", "idProperty": "email", "properties": {"firstname": "U"}}]});
    let (status, first) = h
        .post("/crm/v3/objects/contacts/batch/upsert", body.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["results"][0]["new"], true);
    let (_, second) = h.post("/crm/v3/objects/contacts/batch/upsert", body).await;
    assert_eq!(second["results"][0]["new"], false);
    assert_eq!(second["results"][0]["id"], first["results"][0]["id"]);
    let (status, _) = h
        .post(
            "/crm/v3/objects/contacts/batch/upsert",
            json!({"inputs": [{"id": "x", "idProperty": "firstname", "properties": {}}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "idProperty must be unique");
}

#[tokio::test]
async fn last_modified_moves_on_every_write_and_values_are_strings() {
    let h = Hub::start().await;
    let id = h
        .create(
            "0-3",
            json!({"dealname": "D", "amount": 100, "closedate": "1767225600000"}),
        )
        .await;
    let (_, d) = h
        .get(&format!(
            "/crm/v3/objects/deals/{id}?properties=amount,closedate,hs_lastmodifieddate"
        ))
        .await;
    assert_eq!(d["properties"]["amount"], "100");
    assert_eq!(d["properties"]["closedate"], "2026-01-01T00:00:00.000Z");
    let before = d["properties"]["hs_lastmodifieddate"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    h.control(
        Method::POST,
        "/_sandbox/clock",
        json!({"advance_seconds": 60}),
    )
    .await;
    let (status, after) = h
        .call(
            Method::PATCH,
            &format!("/crm/v3/objects/0-3/{id}"),
            Some(json!({"properties": {"dealstage": "closedwon"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let after = after["properties"]["hs_lastmodifieddate"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(after > before, "{after} > {before}");
    let c = h.create("contacts", json!({"firstname": "C"})).await;
    let (_, contact) = h.get(&format!("/crm/v3/objects/contacts/{c}")).await;
    assert!(contact["properties"]["lastmodifieddate"].is_string());
    assert!(contact["properties"].get("hs_lastmodifieddate").is_none());
    let (status, body) = h
        .call(
            Method::PATCH,
            &format!("/crm/v3/objects/deals/{id}"),
            Some(json!({"properties": {"amount": "ten"}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"]
        .as_str()
        .unwrap_or("")
        .contains("INVALID_DECIMAL"));
}

#[tokio::test]
async fn required_properties_and_unknown_types() {
    let h = Hub::start().await;
    let (status, body) = h
        .post(
            "/crm/v3/objects/commerce_payments",
            json!({"properties": {"hs_initial_amount": "9.99"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let id = h
        .create(
            "0-101",
            json!({"hs_initial_amount": "9.99", "hs_initiated_date": "2026-01-02T00:00:00Z"}),
        )
        .await;
    let (status, p) = h
        .get(&format!(
            "/crm/v3/objects/commerce_payments/{id}?properties=hs_initial_amount"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(p["properties"]["hs_initial_amount"], "9.99");
    let (status, body) = h.get("/crm/v3/objects/widgets").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["category"], "VALIDATION_ERROR");
    let (status, body, _) = h
        .call_with("nope", Method::GET, "/crm/v3/objects/contacts", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");
}

#[tokio::test]
async fn list_pages_with_after_and_archived_flag() {
    let h = Hub::start().await;
    for i in 0..5 {
        h.create(
            "products",
            json!({"name": format!("P{i}"), "price": "1.00"}),
        )
        .await;
    }
    let (_, first) = h.get("/crm/v3/objects/products?limit=2").await;
    assert_eq!(first["results"].as_array().map(Vec::len), Some(2));
    let after = first["paging"]["next"]["after"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (_, second) = h
        .get(&format!("/crm/v3/objects/products?limit=2&after={after}"))
        .await;
    assert_ne!(first["results"][0]["id"], second["results"][0]["id"]);
    let (_, all) = h.get("/crm/v3/objects/products?limit=100").await;
    assert!(all.get("paging").is_none());
    let id = all["results"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (status, _) = h
        .call(
            Method::DELETE,
            &format!("/crm/v3/objects/products/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, archived) = h.get("/crm/v3/objects/products?archived=true").await;
    assert_eq!(archived["results"][0]["id"], id.as_str());
    assert_eq!(archived["results"][0]["archived"], true);
}

#[tokio::test]
async fn deal_pipeline_lists_default_stages() {
    let h = Hub::start().await;
    let (status, body) = h.get("/crm/v3/pipelines/deals").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["results"][0]["id"], "default");
    let stages: Vec<&str> = body["results"][0]["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert!(stages.contains(&"closedwon"));
    let (status, _) = h.get("/crm/v3/pipelines/deals/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn shared_control_api_faults_counters_and_log() {
    let h = Hub::start().await;
    h.control(
        Method::POST,
        "/_sandbox/faults",
        json!({"method": "GET", "path": "/crm/v3/objects/contacts", "status": 502, "body": {"status": "error", "message": "Bad gateway", "category": "INTERNAL_ERROR"}, "times": 1}),
    )
    .await;
    let (status, body) = h.get("/crm/v3/objects/contacts").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body["message"], "Bad gateway");
    let (status, _) = h.get("/crm/v3/objects/contacts").await;
    assert_eq!(status, StatusCode::OK, "the rule retired after one hit");
    let counters = h.control_get("/_sandbox/counters").await;
    assert_eq!(
        counters["endpoints"]["GET /crm/v3/objects/contacts"]["count"],
        2
    );
    let log = h.control_get("/_sandbox/requests").await;
    let entries = log["requests"].as_array().cloned().unwrap_or_default();
    assert!(
        entries.iter().all(|e| !e.to_string().contains(&h.token)),
        "tokens never logged"
    );
    let reset = h.control(Method::POST, "/_sandbox/reset", json!({})).await;
    assert_eq!(reset["portals"], json!([62515, 62516]));
    let (status, _) = h.get("/crm/v3/objects/contacts").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "reset clears tokens");
}

#[tokio::test]
async fn line_items_copy_their_product_and_payments_derive_their_refund_status() {
    let h = Hub::start().await;
    let product = h
        .create(
            "products",
            json!({"name": "Design", "price": "150", "hs_sku": "DES-1", "description": "Work"}),
        )
        .await;
    let copied = h
        .create(
            "line_items",
            json!({"hs_product_id": product, "quantity": "2"}),
        )
        .await;
    let own = h
        .create(
            "line_items",
            json!({"hs_product_id": product, "quantity": "1", "price": "120"}),
        )
        .await;
    let read = |id: String| {
        let h = &h;
        async move {
            let (_, line) = h
                .get(&format!(
                    "/crm/v3/objects/line_items/{id}?properties=name,price,hs_sku,description,amount"
                ))
                .await;
            line["properties"].clone()
        }
    };
    let line = read(copied).await;
    assert_eq!(line["name"], "Design");
    assert_eq!(line["hs_sku"], "DES-1");
    assert_eq!(line["description"], "Work");
    assert_eq!(line["amount"], "300.00");
    assert_eq!(
        read(own).await["price"],
        "120",
        "what the create gives wins"
    );

    let payment = h
        .create(
            "commerce_payments",
            json!({"hs_initial_amount": "100", "hs_initiated_date": "2026-11-30T10:00:00Z",
                   "hs_processing_fee": "2.90", "hs_platform_fee": "0.50"}),
        )
        .await;
    let path = format!(
        "/crm/v3/objects/commerce_payments/{payment}?properties=hs_latest_status,hs_fees_amount,hs_net_amount"
    );
    let status_after = |refunded: &'static str| {
        let (h, path, payment) = (&h, path.clone(), payment.clone());
        async move {
            if !refunded.is_empty() {
                h.call(
                    Method::PATCH,
                    &format!("/crm/v3/objects/commerce_payments/{payment}"),
                    Some(json!({"properties": {"hs_refunds_amount": refunded}})),
                )
                .await;
            }
            h.get(&path).await.1["properties"].clone()
        }
    };
    let fresh = status_after("").await;
    assert_eq!(fresh["hs_latest_status"], "succeeded");
    assert_eq!(fresh["hs_fees_amount"], "3.40");
    assert_eq!(fresh["hs_net_amount"], "96.60");
    assert_eq!(
        status_after("40").await["hs_latest_status"],
        "partially_refunded"
    );
    let full = status_after("100").await;
    assert_eq!(full["hs_latest_status"], "refunded");
    assert_eq!(full["hs_net_amount"], "-3.40");
}

//! HubSpot search over HTTP: operators, AND/OR, sorts, paging, the result cap, limits, the
//! per-second search limit and the 10-second burst limit with its headers.

mod hubspot_harness;
use axum::http::StatusCode;
use hubspot_harness::Hub;
use reqwest::Method;
use sandbox::hubspot::{HubSpotConfig, RateLimits};
use serde_json::{json, Value};

fn no_throttle() -> HubSpotConfig {
    HubSpotConfig {
        limits: RateLimits {
            enabled: false,
            ..RateLimits::default()
        },
        ..HubSpotConfig::default()
    }
}

async fn seed_deals(h: &Hub, n: usize) {
    let inputs: Vec<Value> = (0..n)
        .map(|i| json!({"properties": {"dealname": format!("Deal {i} alpha"), "amount": (i * 10).to_string(),
                                        "dealstage": if i % 2 == 0 { "closedwon" } else { "appointmentscheduled" }}}))
        .collect();
    for chunk in inputs.chunks(100) {
        let (status, _) = h
            .post(
                "/crm/v3/objects/deals/batch/create",
                json!({"inputs": chunk}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
}

async fn names(h: &Hub, filter_groups: Value) -> Vec<String> {
    let (status, body) = h
        .post(
            "/crm/v3/objects/deals/search",
            json!({"filterGroups": filter_groups, "properties": ["dealname"], "limit": 200,
              "sorts": [{"propertyName": "amount", "direction": "ASCENDING"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["results"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            r["properties"]["dealname"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

fn f(prop: &str, op: &str, value: Value) -> Value {
    json!({"propertyName": prop, "operator": op, "value": value})
}

#[tokio::test]
async fn operators() {
    let h = Hub::start_with(no_throttle()).await;
    seed_deals(&h, 10).await;
    h.post(
        "/crm/v3/objects/deals",
        json!({"properties": {"dealname": "Unpriced"}}),
    )
    .await;
    let g = |filters: Vec<Value>| json!([{"filters": filters}]);
    assert_eq!(
        names(&h, g(vec![f("amount", "EQ", json!("30"))])).await,
        ["Deal 3 alpha"]
    );
    assert_eq!(
        names(&h, g(vec![f("amount", "LT", json!("20"))])).await,
        ["Deal 0 alpha", "Deal 1 alpha"]
    );
    assert_eq!(
        names(&h, g(vec![f("amount", "GTE", json!(80))])).await,
        ["Deal 8 alpha", "Deal 9 alpha"]
    );
    assert_eq!(names(&h, g(vec![json!({"propertyName": "amount", "operator": "BETWEEN", "value": "25", "highValue": "45"})])).await, ["Deal 3 alpha", "Deal 4 alpha"]);
    assert_eq!(
        names(
            &h,
            g(vec![
                json!({"propertyName": "amount", "operator": "IN", "values": ["10", "90"]})
            ])
        )
        .await,
        ["Deal 1 alpha", "Deal 9 alpha"]
    );
    assert_eq!(names(&h, g(vec![json!({"propertyName": "amount", "operator": "NOT_IN", "values": ["0", "10", "20", "30", "40", "50", "60", "70"]}), f("amount", "HAS_PROPERTY", Value::Null)])).await.len(), 2);
    assert_eq!(
        names(
            &h,
            g(vec![
                json!({"propertyName": "amount", "operator": "NOT_HAS_PROPERTY"})
            ])
        )
        .await,
        ["Unpriced"]
    );
    assert_eq!(
        names(
            &h,
            g(vec![f("dealname", "CONTAINS_TOKEN", json!("unpriced"))])
        )
        .await,
        ["Unpriced"]
    );
    assert_eq!(
        names(
            &h,
            g(vec![f("dealname", "NOT_CONTAINS_TOKEN", json!("alpha"))])
        )
        .await,
        ["Unpriced"]
    );
    assert_eq!(
        names(
            &h,
            g(vec![
                f("dealstage", "NEQ", json!("closedwon")),
                f("amount", "LTE", json!("30"))
            ])
        )
        .await,
        ["Deal 1 alpha", "Deal 3 alpha"]
    );
    // OR across groups.
    let or = json!([{"filters": [f("amount", "EQ", json!("0"))]}, {"filters": [f("amount", "EQ", json!("90"))]}]);
    assert_eq!(names(&h, or).await, ["Deal 0 alpha", "Deal 9 alpha"]);
    // Descending sort and free-text query.
    let (_, body) = h
        .post("/crm/v3/objects/deals/search", json!({"query": "alpha", "sorts": [{"propertyName": "amount", "direction": "DESCENDING"}], "limit": 1}))
        .await;
    assert_eq!(body["total"], 10);
    assert_eq!(body["results"][0]["properties"]["amount"], "90");
    // Dates compare as instants: epoch ms filter against ISO values.
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000 + 3_600_000;
    assert_eq!(
        names(
            &h,
            g(vec![f(
                "hs_lastmodifieddate",
                "GTE",
                json!(now_ms.to_string())
            )])
        )
        .await
        .len(),
        0
    );
    assert_eq!(
        names(
            &h,
            g(vec![f(
                "hs_lastmodifieddate",
                "LT",
                json!(now_ms.to_string())
            )])
        )
        .await
        .len(),
        11
    );
    // Bad operator / unknown property / too many groups.
    let (status, _) = h
        .post(
            "/crm/v3/objects/deals/search",
            json!({"filterGroups": g(vec![f("amount", "LIKE", json!("1"))])}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = h
        .post(
            "/crm/v3/objects/deals/search",
            json!({"filterGroups": g(vec![f("nope", "EQ", json!("1"))])}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let groups: Vec<Value> = (0..7)
        .map(|_| json!({"filters": [f("amount", "EQ", json!("1"))]}))
        .collect();
    let (status, _) = h
        .post(
            "/crm/v3/objects/deals/search",
            json!({"filterGroups": groups}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn paging_limit_and_result_cap() {
    let h = Hub::start_with(no_throttle()).await;
    seed_deals(&h, 250).await;
    let (status, _) = h
        .post("/crm/v3/objects/deals/search", json!({"limit": 201}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let mut after: Option<String> = None;
    let mut seen = 0;
    loop {
        let mut req = json!({"limit": 200, "sorts": ["hs_object_id"]});
        if let Some(a) = &after {
            req["after"] = json!(a);
        }
        let (status, body) = h.post("/crm/v3/objects/deals/search", req).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["total"], 250);
        seen += body["results"].as_array().map_or(0, Vec::len);
        match body["paging"]["next"]["after"].as_str() {
            Some(a) => after = Some(a.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, 250);
    // The cap (10,000 by default) made small: paging to it fails with 400.
    h.control(
        Method::POST,
        "/_sandbox/policy",
        json!({"search_result_cap": 100}),
    )
    .await;
    let (status, body) = h
        .post("/crm/v3/objects/deals/search", json!({"limit": 100}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total"], 250, "total is the real count");
    assert_eq!(body["paging"]["next"]["after"], "100");
    let (status, body) = h
        .post(
            "/crm/v3/objects/deals/search",
            json!({"limit": 100, "after": "100"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["category"], "VALIDATION_ERROR");
}

#[tokio::test]
async fn search_per_second_limit_and_no_rate_headers() {
    let h = Hub::start().await;
    for _ in 0..5 {
        let (status, _, headers) = h
            .call_with(
                &h.token,
                Method::POST,
                "/crm/v3/objects/contacts/search",
                Some(json!({})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers.get("x-hubspot-ratelimit-remaining").is_none());
        assert!(headers.get("x-hubspot-correlation-id").is_some());
    }
    let (status, body, _) = h
        .call_with(
            &h.token,
            Method::POST,
            "/crm/v3/objects/contacts/search",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["message"], "You have reached your secondly limit.");
    assert_eq!(body["errorType"], "RATE_LIMIT");
    // The sandbox clock rolls the window.
    h.control(
        Method::POST,
        "/_sandbox/clock",
        json!({"advance_seconds": 2}),
    )
    .await;
    let (status, _, _) = h
        .call_with(
            &h.token,
            Method::POST,
            "/crm/v3/objects/contacts/search",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn ten_second_burst_limit_with_headers() {
    let h = Hub::start().await;
    h.control(
        Method::POST,
        "/_sandbox/throttle",
        json!({"burst_max": 3, "daily_max": 100}),
    )
    .await;
    for expected in [2, 1, 0] {
        let (status, _, headers) = h
            .call_with(&h.token, Method::GET, "/crm/v3/objects/contacts", None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-hubspot-ratelimit-max"], "3");
        assert_eq!(
            headers["x-hubspot-ratelimit-interval-milliseconds"],
            "10000"
        );
        assert_eq!(
            headers["x-hubspot-ratelimit-remaining"],
            expected.to_string().as_str()
        );
        assert!(headers.get("x-hubspot-ratelimit-daily-remaining").is_some());
    }
    let (status, body, headers) = h
        .call_with(&h.token, Method::GET, "/crm/v3/objects/contacts", None)
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(body["status"], "error");
    assert!(body["correlationId"].is_string());
    assert_eq!(headers["x-hubspot-ratelimit-remaining"], "0");
    // Another portal has its own window.
    let other = h.mint(json!({"portal_id": 62516})).await["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (status, _, _) = h
        .call_with(&other, Method::GET, "/crm/v3/objects/contacts", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    h.control(
        Method::POST,
        "/_sandbox/clock",
        json!({"advance_seconds": 11}),
    )
    .await;
    let (status, _, _) = h
        .call_with(&h.token, Method::GET, "/crm/v3/objects/contacts", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    // Daily limit.
    h.control(
        Method::POST,
        "/_sandbox/throttle",
        json!({"burst_max": 1000, "daily_max": 5}),
    )
    .await;
    let mut last = StatusCode::OK;
    let mut policy = Value::Null;
    for _ in 0..5 {
        let (s, b, _) = h
            .call_with(&h.token, Method::GET, "/crm/v3/objects/contacts", None)
            .await;
        last = s;
        policy = b["policyName"].clone();
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(policy, "DAILY");
}

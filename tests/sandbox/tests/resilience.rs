//! requestid replay (also after a dropped response), fault rules, counters and request log,
//! throttling (per minute, concurrency, batch), latency profile.

mod harness;
use harness::{Sbx, US};
use reqwest::{Method, StatusCode};
use sandbox::qbo::{QboConfig, ThrottleLimits};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn requestid_replays_the_original_answer_after_a_dropped_response() {
    let sbx = Sbx::start().await;
    sbx.control(
        Method::POST,
        "/_sandbox/faults",
        json!({"method": "POST", "path": "/v3/company/*/customer", "action": "drop_response", "times": 1}),
    )
    .await;
    let url = format!("{}?requestid=rid-001&minorversion=75", sbx.api("customer"));
    let lost = sbx
        .http
        .post(&url)
        .bearer_auth(&sbx.token)
        .json(&json!({"DisplayName": "Once Only"}))
        .send()
        .await;
    assert!(lost.is_err(), "the connection closes without an answer");
    let replay = sbx
        .http
        .post(&url)
        .bearer_auth(&sbx.token)
        .json(&json!({"DisplayName": "Once Only"}))
        .send()
        .await
        .expect("retry");
    assert_eq!(replay.status(), StatusCode::OK);
    let body: serde_json::Value = replay.json().await.unwrap_or_default();
    assert_eq!(body["Customer"]["DisplayName"], "Once Only");
    let (_, count) = sbx
        .query("SELECT COUNT(*) FROM Customer WHERE DisplayName = 'Once Only'")
        .await;
    assert_eq!(
        count["QueryResponse"]["totalCount"], 1,
        "the write happened exactly once"
    );
    // A fresh requestid is a fresh write (and here a duplicate name).
    let (s, dup) = sbx
        .post(
            "customer?requestid=rid-002",
            json!({"DisplayName": "Once Only"}),
        )
        .await;
    assert_eq!(
        (s, harness::code(&dup).as_str()),
        (StatusCode::BAD_REQUEST, "6240")
    );
    // Faults are replayed too, without re-running the write.
    let (s, again) = sbx
        .post(
            "customer?requestid=rid-002",
            json!({"DisplayName": "Something Else"}),
        )
        .await;
    assert_eq!(
        (s, harness::code(&again).as_str()),
        (StatusCode::BAD_REQUEST, "6240")
    );
}

#[tokio::test]
async fn fault_rules_respond_count_and_expire() {
    let sbx = Sbx::start().await;
    let rule = sbx
        .control(
            Method::POST,
            "/_sandbox/faults",
            json!({"method": "GET", "path": "/v3/company/*/preferences", "status": 503, "body": {"oops": true}, "times": 2}),
        )
        .await;
    assert_eq!(rule["rules"][0]["id"], 1);
    for _ in 0..2 {
        let (s, body) = sbx.get("preferences").await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, json!({"oops": true}));
    }
    let (s, _) = sbx.get("preferences").await;
    assert_eq!(s, StatusCode::OK);
    // Probability 0 never fires; added latency delays the real answer.
    sbx.control(
        Method::POST,
        "/_sandbox/faults",
        json!({"path": "/v3/*", "status": 500, "probability": 0.0}),
    )
    .await;
    sbx.control(
        Method::POST,
        "/_sandbox/faults",
        json!({"path": "/v3/*/companyinfo/*", "action": "delay", "latency_ms": 300}),
    )
    .await;
    let started = Instant::now();
    let (s, _) = sbx.get(&format!("companyinfo/{US}")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let counters = sbx.control_get("/_sandbox/counters").await;
    let prefs = &counters["endpoints"]["GET /v3/company/{id}/preferences"];
    assert_eq!(prefs["count"], 3);
    assert_eq!(prefs["by_status"]["503"], 2);
    let log = sbx.control_get("/_sandbox/requests").await;
    let entries = log["requests"].as_array().cloned().unwrap_or_default();
    assert!(entries.iter().any(|e| e["path"]
        .as_str()
        .is_some_and(|p| p.ends_with("/companyinfo/9130350000000001"))));
    assert!(entries.iter().all(|e| e["transaction_id"].is_string()));
    sbx.control(Method::DELETE, "/_sandbox/faults", json!({}))
        .await;
}

#[tokio::test]
async fn timeouts_hold_the_request_without_writing() {
    let sbx = Sbx::start().await;
    sbx.control(
        Method::POST,
        "/_sandbox/faults",
        json!({"path": "/v3/company/*/customer", "action": "timeout", "latency_ms": 5000, "times": 1}),
    )
    .await;
    let result = sbx
        .http
        .post(sbx.api("customer"))
        .bearer_auth(&sbx.token)
        .timeout(Duration::from_millis(300))
        .json(&json!({"DisplayName": "Timed Out"}))
        .send()
        .await;
    assert!(result.is_err_and(|e| e.is_timeout()));
    let (_, count) = sbx.query("SELECT COUNT(*) FROM Customer").await;
    assert_eq!(count["QueryResponse"]["totalCount"], 0);
}

fn tight(limits: ThrottleLimits) -> QboConfig {
    QboConfig {
        limits,
        ..QboConfig::default()
    }
}

#[tokio::test]
async fn per_minute_limit_answers_429_until_the_window_rolls() {
    let sbx = Sbx::start_with(tight(ThrottleLimits {
        per_minute: 5,
        ..ThrottleLimits::default()
    }))
    .await;
    for _ in 0..5 {
        assert_eq!(sbx.get("preferences").await.0, StatusCode::OK);
    }
    let (s, body) = sbx.get("preferences").await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["Fault"]["Error"][0]["code"], "3001");
    assert_eq!(body["Fault"]["type"], "SERVICE");
    // Another realm has its own budget.
    let mut other = Sbx {
        realm: harness::GB.into(),
        ..sbx
    };
    other.token = other.mint(harness::GB).await;
    assert_eq!(other.get("preferences").await.0, StatusCode::OK);
    other
        .control(
            Method::POST,
            "/_sandbox/clock",
            json!({"advance_seconds": 61}),
        )
        .await;
    other.use_realm(US).await;
    assert_eq!(other.get("preferences").await.0, StatusCode::OK);
}

#[tokio::test]
async fn throttle_body_format_and_retry_after_are_configurable() {
    let sbx = Sbx::start_with(tight(ThrottleLimits {
        per_minute: 1,
        ..ThrottleLimits::default()
    }))
    .await;
    assert_eq!(sbx.get("preferences").await.0, StatusCode::OK);
    let plain = sbx
        .http
        .get(sbx.api("preferences"))
        .bearer_auth(&sbx.token)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        plain.headers().get("retry-after").is_none(),
        "no Retry-After unless configured"
    );

    let mut limits = sbx.control_get("/_sandbox/throttle").await;
    limits["retry_after_seconds"] = json!(60);
    limits["xml_body"] = json!(true);
    sbx.control(Method::POST, "/_sandbox/throttle", limits)
        .await;
    let xml = sbx
        .http
        .get(sbx.api("preferences"))
        .bearer_auth(&sbx.token)
        .send()
        .await
        .unwrap();
    assert_eq!(xml.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(xml.headers()["retry-after"], "60");
    assert_eq!(xml.headers()["content-type"], "application/xml");
    let body = xml.text().await.unwrap();
    assert!(body.contains(r#"<Error code="3001">"#), "{body}");
    assert!(body.contains("message=ThrottleExceeded; errorCode=003001; statusCode=429"));
}

#[tokio::test]
async fn concurrency_limit_refuses_the_eleventh_request_in_flight() {
    let sbx = Sbx::start().await;
    sbx.control(
        Method::POST,
        "/_sandbox/faults",
        json!({"path": "/v3/company/*/preferences", "action": "delay", "latency_ms": 700}),
    )
    .await;
    let calls = (0..12).map(|_| sbx.get("preferences"));
    let results = futures::future::join_all(calls).await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let throttled = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((ok, throttled), (10, 2));
}

#[tokio::test]
async fn batch_requests_have_their_own_per_minute_limit_and_scale_multiplies() {
    let sbx = Sbx::start_with(tight(ThrottleLimits {
        batch_per_minute: 2,
        ..ThrottleLimits::default()
    }))
    .await;
    let batch = json!({"BatchItemRequest": [{"bId": "1", "Query": "select * from Term"}]});
    assert_eq!(sbx.post("batch", batch.clone()).await.0, StatusCode::OK);
    assert_eq!(sbx.post("batch", batch.clone()).await.0, StatusCode::OK);
    assert_eq!(
        sbx.post("batch", batch.clone()).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        sbx.get("preferences").await.0,
        StatusCode::OK,
        "other calls still pass"
    );
    let mut limits = sbx.control_get("/_sandbox/throttle").await;
    limits["scale"] = json!(2.0);
    sbx.control(Method::POST, "/_sandbox/throttle", limits)
        .await;
    assert_eq!(sbx.post("batch", batch.clone()).await.0, StatusCode::OK);
}

#[tokio::test]
async fn latency_profile_slows_every_api_call() {
    let sbx = Sbx::start().await;
    sbx.control(
        Method::POST,
        "/_sandbox/latency",
        json!({"enabled": true, "min_ms": 50, "max_ms": 300}),
    )
    .await;
    let started = Instant::now();
    for _ in 0..3 {
        sbx.get("preferences").await;
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(150) && elapsed < Duration::from_millis(5000),
        "{elapsed:?}"
    );
}

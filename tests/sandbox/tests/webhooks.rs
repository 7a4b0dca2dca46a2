//! Webhooks: CloudEvents and legacy bodies, `intuit-signature`, retries on failure, aggregation.

mod harness;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::Engine;
use harness::{Sbx, US};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::Method;
use sandbox::qbo::{QboConfig, WebhookFormat, WebhookSettings};
use serde_json::Value;
use sha2::Sha256;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Receiver {
    got: Mutex<Vec<(String, Value)>>,
    /// Answer 500 to this many requests first.
    fail_first: AtomicUsize,
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if r.fail_first.load(Ordering::SeqCst) > 0 {
        r.fail_first.fetch_sub(1, Ordering::SeqCst);
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let signature = headers
        .get("intuit-signature")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    // Verify exactly as a QBO app does: HMAC-SHA256 of the raw body with the verifier token.
    let mut mac =
        Hmac::<Sha256>::new_from_slice(sandbox::qbo::app::DEFAULT_VERIFIER_TOKEN.as_bytes())
            .expect("key");
    mac.update(&body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let verdict = if expected == signature {
        "valid"
    } else {
        "invalid"
    };
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Ok(mut got) = r.got.lock() {
        got.push((verdict.to_string(), json));
    }
    StatusCode::OK
}

async fn receiver() -> (String, Arc<Receiver>, sandbox::common::server::ServerHandle) {
    let state = Arc::new(Receiver::default());
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(state.clone());
    let handle = sandbox::common::server::serve("127.0.0.1:0".parse().expect("addr"), app)
        .await
        .expect("receiver");
    (format!("http://{}/hook", handle.addr), state, handle)
}

async fn wait_for(r: &Receiver, n: usize) -> Vec<(String, Value)> {
    for _ in 0..300 {
        if let Ok(got) = r.got.lock() {
            if got.len() >= n {
                return got.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    r.got.lock().map(|g| g.clone()).unwrap_or_default()
}

fn config(url: &str, format: WebhookFormat, aggregation_ms: u64) -> QboConfig {
    QboConfig {
        webhooks: WebhookSettings {
            urls: vec![url.to_string()],
            format,
            aggregation_ms,
            retry_delays_ms: vec![50, 50],
            ..WebhookSettings::default()
        },
        ..QboConfig::default()
    }
}

#[tokio::test]
async fn cloud_events_are_signed_and_name_entity_and_operation() {
    let (url, r, _h) = receiver().await;
    let sbx = Sbx::start_with(config(&url, WebhookFormat::CloudEvents, 0)).await;
    let c = sbx.customer("Hook Hank").await;
    let got = wait_for(&r, 1).await;
    assert_eq!(got[0].0, "valid");
    let event = &got[0].1[0];
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["type"], "qbo.customer.created.v1");
    assert_eq!(event["intuitentityid"], c["Id"]);
    assert_eq!(event["intuitaccountid"], US);
    assert!(event["id"].is_string() && event["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    sbx.post(
        "customer",
        serde_json::json!({"Id": c["Id"], "SyncToken": "0", "sparse": true, "Notes": "x"}),
    )
    .await;
    let got = wait_for(&r, 2).await;
    assert_eq!(got[1].1[0]["type"], "qbo.customer.updated.v1");
}

#[tokio::test]
async fn legacy_format_aggregates_and_failed_deliveries_are_retried() {
    let (url, r, _h) = receiver().await;
    r.fail_first.store(1, Ordering::SeqCst);
    let sbx = Sbx::start_with(config(&url, WebhookFormat::Legacy, 200)).await;
    let c = sbx.customer("Legacy Lou").await;
    let inv = sbx
        .invoice(c["Id"].as_str().unwrap_or_default(), 1, 3.0)
        .await;
    sbx.post(
        "invoice?operation=void",
        serde_json::json!({"Id": inv["Id"], "SyncToken": "0"}),
    )
    .await;
    let got = wait_for(&r, 1).await;
    assert_eq!(got.len(), 1, "one aggregated notification");
    assert_eq!(got[0].0, "valid");
    let note = &got[0].1["eventNotifications"][0];
    assert_eq!(note["realmId"], US);
    let ops: Vec<(String, String)> = note["dataChangeEvent"]["entities"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or("").to_string(),
                e["operation"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("Customer".into(), "Create".into()),
            ("Invoice".into(), "Create".into()),
            ("Invoice".into(), "Void".into())
        ]
    );
    let deliveries = sbx.control_get("/_sandbox/webhooks/deliveries").await;
    let attempts = deliveries["deliveries"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["status"], 500);
    assert_eq!(attempts[1]["attempt"], 2);
    assert_eq!(attempts[1]["delivered"], true);
    // Webhook targets can be changed at run time.
    let mut settings = sbx.control_get("/_sandbox/webhooks").await;
    settings["urls"] = serde_json::json!([]);
    sbx.control(Method::POST, "/_sandbox/webhooks", settings)
        .await;
}

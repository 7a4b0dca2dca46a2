//! The workflow runner (HubSpot's side of custom actions): definitions, signed execution
//! requests, retries with backoff on 429/5xx/timeouts, FAIL_CONTINUE, BLOCK + callback
//! completion, expiry by the sandbox clock.

mod hubspot_harness;
use axum::http::StatusCode;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use hubspot_harness::{settled, Answer, Hub, Receiver, SECRET};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

async fn setup(h: &Hub, rx: &Receiver, settings: Value) -> (String, String) {
    let mut s = json!({"retry_delays_ms": [30, 30, 30], "timeout_ms": 2000});
    if let (Some(m), Some(e)) = (s.as_object_mut(), settings.as_object()) {
        for (k, v) in e {
            m.insert(k.clone(), v.clone());
        }
    }
    h.control(Method::POST, "/_sandbox/workflows/settings", s)
        .await;
    let deal = h
        .create(
            "deals",
            json!({"dealname": "Invoice me", "amount": "120.00"}),
        )
        .await;
    let resp = h
        .http
        .post(h.url("/automation/v4/actions/54321?hapikey=sandbox-hubspot-developer-key"))
        .json(&json!({
            "actionUrl": rx.url,
            "published": true,
            "objectTypes": ["DEAL"],
            "objectRequestOptions": {"properties": ["dealname", "amount"]},
            "inputFields": [{"typeDefinition": {"name": "memo", "type": "string", "fieldType": "text"}, "supportedValueTypes": ["STATIC_VALUE"], "isRequired": false}],
            "labels": {"en": {"actionName": "Create QBO invoice"}},
            "functions": []
        }))
        .send()
        .await
        .expect("definition");
    assert_eq!(resp.status().as_u16(), 201);
    let def: Value = resp.json().await.expect("json");
    (def["id"].as_str().expect("id").to_string(), deal)
}

async fn enroll(h: &Hub, def: &str, deal: &str) -> String {
    let e = h
        .control(Method::POST, "/_sandbox/workflows/enroll", json!({"definition_id": def, "object_type": "deals", "object_id": deal.parse::<u64>().unwrap_or(0), "input_fields": {"memo": "hello"}}))
        .await;
    e["callbackId"].as_str().expect("callback").to_string()
}

fn header(r: &hubspot_harness::Received, name: &str) -> String {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn request_shape_and_signatures() {
    let h = Hub::start().await;
    let rx = Receiver::start("/action").await;
    let (def, deal) = setup(&h, &rx, json!({})).await;
    rx.script(vec![Answer::json(
        200,
        json!({"outputFields": {"qboInvoiceId": "1043", "hs_execution_state": "SUCCESS"}}),
    )]);
    let cb = enroll(&h, &def, &deal).await;
    assert!(cb.starts_with("ap-62515-"));
    let e = settled(&h, &cb).await;
    assert_eq!(e["state"], "SUCCESS");
    assert_eq!(e["output_fields"]["qboInvoiceId"], "1043");
    let got = rx.received();
    let r = &got[0];
    let body: Value = serde_json::from_str(&r.body).expect("json");
    assert_eq!(body["callbackId"], cb.as_str());
    assert_eq!(body["origin"]["portalId"], 62515);
    assert_eq!(body["origin"]["actionDefinitionId"].to_string(), def);
    assert_eq!(body["context"]["source"], "WORKFLOWS");
    assert_eq!(body["object"]["objectType"], "DEAL");
    assert_eq!(body["object"]["objectId"].to_string(), deal);
    assert_eq!(body["object"]["properties"]["amount"], "120.00");
    assert_eq!(body["inputFields"]["memo"], "hello");
    // v2: hex(SHA-256(secret + method + uri + body)).
    assert_eq!(header(r, "x-hubspot-signature-version"), "v2");
    let mut sha = Sha256::new();
    sha.update(format!("{SECRET}POST{}{}", rx.url, r.body).as_bytes());
    let v2: String = sha.finalize().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(header(r, "x-hubspot-signature"), v2);
    // v3: base64(HMAC-SHA256(secret, method + uri + body + timestamp)).
    let ts = header(r, "x-hubspot-request-timestamp");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(format!("POST{}{}{ts}", rx.url, r.body).as_bytes());
    assert_eq!(
        header(r, "x-hubspot-signature-v3"),
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    // The definition endpoints.
    let list: Value = h
        .http
        .get(h.url("/automation/v4/actions/54321?hapikey=sandbox-hubspot-developer-key"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list["results"].as_array().map(Vec::len), Some(1));
    let status = h
        .http
        .get(h.url("/automation/v4/actions/54321?hapikey=wrong"))
        .send()
        .await
        .expect("list")
        .status();
    assert_eq!(status.as_u16(), 401);
    let status = h
        .http
        .post(h.url("/automation/v4/actions/54321?hapikey=sandbox-hubspot-developer-key"))
        .json(&json!({"actionUrl": "x"}))
        .send()
        .await
        .expect("bad")
        .status();
    assert_eq!(status.as_u16(), 400);
}

#[tokio::test]
async fn retries_on_5xx_429_and_timeouts_then_succeeds() {
    let h = Hub::start().await;
    let rx = Receiver::start("/action").await;
    let (def, deal) = setup(&h, &rx, json!({"timeout_ms": 600})).await;
    let mut limited = Answer::json(429, json!({}));
    limited.headers.push(("Retry-After".into(), "0".into()));
    let mut slow = Answer::json(
        200,
        json!({"outputFields": {"hs_execution_state": "SUCCESS", "late": "yes"}}),
    );
    slow.delay_ms = 2000;
    rx.script(vec![
        Answer::json(502, json!({})),
        limited,
        slow,
        Answer::json(200, json!({"outputFields": {"n": "4"}})),
    ]);
    let cb = enroll(&h, &def, &deal).await;
    let e = settled(&h, &cb).await;
    assert_eq!(e["state"], "SUCCESS", "{e}");
    assert_eq!(e["output_fields"]["n"], "4");
    let attempts = e["attempts"].as_array().cloned().unwrap_or_default();
    assert_eq!(attempts.len(), 4);
    assert_eq!(attempts[0]["status"], 502);
    assert_eq!(attempts[1]["status"], 429);
    assert!(attempts[2]["error"]
        .as_str()
        .unwrap_or("")
        .contains("timeout"));
    // Every attempt carries the same callbackId.
    let ids: Vec<String> = rx
        .received()
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(&r.body)
                .map(|v| v["callbackId"].to_string())
                .unwrap_or_default()
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]));
}

#[tokio::test]
async fn other_4xx_fail_without_retry_and_retries_run_out() {
    let h = Hub::start().await;
    let rx = Receiver::start("/action").await;
    let (def, deal) = setup(&h, &rx, json!({})).await;
    rx.script(vec![Answer::json(400, json!({"message": "bad"}))]);
    let cb = enroll(&h, &def, &deal).await;
    let e = settled(&h, &cb).await;
    assert_eq!(e["state"], "FAILED");
    assert_eq!(e["attempts"].as_array().map(Vec::len), Some(1));
    rx.script((0..4).map(|_| Answer::json(500, json!({}))).collect());
    let cb = enroll(&h, &def, &deal).await;
    let e = settled(&h, &cb).await;
    assert_eq!(e["state"], "FAILED");
    assert_eq!(
        e["attempts"].as_array().map(Vec::len),
        Some(4),
        "1 try + 3 retries"
    );
    rx.script(vec![Answer::json(200, json!({"outputFields": {"hs_execution_state": "FAIL_CONTINUE", "errorCode": "ALREADY_EXISTS"}}))]);
    let cb = enroll(&h, &def, &deal).await;
    let e = settled(&h, &cb).await;
    assert_eq!(e["state"], "FAIL_CONTINUE");
    assert_eq!(e["output_fields"]["errorCode"], "ALREADY_EXISTS");
}

#[tokio::test]
async fn block_then_callback_completion_and_expiry() {
    let h = Hub::start().await;
    let rx = Receiver::start("/action").await;
    let (def, deal) = setup(&h, &rx, json!({})).await;
    rx.script(vec![Answer::json(
        200,
        json!({"outputFields": {"hs_execution_state": "BLOCK", "hs_expiration_duration": "P1D"}}),
    )]);
    let cb = enroll(&h, &def, &deal).await;
    let e = settled(&h, &cb).await;
    assert_eq!(e["state"], "BLOCKED");
    assert!(e["expires_at"].is_string());
    let (status, _) = h
        .post(
            &format!("/automation/v4/actions/callbacks/{cb}/complete"),
            json!({"outputFields": {"hs_execution_state": "SUCCESS", "qboInvoiceId": "77"}}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let e = h
        .control_get(&format!("/_sandbox/workflows/executions/{cb}"))
        .await;
    assert_eq!(e["state"], "SUCCESS");
    assert_eq!(e["output_fields"]["qboInvoiceId"], "77");
    assert_eq!(e["completed_by_callback"], true);
    let (status, _) = h
        .post(
            &format!("/automation/v4/actions/callbacks/{cb}/complete"),
            json!({"outputFields": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "already complete");
    let (status, _) = h
        .post(
            "/automation/v4/actions/callbacks/ap-nope/complete",
            json!({"outputFields": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Without the automation scope.
    let narrow = h.mint(json!({"scopes": ["oauth"]})).await["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (status, _, _) = h
        .call_with(
            &narrow,
            Method::POST,
            &format!("/automation/v4/actions/callbacks/{cb}/complete"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Default expiry (P7D) passes on the sandbox clock; batch completion of another one.
    rx.script(vec![
        Answer::json(
            200,
            json!({"outputFields": {"hs_execution_state": "BLOCK"}}),
        ),
        Answer::json(
            200,
            json!({"outputFields": {"hs_execution_state": "BLOCK"}}),
        ),
    ]);
    let expiring = enroll(&h, &def, &deal).await;
    assert_eq!(settled(&h, &expiring).await["state"], "BLOCKED");
    let other = enroll(&h, &def, &deal).await;
    assert_eq!(settled(&h, &other).await["state"], "BLOCKED");
    let (status, _) = h
        .post("/automation/v4/actions/callbacks/complete", json!({"inputs": [{"callbackId": other, "outputFields": {"hs_execution_state": "FAIL_CONTINUE"}}]}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        h.control_get(&format!("/_sandbox/workflows/executions/{other}"))
            .await["state"],
        "FAIL_CONTINUE"
    );
    h.control(
        Method::POST,
        "/_sandbox/clock",
        json!({"advance_seconds": 8 * 86_400}),
    )
    .await;
    assert_eq!(
        h.control_get(&format!("/_sandbox/workflows/executions/{expiring}"))
            .await["state"],
        "EXPIRED"
    );
    let token = h.mint(json!({})).await["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (status, _, _) = h
        .call_with(
            &token,
            Method::POST,
            &format!("/automation/v4/actions/callbacks/{expiring}/complete"),
            Some(json!({"outputFields": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

//! Request signatures (v1, v2, v3) against the reference's test vectors, computed independently
//! here, and webhooks: subscriptions, batched signed deliveries, retries and non-retried statuses.

mod hubspot_harness;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use hubspot_harness::{Answer, Hub, Received, Receiver, SECRET};
use reqwest::Method;
use sandbox::hubspot::signature;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn sha256_hex(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac_b64(secret: &str, message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(message.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

const REF_SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
const REF_URI: &str = "https://www.example.com/webhook_uri";

#[test]
fn reference_test_vectors() {
    let webhook = r#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]"#;
    let cases = [
        (
            sha256_hex(&[REF_SECRET, webhook]),
            signature::v1(REF_SECRET, webhook),
            "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de",
        ),
        (
            sha256_hex(&[REF_SECRET, "{'example_field':'example_value'}"]),
            signature::v1(REF_SECRET, "{'example_field':'example_value'}"),
            "69fc6631a867edd4f9e9e627fc5c1148e3fbdd8b21837b6d2b8901c1fa57f750",
        ),
        (
            sha256_hex(&[REF_SECRET, "GET", REF_URI, ""]),
            signature::v2(REF_SECRET, "GET", REF_URI, ""),
            "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e",
        ),
        (
            sha256_hex(&[
                REF_SECRET,
                "POST",
                REF_URI,
                r#"{"example_field":"example_value"}"#,
            ]),
            signature::v2(
                REF_SECRET,
                "POST",
                REF_URI,
                r#"{"example_field":"example_value"}"#,
            ),
            "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900",
        ),
        (
            sha256_hex(&[
                REF_SECRET,
                "POST",
                REF_URI,
                "{'example_field':'example_value'}",
            ]),
            signature::v2(
                REF_SECRET,
                "POST",
                REF_URI,
                "{'example_field':'example_value'}",
            ),
            "4fe4e3a7d3cf09db53be39d0a58130e2aaba074ec123a9e355b876a689a1c383",
        ),
        (
            hmac_b64(
                REF_SECRET,
                &format!("POST{REF_URI}{{'example_field':'example_value'}}1693657560000"),
            ),
            signature::v3(
                REF_SECRET,
                "POST",
                REF_URI,
                "{'example_field':'example_value'}",
                1_693_657_560_000,
            ),
            "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y=",
        ),
    ];
    for (independent, ours, expected) in cases {
        assert_eq!(independent, expected);
        assert_eq!(ours, expected);
    }
}

fn header(r: &Received, name: &str) -> String {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Verifies a delivery exactly as an app would (v1 or v2 legacy header, and v3).
fn verify(r: &Received, url: &str) {
    let legacy = header(r, "x-hubspot-signature");
    match header(r, "x-hubspot-signature-version").as_str() {
        "v1" => assert_eq!(legacy, sha256_hex(&[SECRET, &r.body])),
        "v2" => assert_eq!(legacy, sha256_hex(&[SECRET, "POST", url, &r.body])),
        other => panic!("unexpected version {other}"),
    }
    let ts = header(r, "x-hubspot-request-timestamp");
    assert!(ts.parse::<i64>().is_ok());
    assert_eq!(
        header(r, "x-hubspot-signature-v3"),
        hmac_b64(SECRET, &format!("POST{url}{}{ts}", r.body))
    );
}

async fn hooked(h: &Hub, url: &str, extra: Value) {
    let mut settings = json!({
        "target_url": url,
        "retry_delays_ms": [50, 50, 50],
        "subscriptions": [
            {"eventType": "contact.creation"},
            {"eventType": "contact.propertyChange", "propertyName": "email"},
            {"eventType": "contact.deletion"},
            {"eventType": "object.creation", "objectTypeId": "0-53"},
            {"eventType": "deal.associationChange"},
            {"eventType": "deal.propertyChange", "propertyName": "dealstage", "active": false}
        ]
    });
    if let (Some(s), Some(e)) = (settings.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    h.control(Method::POST, "/_sandbox/webhooks", settings)
        .await;
}

fn events(received: &[Received]) -> Vec<Value> {
    received
        .iter()
        .flat_map(|r| serde_json::from_str::<Vec<Value>>(&r.body).unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn webhooks_are_signed_batched_and_typed() {
    let h = Hub::start().await;
    let rx = Receiver::start("/hook").await;
    hooked(&h, &rx.url, json!({})).await;
    let contact = h
        .create(
            "contacts",
            json!({"email": "w@example.com", "firstname": "W"}),
        )
        .await;
    let got = rx.wait_for(1).await;
    verify(&got[0], &rx.url);
    let evs = events(&got);
    let creation = evs
        .iter()
        .find(|e| e["subscriptionType"] == "contact.creation")
        .expect("creation event");
    assert_eq!(creation["objectId"].to_string(), contact);
    assert_eq!(creation["portalId"], 62515);
    assert_eq!(creation["appId"], 54321);
    assert_eq!(creation["attemptNumber"], 0);
    assert_eq!(creation["changeFlag"], "NEW");
    assert_eq!(creation["changeSource"], "INTEGRATION");
    assert!(creation["occurredAt"].as_i64().is_some());
    let change = evs
        .iter()
        .find(|e| e["subscriptionType"] == "contact.propertyChange")
        .expect("email change");
    assert_eq!(change["propertyName"], "email");
    assert_eq!(change["propertyValue"], "w@example.com");
    assert!(
        !evs.iter().any(|e| e["propertyName"] == "firstname"),
        "only subscribed properties"
    );
    // Generic object subscription for invoices; a change by a CRM user; inactive subscriptions stay silent.
    let invoice = h.create("invoices", json!({"hs_currency": "USD"})).await;
    let deal = h
        .create("deals", json!({"dealname": "D", "dealstage": "x"}))
        .await;
    h.call(
        Method::PUT,
        &format!("/crm/v4/objects/deals/{deal}/associations/default/contacts/{contact}"),
        None,
    )
    .await;
    h.control(
        Method::PATCH,
        &format!("/_sandbox/portals/62515/objects/contacts/{contact}"),
        json!({"properties": {"email": "ui@example.com"}}),
    )
    .await;
    h.call(
        Method::DELETE,
        &format!("/crm/v3/objects/contacts/{contact}"),
        None,
    )
    .await;
    let mut evs = Vec::new();
    for _ in 0..500 {
        evs = events(&rx.received());
        if evs
            .iter()
            .any(|e| e["subscriptionType"] == "contact.deletion")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let inv = evs
        .iter()
        .find(|e| e["subscriptionType"] == "object.creation")
        .expect("invoice creation");
    assert_eq!(inv["objectTypeId"], "0-53");
    assert_eq!(inv["objectId"].to_string(), invoice);
    let assoc = evs
        .iter()
        .find(|e| e["subscriptionType"] == "deal.associationChange")
        .expect("association change");
    assert_eq!(assoc["associationType"], "DEAL_TO_CONTACT");
    assert_eq!(assoc["associationRemoved"], false);
    let ui = evs
        .iter()
        .find(|e| e["propertyValue"] == "ui@example.com")
        .expect("ui change");
    assert_eq!(ui["changeSource"], "CRM_UI");
    assert!(evs
        .iter()
        .any(|e| e["subscriptionType"] == "contact.deletion" && e["changeFlag"] == "DELETED"));
    assert!(!evs
        .iter()
        .any(|e| e["subscriptionType"] == "deal.propertyChange"));
    for r in rx.received() {
        verify(&r, &rx.url);
    }
}

#[tokio::test]
async fn at_most_100_events_per_request() {
    let h = Hub::start().await;
    let rx = Receiver::start("/hook").await;
    hooked(
        &h,
        &rx.url,
        json!({"aggregation_ms": 1500, "subscriptions": [{"eventType": "contact.creation"}]}),
    )
    .await;
    for chunk in 0..2 {
        let inputs: Vec<Value> = (0..75)
            .map(|i| json!({"properties": {"firstname": format!("{chunk}-{i}")}}))
            .collect();
        h.post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": inputs}),
        )
        .await;
    }
    let mut got = Vec::new();
    for _ in 0..500 {
        got = rx.received();
        if events(&got).len() >= 150 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(events(&got).len(), 150);
    assert_eq!(got.len(), 2);
    assert_eq!(events(&got[..1]).len(), 100);
}

#[tokio::test]
async fn failed_deliveries_are_retried_and_resigned_but_not_on_400() {
    let h = Hub::start().await;
    let rx = Receiver::start("/hook").await;
    hooked(
        &h,
        &rx.url,
        json!({"signature_version": "v2", "subscriptions": [{"eventType": "contact.creation"}]}),
    )
    .await;
    rx.script(vec![
        Answer::json(500, json!({})),
        Answer::json(503, json!({})),
    ]);
    h.create("contacts", json!({"firstname": "R"})).await;
    let got = rx.wait_for(3).await;
    assert_eq!(got.len(), 3);
    let attempts: Vec<i64> = got
        .iter()
        .map(|r| {
            events(std::slice::from_ref(r))[0]["attemptNumber"]
                .as_i64()
                .unwrap_or(-1)
        })
        .collect();
    assert_eq!(attempts, vec![0, 1, 2]);
    for r in &got {
        verify(r, &rx.url);
    }
    let log = h.control_get("/_sandbox/webhooks/deliveries").await;
    assert_eq!(log["deliveries"].as_array().map(Vec::len), Some(3));
    assert_eq!(log["deliveries"][2]["delivered"], true);
    // 400 is final.
    rx.script(vec![Answer::json(400, json!({}))]);
    h.create("contacts", json!({"firstname": "S"})).await;
    let got = rx.wait_for(4).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), got.len());
    assert_eq!(got.len(), 4);
}

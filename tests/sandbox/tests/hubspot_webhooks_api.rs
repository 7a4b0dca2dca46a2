//! The webhooks management API (`/webhooks/v3/{appId}/…`) over HTTP: developer auth, settings,
//! subscriptions and their validation, and that what is registered through it is what the
//! sandbox delivers — CRM events of legacy and generic types, and the app-uninstall event.

mod hubspot_harness;
use hubspot_harness::{Hub, Received, Receiver, PORTAL, SECRET};
use reqwest::{Method, StatusCode};
use sandbox::hubspot::signature;
use serde_json::{json, Value};
use std::time::Duration;

const KEY: &str = sandbox::hubspot::app::DEFAULT_DEVELOPER_API_KEY;
const APP: u64 = sandbox::hubspot::app::DEFAULT_APP_ID;

/// Calls the management API with `?hapikey=` (as the official clients do).
async fn dev(h: &Hub, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut req = h
        .http
        .request(method, h.url(&format!("{path}{sep}hapikey={KEY}")));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn events(received: &[Received]) -> Vec<Value> {
    received
        .iter()
        .flat_map(|r| serde_json::from_str::<Vec<Value>>(&r.body).unwrap_or_default())
        .collect()
}

fn header(r: &Received, name: &str) -> String {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn events_until(rx: &Receiver, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut evs = Vec::new();
    for _ in 0..500 {
        evs = events(&rx.received());
        if done(&evs) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    evs
}

#[tokio::test]
async fn auth_app_id_and_validation() {
    let h = Hub::start().await;
    let path = format!("/webhooks/v3/{APP}/subscriptions");
    let no_key = h.http.get(h.url(&path)).send().await.expect("request");
    assert_eq!(no_key.status(), StatusCode::UNAUTHORIZED);
    let wrong_key = h
        .http
        .get(h.url(&format!("{path}?hapikey=nope")))
        .send()
        .await
        .expect("request");
    assert_eq!(wrong_key.status(), StatusCode::UNAUTHORIZED);
    // An app token works too (as on the action-definition endpoints).
    let (status, _) = h.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = dev(&h, Method::GET, "/webhooks/v3/999/settings", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["status"], "error");
    assert_eq!(body["category"], "OBJECT_NOT_FOUND");
    assert!(body["correlationId"].is_string());
    // No target URL yet.
    let (status, _) = dev(
        &h,
        Method::GET,
        &format!("/webhooks/v3/{APP}/settings"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let settings = format!("/webhooks/v3/{APP}/settings");
    for bad in [
        json!({"throttling": {"maxConcurrentRequests": 10}}),
        json!({"targetUrl": "not a url"}),
        json!({"targetUrl": "http://127.0.0.1:1/x", "throttling": {"maxConcurrentRequests": 0}}),
        json!({"targetUrl": "http://127.0.0.1:1/x", "throttling": {"period": "HOURLY"}}),
    ] {
        let (status, body) = dev(&h, Method::PUT, &settings, Some(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["category"], "VALIDATION_ERROR");
    }
    for (bad, says) in [
        (json!({}), "eventType is required"),
        (
            json!({"eventType": "invoice.creation"}),
            "Invalid eventType",
        ),
        (
            json!({"eventType": "product.associationChange"}),
            "Invalid eventType",
        ),
        (
            json!({"eventType": "object.creation"}),
            "objectTypeId is required",
        ),
        (
            json!({"eventType": "contact.propertyChange"}),
            "propertyName is required",
        ),
        (
            json!({"eventType": "object.propertyChange", "objectTypeId": "0-53"}),
            "propertyName is required",
        ),
    ] {
        let (status, body) = dev(&h, Method::POST, &path, Some(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["category"], "VALIDATION_ERROR");
        assert!(
            body["message"].as_str().is_some_and(|m| m.contains(says)),
            "{body}"
        );
    }
    let (status, _) = dev(&h, Method::GET, &format!("{path}/12345"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = dev(&h, Method::DELETE, &format!("{path}/abc"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn registered_subscriptions_are_what_is_delivered() {
    let h = Hub::start().await;
    let rx = Receiver::start("/hook").await;
    let base = format!("/webhooks/v3/{APP}");
    let (status, settings) = dev(
        &h,
        Method::PUT,
        &format!("{base}/settings"),
        Some(json!({"targetUrl": rx.url, "throttling": {"maxConcurrentRequests": 7, "period": "ROLLING_MINUTE"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(settings["targetUrl"], rx.url.as_str());
    assert_eq!(settings["throttling"]["maxConcurrentRequests"], 7);
    assert_eq!(settings["throttling"]["period"], "ROLLING_MINUTE");
    assert!(settings["createdAt"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    // The control API sees the same settings.
    let control = h.control_get("/_sandbox/webhooks").await;
    assert_eq!(control["target_url"], rx.url.as_str());
    assert_eq!(control["max_concurrent_requests"], 7);

    let mut ids = Vec::new();
    for body in [
        json!({"eventType": "contact.creation", "active": true}),
        json!({"eventType": "product.creation", "active": true}),
        json!({"eventType": "line_item.creation", "active": true}),
        json!({"eventType": "object.creation", "objectTypeId": "0-53", "active": true}),
        json!({"eventType": "object.creation", "objectTypeId": "0-101"}),
        json!({"eventType": "deal.propertyChange", "propertyName": "dealstage"}),
    ] {
        let (status, sub) = dev(
            &h,
            Method::POST,
            &format!("{base}/subscriptions"),
            Some(body),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{sub}");
        assert!(sub["id"].is_u64() && sub["createdAt"].is_string() && sub["updatedAt"].is_string());
        ids.push(sub["id"].as_u64().unwrap_or_default());
    }
    let (_, payments) = dev(
        &h,
        Method::GET,
        &format!("{base}/subscriptions/{}", ids[4]),
        None,
    )
    .await;
    assert_eq!(payments["active"], false, "active defaults to false");
    assert_eq!(payments["objectTypeId"], "0-101");
    // Activate the payments one singly and the deal one in a batch (with an unknown id: 207).
    let (status, patched) = dev(
        &h,
        Method::PATCH,
        &format!("{base}/subscriptions/{}", ids[4]),
        Some(json!({"active": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(patched["active"], true);
    let (status, batch) = dev(
        &h,
        Method::POST,
        &format!("{base}/subscriptions/batch/update"),
        Some(json!({"inputs": [{"id": ids[5], "active": true}, {"id": 999_999, "active": true}]})),
    )
    .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{batch}");
    assert_eq!(batch["status"], "COMPLETE");
    assert_eq!(batch["results"][0]["id"], ids[5]);
    assert_eq!(batch["numErrors"], 1);
    assert_eq!(batch["errors"][0]["context"]["ids"][0], "999999");
    let (status, batch) = dev(
        &h,
        Method::POST,
        &format!("{base}/subscriptions/batch/update"),
        Some(json!({"inputs": [{"id": ids[5], "active": true}]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(batch["startedAt"].is_string() && batch["completedAt"].is_string());
    let (_, listed) = dev(&h, Method::GET, &format!("{base}/subscriptions"), None).await;
    let listed = listed["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 6);
    assert!(listed.iter().all(|s| s["active"] == true));

    let contact = h
        .create("contacts", json!({"email": "m@example.com"}))
        .await;
    let product = h
        .create("products", json!({"name": "Widget", "price": "5"}))
        .await;
    let line = h
        .create(
            "line_items",
            json!({"name": "Widget", "quantity": "1", "price": "5"}),
        )
        .await;
    let invoice = h.create("invoices", json!({"hs_currency": "USD"})).await;
    let payment = h
        .create(
            "commerce_payments",
            json!({"hs_initial_amount": "5", "hs_initiated_date": "2026-01-05"}),
        )
        .await;
    let deal = h
        .create(
            "deals",
            json!({"dealname": "D", "dealstage": "appointmentscheduled"}),
        )
        .await;
    let evs = events_until(&rx, |e| {
        e.iter()
            .any(|x| x["subscriptionType"] == "deal.propertyChange")
    })
    .await;
    let find = |kind: &str, type_id: Option<&str>| {
        evs.iter()
            .find(|e| {
                e["subscriptionType"] == kind && type_id.is_none_or(|t| e["objectTypeId"] == t)
            })
            .map(|e| e["objectId"].to_string())
    };
    assert_eq!(find("contact.creation", None), Some(contact));
    assert_eq!(find("product.creation", None), Some(product));
    assert_eq!(find("line_item.creation", None), Some(line));
    assert_eq!(find("object.creation", Some("0-53")), Some(invoice));
    assert_eq!(find("object.creation", Some("0-101")), Some(payment));
    assert_eq!(find("deal.propertyChange", None), Some(deal));

    // A deleted subscription is gone; deleting the settings pauses deliveries, subscriptions stay.
    let (status, _) = dev(
        &h,
        Method::DELETE,
        &format!("{base}/subscriptions/{}", ids[1]),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = dev(
        &h,
        Method::DELETE,
        &format!("{base}/subscriptions/{}", ids[1]),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = dev(&h, Method::DELETE, &format!("{base}/settings"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = dev(&h, Method::GET, &format!("{base}/settings"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, listed) = dev(&h, Method::GET, &format!("{base}/subscriptions"), None).await;
    assert_eq!(listed["results"].as_array().map(Vec::len), Some(5));
    let before = rx.received().len();
    h.create("contacts", json!({"email": "quiet@example.com"}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), before);
}

#[tokio::test]
async fn uninstalls_notify_app_uninstall_subscribers_once() {
    let h = Hub::start().await;
    let rx = Receiver::start("/hook").await;
    let base = format!("/webhooks/v3/{APP}");
    dev(
        &h,
        Method::PUT,
        &format!("{base}/settings"),
        Some(json!({"targetUrl": rx.url})),
    )
    .await;
    let (status, sub) = dev(
        &h,
        Method::POST,
        &format!("{base}/subscriptions"),
        Some(json!({"eventType": "app.uninstall", "active": true})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sub}");

    // The developer uninstalls from one portal with its token…
    let (status, _) = h
        .call(Method::DELETE, "/appinstalls/v3/external-install", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let got = rx.wait_for(1).await;
    assert_eq!(got.len(), 1);
    let evs = events(&got);
    assert_eq!(evs.len(), 1);
    let e = &evs[0];
    assert_eq!(e["subscriptionType"], "app.uninstall");
    assert_eq!(e["subscriptionId"], sub["id"]);
    assert_eq!(e["portalId"], PORTAL);
    assert_eq!(e["appId"], APP);
    assert_eq!(e["attemptNumber"], 0);
    assert!(e["eventId"].is_u64() && e["occurredAt"].is_i64());
    let r = &got[0];
    assert_eq!(
        header(r, "x-hubspot-signature"),
        signature::v1(SECRET, &r.body)
    );
    let ts = header(r, "x-hubspot-request-timestamp");
    assert_eq!(
        header(r, "x-hubspot-signature-v3"),
        signature::v3(
            SECRET,
            "POST",
            &rx.url,
            &r.body,
            ts.parse().unwrap_or_default()
        )
    );

    // …a user uninstalls in the other portal (retried once after a 503, attemptNumber counting)…
    let second = hubspot_harness::PORTAL + 1;
    h.mint(json!({"portal_id": second})).await;
    h.control(Method::POST, "/_sandbox/webhooks", {
        let mut s = h.control_get("/_sandbox/webhooks").await;
        s["retry_delays_ms"] = json!([50]);
        s
    })
    .await;
    rx.script(vec![hubspot_harness::Answer::json(503, json!({}))]);
    h.control(
        Method::POST,
        &format!("/_sandbox/portals/{second}/uninstall"),
        json!({}),
    )
    .await;
    let got = rx.wait_for(3).await;
    assert_eq!(got.len(), 3);
    let retried = events(&got[1..]);
    assert_eq!(
        retried
            .iter()
            .map(|e| (e["portalId"].as_u64(), e["attemptNumber"].as_u64()))
            .collect::<Vec<_>>(),
        vec![(Some(second), Some(0)), (Some(second), Some(1))]
    );
    // …and uninstalling where the app is no longer installed tells nobody.
    h.control(
        Method::POST,
        &format!("/_sandbox/portals/{second}/uninstall"),
        json!({}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), 3);
}

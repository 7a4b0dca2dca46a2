//! HubSpot OAuth over HTTP: consent redirect, code exchange (v1 and v3), expiry by the sandbox
//! clock, refresh, rotation toggle, metadata, refresh-token delete, uninstall, error bodies.

mod hubspot_harness;
use axum::http::StatusCode;
use hubspot_harness::Hub;
use reqwest::Method;
use sandbox::hubspot::app::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use serde_json::{json, Value};

const REDIRECT: &str = "http://localhost:3000/oauth/callback";

async fn authorize(h: &Hub, scope: &str, extra: &str) -> reqwest::Response {
    let url = format!(
        "{}/oauth/authorize?client_id={DEFAULT_CLIENT_ID}&redirect_uri={}&scope={}&state=st8{extra}",
        h.hub.base_url,
        urlencode(REDIRECT),
        urlencode(scope)
    );
    h.http.get(url).send().await.expect("authorize")
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

async fn code(h: &Hub, scope: &str, extra: &str) -> String {
    let resp = authorize(h, scope, extra).await;
    assert_eq!(resp.status().as_u16(), 302);
    let location = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    assert!(location.starts_with(REDIRECT));
    let url = reqwest::Url::parse(&location).expect("url");
    let params: std::collections::HashMap<String, String> =
        url.query_pairs().into_owned().collect();
    assert_eq!(params["state"], "st8");
    params["code"].clone()
}

async fn token(h: &Hub, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = h
        .http
        .post(h.url(path))
        .form(form)
        .send()
        .await
        .expect("token");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn exchange(h: &Hub, code: &str) -> (u16, Value) {
    token(
        h,
        "/oauth/v1/token",
        &[
            ("grant_type", "authorization_code"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("redirect_uri", REDIRECT),
            ("code", code),
        ],
    )
    .await
}

async fn refresh(h: &Hub, path: &str, refresh_token: &str) -> (u16, Value) {
    token(
        h,
        path,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

#[tokio::test]
async fn consent_exchange_expiry_and_refresh() {
    let h = Hub::start().await;
    let c = code(&h, "oauth crm.objects.contacts.read", "").await;
    let (status, pair) = exchange(&h, &c).await;
    assert_eq!(status, 200, "{pair}");
    assert_eq!(pair["token_type"], "bearer");
    assert_eq!(pair["expires_in"], 1800);
    assert_eq!(pair["hub_id"], 62515);
    let access = pair["access_token"].as_str().expect("access").to_string();
    let refresh_token = pair["refresh_token"].as_str().expect("refresh").to_string();
    let (status, _, _) = h
        .call_with(&access, Method::GET, "/crm/v3/objects/contacts", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    // Scope check: deals were not granted.
    let (status, body, _) = h
        .call_with(&access, Method::GET, "/crm/v3/objects/deals", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["category"], "MISSING_SCOPES");
    // Expiry by the sandbox clock.
    h.control(
        Method::POST,
        "/_sandbox/clock",
        json!({"advance_seconds": 1799}),
    )
    .await;
    let (status, _, _) = h
        .call_with(&access, Method::GET, "/crm/v3/objects/contacts", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    h.control(
        Method::POST,
        "/_sandbox/clock",
        json!({"advance_seconds": 301}),
    )
    .await;
    let (status, body, _) = h
        .call_with(&access, Method::GET, "/crm/v3/objects/contacts", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["category"], "EXPIRED_AUTHENTICATION");
    assert!(body["message"]
        .as_str()
        .unwrap_or("")
        .contains("expired 5 minute(s) ago"));
    assert!(
        !body.to_string().contains(&access),
        "the token is never echoed"
    );
    // Refresh (v3 path): new access token, same refresh token by default.
    let (status, again) = refresh(&h, "/oauth/v3/token", &refresh_token).await;
    assert_eq!(status, 200);
    assert_eq!(again["refresh_token"], refresh_token.as_str());
    let fresh = again["access_token"].as_str().expect("access").to_string();
    let (status, _, _) = h
        .call_with(&fresh, Method::GET, "/crm/v3/objects/contacts", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    // Metadata.
    let (_, meta) = h.get(&format!("/oauth/v1/access-tokens/{fresh}")).await;
    assert_eq!(meta["hub_id"], 62515);
    assert_eq!(meta["app_id"], 54321);
    assert!(meta["expires_in"]
        .as_i64()
        .is_some_and(|s| (1790..=1800).contains(&s)));
    assert!(meta["scopes"]
        .as_array()
        .is_some_and(|s| s.contains(&json!("crm.objects.contacts.read"))));
}

#[tokio::test]
async fn error_bodies() {
    let h = Hub::start().await;
    let c = code(&h, "oauth", "").await;
    let (status, body) = token(
        &h,
        "/oauth/v1/token",
        &[
            ("grant_type", "authorization_code"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("redirect_uri", "http://localhost:9/other"),
            ("code", &c),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["status"], "BAD_REDIRECT_URI");
    let (status, _) = exchange(&h, &c).await;
    assert_eq!(status, 200);
    let (status, body) = exchange(&h, &c).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (400, Some("BAD_AUTH_CODE"))
    );
    assert_eq!(body["error"], "invalid_grant");
    let (status, body) = refresh(&h, "/oauth/v1/token", "not-a-token").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (400, Some("BAD_REFRESH_TOKEN"))
    );
    assert_eq!(body["message"], "missing or invalid refresh token");
    let (status, body) = token(
        &h,
        "/oauth/v1/token",
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "wrong"),
            ("refresh_token", "x"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (400, Some("BAD_CLIENT_ID"))
    );
    let (status, body) = token(&h, "/oauth/v1/token", &[("grant_type", "password")]).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (400, Some("BAD_GRANT_TYPE"))
    );
    // Scopes the app does not have.
    let resp = authorize(&h, "oauth tickets", "").await;
    assert_eq!(resp.status().as_u16(), 400);
    // Non-loopback redirect.
    let resp = h.http.get(format!("{}/oauth/authorize?client_id={DEFAULT_CLIENT_ID}&redirect_uri=https%3A%2F%2Fevil.example%2Fcb&scope=oauth", h.hub.base_url)).send().await.expect("authorize");
    assert_eq!(resp.status().as_u16(), 400);
}

#[tokio::test]
async fn portal_choice_rotation_delete_and_uninstall() {
    let h = Hub::start().await;
    let c = code(&h, "oauth crm.objects.contacts.read", "&portal_id=62516").await;
    let (_, pair) = exchange(&h, &c).await;
    assert_eq!(pair["hub_id"], 62516);
    let rt = pair["refresh_token"].as_str().expect("rt").to_string();
    // Rotation toggle.
    h.control(
        Method::POST,
        "/_sandbox/policy",
        json!({"rotate_refresh_tokens": true}),
    )
    .await;
    let (_, rotated) = refresh(&h, "/oauth/v1/token", &rt).await;
    let new_rt = rotated["refresh_token"].as_str().expect("rt").to_string();
    assert_ne!(new_rt, rt);
    let (status, _) = refresh(&h, "/oauth/v1/token", &rt).await;
    assert_eq!(status, 400);
    // Deleting the refresh token leaves the access token working.
    let access = rotated["access_token"].as_str().expect("at").to_string();
    let (status, _) = h
        .call(
            Method::DELETE,
            &format!("/oauth/v1/refresh-tokens/{new_rt}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = refresh(&h, "/oauth/v1/token", &new_rt).await;
    assert_eq!(status, 400);
    let (status, _, _) = h
        .call_with(&access, Method::GET, "/crm/v3/objects/contacts", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    // Uninstall kills every token of that portal only.
    let (status, _, _) = h
        .call_with(
            &access,
            Method::DELETE,
            "/appinstalls/v3/external-install",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body, _) = h
        .call_with(&access, Method::GET, "/crm/v3/objects/contacts", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");
    let (status, _) = h.get("/crm/v3/objects/contacts").await;
    assert_eq!(status, StatusCode::OK, "portal 62515's token still works");
}

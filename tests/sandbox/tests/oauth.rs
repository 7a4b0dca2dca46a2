//! OAuth: consent redirect, code exchange, refresh-token rotation with grace period, expiry by
//! the sandbox clock, revoke, client authentication, discovery.

mod harness;
use base64::Engine;
use harness::{Sbx, GB, US};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const REDIRECT: &str = "http://localhost:8765/callback";

fn basic() -> String {
    let raw = format!(
        "{}:{}",
        sandbox::qbo::app::DEFAULT_CLIENT_ID,
        sandbox::qbo::app::DEFAULT_CLIENT_SECRET
    );
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Runs the consent step and returns (code, realmId, state).
async fn consent(sbx: &Sbx, realm: Option<&str>) -> (String, String, String) {
    let mut url =
        reqwest::Url::parse(&format!("{}/connect/oauth2", sbx.qbo.base_url)).expect("url");
    url.query_pairs_mut()
        .append_pair("client_id", sandbox::qbo::app::DEFAULT_CLIENT_ID)
        .append_pair("response_type", "code")
        .append_pair("scope", "com.intuit.quickbooks.accounting")
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("state", "csrf-123");
    if let Some(r) = realm {
        url.query_pairs_mut().append_pair("realm_id", r);
    }
    let resp = no_redirects().get(url).send().await.expect("authorize");
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = resp.headers()["location"]
        .to_str()
        .unwrap_or_default()
        .to_string();
    assert!(location.starts_with(REDIRECT), "{location}");
    let back = reqwest::Url::parse(&location).expect("redirect url");
    let get = |k: &str| {
        back.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.to_string())
            .unwrap_or_default()
    };
    (get("code"), get("realmId"), get("state"))
}

async fn token_request(
    sbx: &Sbx,
    form: &[(&str, &str)],
    auth: Option<String>,
) -> (StatusCode, Value) {
    let mut req = sbx
        .http
        .post(format!("{}/oauth2/v1/tokens/bearer", sbx.qbo.base_url))
        .header("Accept", "application/json")
        .form(form);
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    let resp = req.send().await.expect("token");
    (resp.status(), resp.json().await.unwrap_or_default())
}

#[tokio::test]
async fn authorize_redirects_back_with_code_state_and_realm() {
    let sbx = Sbx::start().await;
    let (code, realm, state) = consent(&sbx, None).await;
    assert!(!code.is_empty());
    assert_eq!(realm, US, "first company by default");
    assert_eq!(state, "csrf-123");
    let (_, realm, _) = consent(&sbx, Some(GB)).await;
    assert_eq!(realm, GB, "the user picked the other company");
    let bad = no_redirects()
        .get(format!(
            "{}/connect/oauth2?client_id=sandbox-client-id&response_type=code&redirect_uri=https://evil.example/cb&state=s",
            sbx.qbo.base_url
        ))
        .send()
        .await
        .expect("authorize");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn code_exchange_refresh_rotation_and_single_use_codes() {
    let sbx = Sbx::start().await;
    let (code, realm, _) = consent(&sbx, None).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
    ];
    let (s, tokens) = token_request(&sbx, &form, Some(basic())).await;
    assert_eq!(s, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(tokens["expires_in"], 3600);
    assert_eq!(tokens["x_refresh_token_expires_in"], 8_726_400);
    assert!(tokens.get("x_refresh_token_hard_expires_in").is_none());
    let (s, reused) = token_request(&sbx, &form, Some(basic())).await;
    assert_eq!(
        (s, reused["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    // The access token works on its realm.
    let access = tokens["access_token"].as_str().unwrap_or_default();
    let resp = sbx
        .http
        .get(format!(
            "{}/v3/company/{realm}/preferences",
            sbx.qbo.base_url
        ))
        .bearer_auth(access)
        .send()
        .await
        .expect("api");
    assert_eq!(resp.status(), StatusCode::OK);

    let first = tokens["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (s, second) = token_request(
        &sbx,
        &[("grant_type", "refresh_token"), ("refresh_token", &first)],
        Some(basic()),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let second_rt = second["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_ne!(second_rt, first, "refresh tokens rotate");
    let (s, dead) = token_request(
        &sbx,
        &[("grant_type", "refresh_token"), ("refresh_token", &first)],
        Some(basic()),
    )
    .await;
    assert_eq!(
        (s, dead["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    // client_secret_post works too, and asks for the hard-expiry field.
    let resp = sbx
        .http
        .post(format!("{}/oauth2/v1/tokens/bearer", sbx.qbo.base_url))
        .header("x-include-refresh-token-hard-expires-in", "true")
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", second_rt.as_str()),
            ("client_id", sandbox::qbo::app::DEFAULT_CLIENT_ID),
            ("client_secret", sandbox::qbo::app::DEFAULT_CLIENT_SECRET),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(resp.status(), StatusCode::OK);
    let third: Value = resp.json().await.unwrap_or_default();
    assert!(third["x_refresh_token_hard_expires_in"]
        .as_i64()
        .is_some_and(|s| s > 100_000_000));
}

#[tokio::test]
async fn superseded_refresh_tokens_work_during_the_grace_period_only() {
    let sbx = Sbx::start().await;
    let mut policy = sbx.control_get("/_sandbox/oauth").await;
    policy["refresh_grace_seconds"] = json!(60);
    sbx.control(Method::POST, "/_sandbox/oauth", policy).await;
    let pair = sbx
        .control(Method::POST, "/_sandbox/tokens", json!({"realm_id": US}))
        .await;
    let old = pair["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", old.as_str()),
    ];
    let (s, _) = token_request(&sbx, &refresh, Some(basic())).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = token_request(&sbx, &refresh, Some(basic())).await;
    assert_eq!(s, StatusCode::OK, "still inside the grace period");
    sbx.control(
        Method::POST,
        "/_sandbox/clock",
        json!({"advance_seconds": 61}),
    )
    .await;
    let (s, dead) = token_request(&sbx, &refresh, Some(basic())).await;
    assert_eq!(
        (s, dead["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn access_tokens_expire_by_the_sandbox_clock() {
    let sbx = Sbx::start().await;
    let (s, _) = sbx.get("preferences").await;
    assert_eq!(s, StatusCode::OK);
    sbx.control(
        Method::POST,
        "/_sandbox/clock",
        json!({"advance_seconds": 3601}),
    )
    .await;
    let (s, body) = sbx.get("preferences").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(body["fault"]["error"][0]["code"], "3200");
    assert_eq!(body["fault"]["error"][0]["detail"], "Token expired");
    assert!(
        !body.to_string().contains(&sbx.token),
        "the token is never echoed"
    );
    sbx.control(
        Method::POST,
        "/_sandbox/clock",
        json!({"offset_seconds": 0}),
    )
    .await;
    let (s, _) = sbx.get("preferences").await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn wrong_client_credentials_are_invalid_client_and_revoke_disconnects() {
    let sbx = Sbx::start().await;
    let pair = sbx
        .control(Method::POST, "/_sandbox/tokens", json!({"realm_id": US}))
        .await;
    let rt = pair["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let wrong = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("sandbox-client-id:nope")
    );
    let (s, body) = token_request(
        &sbx,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        Some(wrong),
    )
    .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (s, body) = token_request(&sbx, &[("grant_type", "password")], Some(basic())).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );

    let resp = sbx
        .http
        .post(format!("{}/v2/oauth2/tokens/revoke", sbx.qbo.base_url))
        .header("Authorization", basic())
        .json(&json!({"token": rt}))
        .send()
        .await
        .expect("revoke");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_dead(&sbx, &pair, US).await;
}

/// Both tokens of a company's pair are dead: the refresh token is `invalid_grant`, the access
/// token 401.
async fn assert_dead(sbx: &Sbx, pair: &Value, realm: &str) {
    let rt = pair["refresh_token"].as_str().unwrap_or_default();
    let (s, body) = token_request(
        sbx,
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        Some(basic()),
    )
    .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let resp = sbx
        .http
        .get(format!(
            "{}/v3/company/{realm}/preferences",
            sbx.qbo.base_url
        ))
        .bearer_auth(pair["access_token"].as_str().unwrap_or_default())
        .send()
        .await
        .expect("api");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn discovery_document_points_at_the_sandbox() {
    let sbx = Sbx::start().await;
    let doc: Value = sbx
        .http
        .get(sbx.qbo.discovery_url())
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .unwrap_or_default();
    let base = &sbx.qbo.base_url;
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{base}/connect/oauth2")
    );
    assert_eq!(
        doc["token_endpoint"],
        format!("{base}/oauth2/v1/tokens/bearer")
    );
    assert_eq!(
        doc["revocation_endpoint"],
        format!("{base}/v2/oauth2/tokens/revoke")
    );
    assert_eq!(
        doc["userinfo_endpoint"],
        format!("{base}/v1/openid_connect/userinfo")
    );
    let info: Value = sbx
        .http
        .get(format!("{base}/v1/openid_connect/userinfo"))
        .bearer_auth(&sbx.token)
        .send()
        .await
        .expect("userinfo")
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(info["realmid"], US);
}

/// A loopback "disconnect URL" that records each query string and answers 302 elsewhere (which the
/// sandbox must not follow).
async fn disconnect_page() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    sandbox::common::server::ServerHandle,
) {
    use axum::http::Uri;
    let got: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let sink = got.clone();
    let router = axum::Router::new().route(
        "/qbo/disconnected",
        axum::routing::get(move |uri: Uri| {
            let sink = sink.clone();
            async move {
                sink.lock()
                    .expect("lock")
                    .push(uri.query().unwrap_or_default().to_string());
                (
                    axum::http::StatusCode::FOUND,
                    [("location", "http://127.0.0.1:9/elsewhere")],
                )
            }
        }),
    );
    let handle = sandbox::common::server::serve("127.0.0.1:0".parse().expect("addr"), router)
        .await
        .expect("disconnect page");
    (
        format!("http://{}/qbo/disconnected", handle.addr),
        got,
        handle,
    )
}

#[tokio::test]
async fn a_disconnect_inside_quickbooks_kills_the_realms_tokens_and_visits_the_disconnect_url() {
    let sbx = Sbx::start().await;
    let us = sbx
        .control(Method::POST, "/_sandbox/tokens", json!({"realm_id": US}))
        .await;
    let gb = sbx
        .control(Method::POST, "/_sandbox/tokens", json!({"realm_id": GB}))
        .await;
    // Without a disconnect URL only the tokens die.
    let answer = sbx
        .control(
            Method::POST,
            &format!("/_sandbox/realms/{GB}/disconnect"),
            json!({}),
        )
        .await;
    assert_eq!(
        answer,
        json!({"realm_id": GB, "disconnect_url_status": null})
    );
    let (url, got, _page) = disconnect_page().await;
    let mut settings = sbx.control_get("/_sandbox/webhooks").await;
    settings["disconnect_url"] = json!(url);
    sbx.control(Method::POST, "/_sandbox/webhooks", settings)
        .await;
    let answer = sbx
        .control(
            Method::POST,
            &format!("/_sandbox/realms/{US}/disconnect"),
            json!({}),
        )
        .await;
    assert_eq!(
        answer,
        json!({"realm_id": US, "disconnect_url_status": 302})
    );
    assert_eq!(
        got.lock().expect("lock").clone(),
        vec![format!("realmId={US}")]
    );
    for (pair, realm) in [(&us, US), (&gb, GB)] {
        assert_dead(&sbx, pair, realm).await;
    }
    // An unknown realm is 404; a dead disconnect URL is a null status, the tokens still die.
    let resp = sbx
        .http
        .post(format!(
            "{}/_sandbox/realms/123/disconnect",
            sbx.qbo.base_url
        ))
        .send()
        .await
        .expect("disconnect");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let mut settings = sbx.control_get("/_sandbox/webhooks").await;
    settings["disconnect_url"] = json!("http://127.0.0.1:9/gone");
    sbx.control(Method::POST, "/_sandbox/webhooks", settings)
        .await;
    let fresh = sbx.mint(US).await;
    let answer = sbx
        .control(
            Method::POST,
            &format!("/_sandbox/realms/{US}/disconnect"),
            json!({}),
        )
        .await;
    assert_eq!(answer["disconnect_url_status"], Value::Null);
    let resp = sbx
        .http
        .get(sbx.api("preferences"))
        .bearer_auth(&fresh)
        .send()
        .await
        .expect("api");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

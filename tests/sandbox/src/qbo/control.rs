//! The QBO side of the control API (`/_sandbox/…`): reset, seeds, realms, a user's disconnect,
//! tokens, throttling, webhooks, OAuth policy and a raw view of stored entities. Faults, request
//! log, counters, clock and latency come from `common::control`.

use super::app::AppState;
use super::entity::EntityKind;
use super::oauth::TokenPolicy;
use super::seed::{self, CompanySettings, RealmSeed, Seed};
use super::seedgen::{self, GenerateOptions};
use super::throttle::ThrottleLimits;
use super::webhooks::WebhookSettings;
use crate::common::control::control_error;
use crate::common::sync::lock;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// How long the disconnect URL may take to answer (a browser would wait longer; the caller of the
/// control API should not).
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/_sandbox/health",
            get(|| async { Json(json!({"status": "ok", "api": "qbo"})) }),
        )
        .route("/_sandbox/reset", post(reset))
        .route("/_sandbox/seed", post(load_seed))
        .route("/_sandbox/seed/generate", post(generate_seed))
        .route("/_sandbox/realms", get(list_realms).post(create_realm))
        .route(
            "/_sandbox/realms/{realm}/entities/{entity}",
            get(dump_entities),
        )
        .route("/_sandbox/realms/{realm}/disconnect", post(disconnect))
        .route("/_sandbox/tokens", post(mint_tokens))
        .route("/_sandbox/throttle", get(throttle).post(set_throttle))
        .route("/_sandbox/webhooks", get(webhooks).post(set_webhooks))
        .route(
            "/_sandbox/webhooks/deliveries",
            get(deliveries).delete(clear_deliveries),
        )
        .route("/_sandbox/oauth", get(oauth_policy).post(set_oauth_policy))
}

fn load_into(app: &AppState, seed: &Seed) -> Response {
    let now = app.services.clock.now();
    let mut state = lock(&app.state);
    match seed::load(&mut state, seed, now, app.config.utc_offset) {
        Ok(ids) => Json(json!({"realms": ids})).into_response(),
        Err(err) => control_error(StatusCode::BAD_REQUEST, err),
    }
}

/// Back to the start-up state: seed, throttle limits, webhook settings, token policy and latency
/// as configured at start; faults, logs, throttle windows and the webhook log cleared.
async fn reset(State(app): State<AppState>) -> Response {
    app.services.reset();
    app.services.latency.set(app.config.latency);
    app.throttle.clear();
    app.throttle.set_limits(app.config.limits.clone());
    app.webhooks.set_settings(app.config.webhooks.clone());
    app.set_token_policy(app.config.tokens.clone());
    app.webhooks.sender.clear_log();
    lock(&app.state).clear();
    let seed = app.initial_seed();
    load_into(&app, &seed)
}

#[derive(Deserialize)]
struct SeedQuery {
    /// Also make this the state `/_sandbox/reset` returns to.
    #[serde(default)]
    make_initial: bool,
}

async fn load_seed(
    State(app): State<AppState>,
    Query(q): Query<SeedQuery>,
    Json(seed): Json<Seed>,
) -> Response {
    let response = load_into(&app, &seed);
    if q.make_initial && response.status().is_success() {
        app.set_initial_seed(seed);
    }
    response
}

async fn generate_seed(
    State(app): State<AppState>,
    Json(options): Json<GenerateOptions>,
) -> Response {
    let seed = seedgen::generate(&options);
    load_into(&app, &seed)
}

async fn list_realms(State(app): State<AppState>) -> Json<Value> {
    let state = lock(&app.state);
    let realms: Vec<Value> = state
        .realm_ids()
        .iter()
        .filter_map(|id| state.realm(id))
        .map(|realm| {
            let counts: serde_json::Map<String, Value> = EntityKind::ALL
                .into_iter()
                .map(|k| (k.name().to_string(), Value::from(realm.count(k))))
                .collect();
            json!({"realm_id": realm.id, "country": realm.country(), "counts": counts,
                   "company_name": realm.company_info().and_then(|c| c.get("CompanyName")).cloned()})
        })
        .collect();
    Json(json!({"realms": realms}))
}

#[derive(Deserialize)]
struct NewRealm {
    realm_id: Option<String>,
    #[serde(default)]
    company: CompanySettings,
    #[serde(default = "yes")]
    base_data: bool,
    #[serde(default)]
    entities: std::collections::BTreeMap<String, Vec<Value>>,
}

fn yes() -> bool {
    true
}

async fn create_realm(State(app): State<AppState>, Json(new): Json<NewRealm>) -> Response {
    let now = app.services.clock.now();
    let mut state = lock(&app.state);
    let realm_id = new.realm_id.unwrap_or_else(|| {
        let mut n = 9_130_350_000_000_001u64 + state.realm_ids().len() as u64;
        while state.realm(&n.to_string()).is_some() {
            n += 1;
        }
        n.to_string()
    });
    if state.realm(&realm_id).is_some() {
        return control_error(StatusCode::CONFLICT, format!("realm {realm_id} exists"));
    }
    let seed = RealmSeed {
        realm_id,
        company: new.company,
        base_data: new.base_data,
        entities: new.entities,
    };
    match seed::build_realm(&seed, now, app.config.utc_offset) {
        Ok(realm) => {
            let id = realm.id.clone();
            state.insert_realm(realm);
            (StatusCode::CREATED, Json(json!({"realm_id": id}))).into_response()
        }
        Err(err) => control_error(StatusCode::BAD_REQUEST, err),
    }
}

/// Every stored object of an entity type, inactive included, plus deleted Ids.
async fn dump_entities(
    State(app): State<AppState>,
    Path((realm_id, entity)): Path<(String, String)>,
) -> Response {
    let Some(kind) = EntityKind::from_name(&entity) else {
        return control_error(StatusCode::NOT_FOUND, format!("unknown entity {entity}"));
    };
    let state = lock(&app.state);
    let Some(realm) = state.realm(&realm_id) else {
        return control_error(StatusCode::NOT_FOUND, format!("unknown realm {realm_id}"));
    };
    let objects: Vec<Value> = realm.values(kind).cloned().collect();
    let deleted: Vec<String> = realm
        .tombstones
        .iter()
        .filter(|t| t.kind == kind)
        .map(|t| t.id.to_string())
        .collect();
    Json(json!({"entity": kind.name(), "objects": objects, "deleted": deleted})).into_response()
}

/// A user disconnects the app from inside QuickBooks: every token of the realm dies (as a revoke),
/// then the user's browser is sent to the app's disconnect URL, which the sandbox GETs as
/// `{disconnect_url}?realmId={realm}`. Intuit's exact query parameters are UNCONFIRMED (`realmId`
/// follows its OAuth redirect). Redirects are not followed: the status is the disconnect URL's own
/// answer, and the sandbox never calls a host other than the configured one. Answers
/// `disconnect_url_status` (null when no URL is set or the GET failed).
async fn disconnect(State(app): State<AppState>, Path(realm_id): Path<String>) -> Response {
    {
        let mut state = lock(&app.state);
        if state.realm(&realm_id).is_none() {
            return control_error(StatusCode::NOT_FOUND, format!("unknown realm {realm_id}"));
        }
        state.oauth.revoke_realm(&realm_id);
    }
    let status = match app.webhooks.settings().disconnect_url {
        Some(url) => visit_disconnect_url(&url, &realm_id).await,
        None => None,
    };
    Json(json!({"realm_id": realm_id, "disconnect_url_status": status})).into_response()
}

/// The browser's GET of the disconnect URL; `None` when it could not be made.
async fn visit_disconnect_url(url: &str, realm_id: &str) -> Option<u16> {
    let mut target = match reqwest::Url::parse(url) {
        Ok(u) => u,
        Err(err) => {
            tracing::warn!(%url, %err, "disconnect URL is not a URL");
            return None;
        }
    };
    target.query_pairs_mut().append_pair("realmId", realm_id);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(DISCONNECT_TIMEOUT)
        .build()
        .ok()?;
    match client.get(target).send().await {
        Ok(resp) => Some(resp.status().as_u16()),
        Err(err) => {
            tracing::warn!(%url, %err, "disconnect URL did not answer");
            None
        }
    }
}

#[derive(Deserialize)]
struct MintRequest {
    realm_id: Option<String>,
    /// Override the access-token lifetime for this pair.
    access_token_ttl_seconds: Option<i64>,
}

/// Mints a token pair without the browser dance.
async fn mint_tokens(State(app): State<AppState>, Json(req): Json<MintRequest>) -> Response {
    let now = app.services.clock.now();
    let mut policy = app.token_policy();
    if let Some(ttl) = req.access_token_ttl_seconds {
        policy.access_token_ttl_seconds = ttl;
    }
    let mut state = lock(&app.state);
    let realm_id = match req.realm_id {
        Some(id) => id,
        None => match state.realm_ids().into_iter().next() {
            Some(id) => id,
            None => return control_error(StatusCode::NOT_FOUND, "no realms loaded"),
        },
    };
    if state.realm(&realm_id).is_none() {
        return control_error(StatusCode::NOT_FOUND, format!("unknown realm {realm_id}"));
    }
    let pair = state.oauth.mint(&realm_id, now, &policy, None);
    (StatusCode::CREATED, Json(pair)).into_response()
}

async fn throttle(State(app): State<AppState>) -> Json<ThrottleLimits> {
    Json(app.throttle.limits())
}

async fn set_throttle(
    State(app): State<AppState>,
    Json(limits): Json<ThrottleLimits>,
) -> Json<ThrottleLimits> {
    app.throttle.set_limits(limits.clone());
    Json(limits)
}

async fn webhooks(State(app): State<AppState>) -> Json<WebhookSettings> {
    Json(app.webhooks.settings())
}

async fn set_webhooks(
    State(app): State<AppState>,
    Json(settings): Json<WebhookSettings>,
) -> Json<WebhookSettings> {
    app.webhooks.set_settings(settings.clone());
    Json(settings)
}

#[derive(Deserialize)]
struct Since {
    #[serde(default)]
    since: u64,
}

async fn deliveries(State(app): State<AppState>, Query(q): Query<Since>) -> Json<Value> {
    Json(json!({"deliveries": app.webhooks.sender.attempts(q.since)}))
}

async fn clear_deliveries(State(app): State<AppState>) -> StatusCode {
    app.webhooks.sender.clear_log();
    StatusCode::NO_CONTENT
}

async fn oauth_policy(State(app): State<AppState>) -> Json<TokenPolicy> {
    Json(app.token_policy())
}

async fn set_oauth_policy(
    State(app): State<AppState>,
    Json(policy): Json<TokenPolicy>,
) -> Json<TokenPolicy> {
    app.set_token_policy(policy.clone());
    Json(policy)
}

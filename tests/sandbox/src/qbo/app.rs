//! The simulator's shared state and configuration, and how the router is assembled.

use super::control;
use super::fault::Fault;
use super::format::envelope_time;
use super::oauth::{self, TokenPolicy};
use super::rules::WriteCtx;
use super::seed::{self, Seed};
use super::store::QboState;
use super::throttle::{self, Throttle, ThrottleLimits};
use super::webhooks::{QboWebhooks, WebhookSettings};
use super::{api, auth};
use crate::common::control::{routes as common_routes, Services};
use crate::common::faults::fault_layer;
use crate::common::latency::{latency_layer, LatencySettings};
use crate::common::recorder::record_layer;
use crate::common::sync::lock;
use crate::common::SandboxClock;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{middleware, Json, Router};
use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use time::UtcOffset;

pub const DEFAULT_CLIENT_ID: &str = "sandbox-client-id";
pub const DEFAULT_CLIENT_SECRET: &str = "sandbox-client-secret";
pub const DEFAULT_VERIFIER_TOKEN: &str = "sandbox-verifier-token";

/// Everything configurable at start; most of it can be changed later via `/_sandbox`.
#[derive(Clone, Debug)]
pub struct QboConfig {
    pub addr: SocketAddr,
    pub client_id: String,
    pub client_secret: String,
    pub verifier_token: String,
    /// Initial state (also what `/_sandbox/reset` returns to). `None` = the default seed.
    pub seed: Option<Seed>,
    /// The companies' local offset for `time`, MetaData and default dates (QBO answers in Pacific time).
    pub utc_offset: UtcOffset,
    pub tokens: TokenPolicy,
    pub limits: ThrottleLimits,
    pub webhooks: WebhookSettings,
    pub latency: LatencySettings,
    /// Share one clock with other simulated APIs of the same process.
    pub clock: Option<SandboxClock>,
}

impl Default for QboConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.into(),
            verifier_token: DEFAULT_VERIFIER_TOKEN.into(),
            seed: None,
            utc_offset: UtcOffset::from_hms(-7, 0, 0).unwrap_or(UtcOffset::UTC),
            tokens: TokenPolicy::default(),
            limits: ThrottleLimits::default(),
            webhooks: WebhookSettings::default(),
            latency: LatencySettings::default(),
            clock: None,
        }
    }
}

/// Shared state of one QBO simulator.
#[derive(Debug)]
pub struct App {
    pub config: QboConfig,
    pub services: Services,
    pub state: Mutex<QboState>,
    pub throttle: Throttle,
    pub webhooks: QboWebhooks,
    tokens: Mutex<TokenPolicy>,
    initial_seed: Mutex<Seed>,
    base_url: OnceLock<String>,
}

pub type AppState = Arc<App>;

impl App {
    pub fn new(config: QboConfig) -> anyhow::Result<Arc<Self>> {
        let clock = config.clock.clone().unwrap_or_default();
        let services = Services::new(clock.clone(), &["intuit_tid", "intuit-tid"], config.latency);
        let initial = config.seed.clone().unwrap_or_else(seed::default_seed);
        let mut state = QboState::default();
        seed::load(&mut state, &initial, clock.now(), config.utc_offset)
            .map_err(|e| anyhow::anyhow!("cannot load seed: {e}"))?;
        Ok(Arc::new(Self {
            throttle: Throttle::new(config.limits.clone(), clock.clone()),
            webhooks: QboWebhooks::new(
                config.webhooks.clone(),
                config.verifier_token.clone(),
                clock.clone(),
            ),
            tokens: Mutex::new(config.tokens.clone()),
            services,
            state: Mutex::new(state),
            initial_seed: Mutex::new(initial),
            base_url: OnceLock::new(),
            config,
        }))
    }

    pub(crate) fn set_base_url(&self, url: &str) {
        let _ = self.base_url.set(url.to_string());
    }

    pub fn base_url(&self) -> String {
        self.base_url.get().cloned().unwrap_or_default()
    }

    pub(crate) fn start_background(&self) {
        self.webhooks.start();
    }

    pub fn token_policy(&self) -> TokenPolicy {
        lock(&self.tokens).clone()
    }

    pub fn set_token_policy(&self, policy: TokenPolicy) {
        *lock(&self.tokens) = policy;
    }

    pub fn initial_seed(&self) -> Seed {
        lock(&self.initial_seed).clone()
    }

    pub fn set_initial_seed(&self, seed: Seed) {
        *lock(&self.initial_seed) = seed;
    }

    pub fn write_ctx(&self, allow_duplicate_doc_number: bool) -> WriteCtx {
        WriteCtx {
            now: self.services.clock.now(),
            offset: self.config.utc_offset,
            allow_duplicate_doc_number,
            seeding: false,
        }
    }

    /// The envelope `time` value for now.
    pub fn now_text(&self) -> String {
        envelope_time(self.services.clock.now(), self.config.utc_offset)
    }

    /// Hands changes made under `state` to the webhook pipeline.
    pub fn announce(&self, state: &mut QboState) {
        for change in state.take_changes() {
            self.webhooks.notify(change);
        }
    }

    /// `{"<key>": value, "time": …}` with status 200.
    pub fn ok(&self, key: &str, value: Value) -> Response {
        let mut body = Map::new();
        body.insert(key.into(), value);
        body.insert("time".into(), Value::String(self.now_text()));
        (StatusCode::OK, Json(Value::Object(body))).into_response()
    }

    /// A body that already has its top-level keys (QueryResponse, CDCResponse, …) plus `time`.
    pub fn ok_body(&self, mut body: Value) -> Response {
        if let Some(map) = body.as_object_mut() {
            map.insert("time".into(), Value::String(self.now_text()));
        }
        (StatusCode::OK, Json(body)).into_response()
    }

    pub fn fault_body(&self, fault: &Fault) -> Value {
        json!({"Fault": fault.fault_json(), "time": self.now_text()})
    }

    pub fn fault(&self, fault: &Fault) -> Response {
        (fault.status, Json(self.fault_body(fault))).into_response()
    }
}

/// OAuth + data API + control API, wrapped (outermost first) in: request recording, throttling,
/// fault injection, latency profile.
pub fn router(app: AppState) -> Router {
    let services = app.services.clone();
    Router::new()
        .merge(oauth::routes())
        .merge(api::routes())
        .merge(control::routes())
        .fallback(auth::unknown_path)
        .with_state(app.clone())
        .merge(common_routes(services.clone()))
        .layer(middleware::from_fn_with_state(
            services.latency.clone(),
            latency_layer,
        ))
        .layer(middleware::from_fn_with_state(
            services.faults.clone(),
            fault_layer,
        ))
        .layer(middleware::from_fn_with_state(
            app,
            throttle::throttle_layer,
        ))
        .layer(middleware::from_fn_with_state(
            services.recorder.clone(),
            record_layer,
        ))
}

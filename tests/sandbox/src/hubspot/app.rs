//! The HubSpot simulator's configuration, shared state and router.

use super::actions::{self, Runner, RunnerSettings};
use super::error::{ApiError, CORRELATION_ID};
use super::oauth::{self, OAuthState};
use super::seed::{self, HubSeed};
use super::store::{Portal, Source};
use super::throttle::{self, RateLimits, Throttle};
use super::webhooks::{HubWebhooks, WebhookSettings};
use super::{associations, control, crm, pipelines, properties, webhooks_api};
use crate::common::control::{routes as common_routes, Services};
use crate::common::faults::fault_layer;
use crate::common::latency::{latency_layer, LatencySettings};
use crate::common::recorder::{record_layer, TransactionId};
use crate::common::sync::lock;
use crate::common::SandboxClock;
use axum::extract::Request;
use axum::http::{StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use time::OffsetDateTime;

pub const DEFAULT_CLIENT_ID: &str = "sandbox-hubspot-client-id";
pub const DEFAULT_CLIENT_SECRET: &str = "sandbox-hubspot-client-secret";
pub const DEFAULT_APP_ID: u64 = 54321;
pub const DEFAULT_DEVELOPER_API_KEY: &str = "sandbox-hubspot-developer-key";

/// The scopes the sandbox app is configured with (what `/oauth/authorize` may grant).
pub fn default_app_scopes() -> Vec<String> {
    let mut scopes = vec![
        "oauth".to_string(),
        "automation".into(),
        "e-commerce".into(),
        "timeline".into(),
    ];
    for object in [
        "contacts",
        "companies",
        "deals",
        "products",
        "line_items",
        "quotes",
        "invoices",
        "commercepayments",
    ] {
        for verb in ["read", "write"] {
            scopes.push(format!("crm.objects.{object}.{verb}"));
            scopes.push(format!("crm.schemas.{object}.{verb}"));
        }
    }
    scopes
}

/// Behaviour HubSpot does not document precisely: each is a
/// setting, changeable through `/_sandbox/policy`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct Policy {
    /// Access-token lifetime (HubSpot: 30 minutes).
    pub access_token_ttl_seconds: i64,
    /// Return a new refresh token on refresh and kill the old one (HubSpot: believed not).
    pub rotate_refresh_tokens: bool,
    /// Largest `limit` honoured by list endpoints (larger values are clamped).
    pub list_max_limit: usize,
    /// Largest search `limit`; larger → 400.
    pub search_max_limit: usize,
    /// Search results reachable by paging for one query.
    pub search_result_cap: usize,
    pub max_filter_groups: usize,
    pub max_filters_per_group: usize,
    pub max_filters_total: usize,
    /// Delay before writes become visible to search (HubSpot's index lag).
    pub search_index_lag_ms: u64,
    /// Inputs per object batch request.
    pub batch_limit: usize,
    /// Inputs per associations batch request.
    pub association_batch_limit: usize,
    /// Send v4 association `toObjectId`/`fromObjectId` as strings (the spec) instead of JSON
    /// numbers (what real responses are believed to carry).
    pub association_ids_as_strings: bool,
    /// A merge makes a new record (true, HubSpot's behaviour for contacts since 2024) or keeps
    /// the primary's id.
    pub merge_creates_new_id: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            access_token_ttl_seconds: 1800,
            rotate_refresh_tokens: false,
            list_max_limit: 100,
            search_max_limit: 200,
            search_result_cap: 10_000,
            max_filter_groups: 6,
            max_filters_per_group: 6,
            max_filters_total: 18,
            search_index_lag_ms: 0,
            batch_limit: 100,
            association_batch_limit: 1000,
            association_ids_as_strings: false,
            merge_creates_new_id: true,
        }
    }
}

#[derive(Clone, Debug)]
pub struct HubSpotConfig {
    pub addr: SocketAddr,
    pub client_id: String,
    pub client_secret: String,
    pub app_id: u64,
    /// Accepted as `?hapikey=` on the developer endpoints (action definitions, webhooks API).
    pub developer_api_key: String,
    pub app_scopes: Vec<String>,
    /// Initial state (what `/_sandbox/reset` returns to). `None` = two empty portals.
    pub seed: Option<HubSeed>,
    pub policy: Policy,
    pub limits: RateLimits,
    pub webhooks: WebhookSettings,
    pub actions: RunnerSettings,
    pub latency: LatencySettings,
    /// Share one clock with the other simulated APIs of the process.
    pub clock: Option<SandboxClock>,
}

impl Default for HubSpotConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.into(),
            app_id: DEFAULT_APP_ID,
            developer_api_key: DEFAULT_DEVELOPER_API_KEY.into(),
            app_scopes: default_app_scopes(),
            seed: None,
            policy: Policy::default(),
            limits: RateLimits::default(),
            webhooks: WebhookSettings::default(),
            actions: RunnerSettings::default(),
            latency: LatencySettings::default(),
            clock: None,
        }
    }
}

/// Everything behind the API's lock.
#[derive(Debug, Default)]
pub struct HubState {
    pub portals: BTreeMap<u64, Portal>,
    pub oauth: OAuthState,
    /// Portals where the app is installed.
    pub installed: BTreeSet<u64>,
}

#[derive(Debug)]
pub struct App {
    pub config: HubSpotConfig,
    pub services: Services,
    pub state: Mutex<HubState>,
    pub throttle: Throttle,
    pub webhooks: HubWebhooks,
    pub runner: Runner,
    policy: Mutex<Policy>,
    initial_seed: Mutex<HubSeed>,
    base_url: OnceLock<String>,
}

pub type AppState = Arc<App>;

impl App {
    pub fn new(config: HubSpotConfig) -> anyhow::Result<Arc<Self>> {
        let clock = config.clock.clone().unwrap_or_default();
        let services = Services::new(clock.clone(), &["x-hubspot-correlation-id"], config.latency);
        let initial = config.seed.clone().unwrap_or_else(seed::default_seed);
        let mut state = HubState::default();
        seed::load(&mut state, &initial, clock.now())
            .map_err(|e| anyhow::anyhow!("cannot load seed: {e}"))?;
        Ok(Arc::new(Self {
            throttle: Throttle::new(config.limits.clone(), clock.clone()),
            webhooks: HubWebhooks::new(
                config.webhooks.clone(),
                config.client_secret.clone(),
                config.app_id,
                clock.clone(),
            ),
            runner: Runner::new(
                config.actions.clone(),
                config.client_secret.clone(),
                clock.clone(),
            ),
            policy: Mutex::new(config.policy.clone()),
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

    pub fn policy(&self) -> Policy {
        lock(&self.policy).clone()
    }

    pub fn set_policy(&self, policy: Policy) {
        *lock(&self.policy) = policy;
    }

    pub fn initial_seed(&self) -> HubSeed {
        lock(&self.initial_seed).clone()
    }

    pub fn set_initial_seed(&self, seed: HubSeed) {
        *lock(&self.initial_seed) = seed;
    }

    /// Writes made with the app's tokens.
    pub fn source(&self) -> Source {
        Source::integration(self.config.app_id)
    }

    /// Runs `f` on a portal under the lock.
    pub fn read<R>(
        &self,
        portal_id: u64,
        f: impl FnOnce(&Portal) -> Result<R, ApiError>,
    ) -> Result<R, ApiError> {
        let state = lock(&self.state);
        let portal = state
            .portals
            .get(&portal_id)
            .ok_or_else(|| ApiError::not_found(format!("portal {portal_id} does not exist")))?;
        f(portal)
    }

    /// Runs a write on a portal under the lock, then hands its changes to the webhooks.
    pub fn write<R>(
        &self,
        portal_id: u64,
        f: impl FnOnce(&mut Portal, OffsetDateTime) -> Result<R, ApiError>,
    ) -> Result<R, ApiError> {
        let now = self.services.clock.now();
        let (result, changes) = {
            let mut state = lock(&self.state);
            let portal = state
                .portals
                .get_mut(&portal_id)
                .ok_or_else(|| ApiError::not_found(format!("portal {portal_id} does not exist")))?;
            let result = f(portal, now);
            (result, portal.take_changes())
        };
        self.webhooks.notify(changes);
        result
    }
}

/// Puts the request's transaction id where error bodies find it (`correlationId`).
async fn correlation_layer(request: Request, next: Next) -> Response {
    let id = request
        .extensions()
        .get::<TransactionId>()
        .map(|t| t.0.clone())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    CORRELATION_ID.scope(id, next.run(request)).await
}

async fn unknown_path(uri: Uri) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        format!("Resource not found: {}", uri.path()),
    )
    .into_response()
}

/// OAuth + CRM + automation + control API, wrapped (outermost first) in: request recording,
/// correlation id, rate limits, fault injection, latency profile.
pub fn router(app: AppState) -> Router {
    let services = app.services.clone();
    Router::new()
        .merge(oauth::routes())
        .merge(crm::routes())
        .merge(associations::routes())
        .merge(properties::routes())
        .merge(pipelines::routes())
        .merge(actions::routes())
        .merge(webhooks_api::routes())
        .merge(control::routes())
        .fallback(unknown_path)
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
        .layer(middleware::from_fn(correlation_layer))
        .layer(middleware::from_fn_with_state(
            services.recorder.clone(),
            record_layer,
        ))
}

//! The QuickBooks Online simulator: OAuth, the v3 data API (CRUD, query, CDC, batch), business
//! rules, idempotency, throttling, webhooks and the `/_sandbox` control API.

pub mod api;
pub mod app;
pub mod auth;
pub mod batch;
pub mod cdc;
pub mod control;
pub mod entity;
pub mod fault;
pub mod format;
pub mod oauth;
pub mod ops;
pub mod query;
pub mod rules;
pub mod seed;
pub mod seedgen;
pub mod store;
pub mod throttle;
pub mod webhooks;

pub use app::{App, QboConfig};
pub use seed::{CompanySettings, RealmSeed, Seed};
pub use seedgen::{generate, GenerateOptions};
pub use throttle::ThrottleLimits;
pub use webhooks::{WebhookFormat, WebhookSettings};

use crate::common::server::{serve, ServerHandle};
use std::sync::Arc;

/// A QBO sandbox running in this process.
#[derive(Debug)]
pub struct SpawnedQbo {
    /// `http://127.0.0.1:PORT` — the API lives under `{base_url}/v3/company/{realmId}/…`.
    pub base_url: String,
    /// Shared state, for tests that want to look inside without HTTP.
    pub app: Arc<App>,
    pub handle: ServerHandle,
}

impl SpawnedQbo {
    /// `{base_url}/v3` — what python-quickbooks calls `api_url_v3`.
    pub fn api_url(&self) -> String {
        format!("{}/v3", self.base_url)
    }

    /// The OpenID discovery document URL (intuit-oauth's `environment`).
    pub fn discovery_url(&self) -> String {
        format!("{}{}", self.base_url, oauth::DISCOVERY_PATH)
    }

    pub async fn shutdown(self) {
        self.handle.shutdown().await;
    }
}

/// Starts the simulator on `config.addr` (port 0 picks a free port).
pub async fn spawn(config: QboConfig) -> anyhow::Result<SpawnedQbo> {
    let addr = config.addr;
    let app = App::new(config)?;
    let router = app::router(app.clone());
    let handle = serve(addr, router).await?;
    let base_url = format!("http://{}", handle.addr);
    app.set_base_url(&base_url);
    app.start_background();
    Ok(SpawnedQbo {
        base_url,
        app,
        handle,
    })
}

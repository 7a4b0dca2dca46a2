//! The HubSpot simulator: OAuth for a public app, CRM objects v3 (CRUD, batch, search),
//! associations v4, properties, webhooks with v1/v2/v3 signatures and their management API, the
//! workflow custom-action runner, rate limits and the `/_sandbox` control API — on the same
//! `common` pieces as QBO.

pub mod actions;
pub mod app;
pub mod assoc_types;
pub mod associations;
pub mod auth;
pub mod control;
pub mod crm;
pub mod error;
pub mod format;
pub mod invoices;
pub mod oauth;
pub mod objects;
pub mod pipelines;
pub mod properties;
pub mod search;
pub mod seed;
pub mod seedgen;
pub mod signature;
pub mod store;
pub mod throttle;
pub mod webhooks;
pub mod webhooks_api;

pub use actions::RunnerSettings;
pub use app::{App, HubSpotConfig, Policy};
pub use objects::ObjectType;
pub use seed::{HubSeed, PortalSeed};
pub use seedgen::{generate, GenerateOptions};
pub use throttle::RateLimits;
pub use webhooks::WebhookSettings;

use crate::common::server::{serve, ServerHandle};
use std::sync::Arc;

/// A HubSpot sandbox running in this process.
#[derive(Debug)]
pub struct SpawnedHubSpot {
    /// `http://127.0.0.1:PORT` — use it as the client's host (`https://api.hubapi.com` stand-in).
    pub base_url: String,
    pub app: Arc<App>,
    pub handle: ServerHandle,
}

impl SpawnedHubSpot {
    /// The authorize URL (`https://app.hubspot.com/oauth/authorize` stand-in).
    pub fn authorize_url(&self) -> String {
        format!("{}/oauth/authorize", self.base_url)
    }

    pub async fn shutdown(self) {
        self.handle.shutdown().await;
    }
}

/// Starts the simulator on `config.addr` (port 0 picks a free port).
pub async fn spawn(config: HubSpotConfig) -> anyhow::Result<SpawnedHubSpot> {
    let addr = config.addr;
    let app = App::new(config)?;
    let router = app::router(app.clone());
    let handle = serve(addr, router).await?;
    let base_url = format!("http://{}", handle.addr);
    app.set_base_url(&base_url);
    app.start_background();
    Ok(SpawnedHubSpot {
        base_url,
        app,
        handle,
    })
}

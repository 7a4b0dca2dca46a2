//! Lambda `webhooks`: change notifications from HubSpot and QuickBooks (function URL). Each is
//! verified, then only recorded and turned into nudges of the poll; no provider is called.

use std::sync::Arc;

use hubspot_qbo_core::webhooks::{self, WebhookService};
use hubspot_qbo_core::{runtime::Services, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let services = Services::from_env().await?;
    let service = WebhookService::from_services(&services);
    lambda_http::run(webhooks::router(Arc::new(service))).await
}

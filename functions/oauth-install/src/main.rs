//! Lambda `oauth-install`: the install, callback, reconnect and disconnect pages (function URL).

use std::sync::Arc;

use hubspot_qbo_core::connection::{install::InstallFlow, pages};
use hubspot_qbo_core::{runtime::Services, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let services = Services::from_env().await?;
    let flow = Arc::new(InstallFlow::from_services(&services)?);
    lambda_http::run(pages::router(flow)).await
}

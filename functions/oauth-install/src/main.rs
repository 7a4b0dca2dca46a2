//! Lambda `oauth-install`: the install, callback, reconnect and disconnect pages (function URL).

use hubspot_qbo_core::{http, runtime::Services, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let _services = Services::from_env().await?;
    lambda_http::run(http::not_implemented("Connecting HubSpot and QuickBooks")).await
}

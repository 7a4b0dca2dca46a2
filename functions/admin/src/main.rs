//! Lambda `admin`: the admin API (function URL).

use std::sync::Arc;

use hubspot_qbo_core::admin::{self, AdminService};
use hubspot_qbo_core::{runtime::Services, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let services = Services::from_env().await?;
    lambda_http::run(admin::router(Arc::new(AdminService::new(&services)))).await
}

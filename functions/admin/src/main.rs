//! Lambda `admin`: the admin pages and JSON API (function URL, responses streamed so a CSV
//! export of any size passes).

use std::sync::Arc;

use hubspot_qbo_core::admin::{self, AdminService};
use hubspot_qbo_core::{runtime::Services, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let services = Services::from_env().await?;
    let service = AdminService::from_services(&services)?;
    lambda_http::run_with_streaming_response(admin::router(Arc::new(service))).await
}

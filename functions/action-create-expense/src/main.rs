//! Lambda `action-create-expense`: the HubSpot workflow action's endpoint (function URL).

use std::sync::Arc;

use hubspot_qbo_core::actions::{self, service::ActionService, ActionKind};
use hubspot_qbo_core::{runtime::Services, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let services = Services::from_env().await?;
    let service = Arc::new(ActionService::new(&services)?);
    lambda_http::run(actions::router(ActionKind::CreateExpense, service)).await
}

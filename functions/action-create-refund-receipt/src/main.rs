//! Lambda `action-create-refund-receipt`: the HubSpot workflow action's endpoint (function URL).

use hubspot_qbo_core::actions::{self, ActionKind};
use hubspot_qbo_core::{runtime::Services, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let _services = Services::from_env().await?;
    lambda_http::run(actions::router(ActionKind::CreateRefundReceipt)).await
}

//! Lambda `scheduled-poll`: runs on the schedule and on poll nudges.

use hubspot_qbo_core::{poll::Poller, runtime::Services, telemetry};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let services = Services::from_env().await?;
    let poller = Poller::new(&services)?;
    let poller = &poller;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            poller.handle(event.payload).await
        },
    ))
    .await
}

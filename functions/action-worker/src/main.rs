//! Lambda `action-worker`: finishes the workflow-action executions that answered BLOCK (from
//! the action queue) and completes them through HubSpot's callback API.

use aws_lambda_events::event::sqs::SqsEvent;
use hubspot_qbo_core::actions::service::ActionService;
use hubspot_qbo_core::{runtime::Services, telemetry};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let services = Services::from_env().await?;
    let service = ActionService::new(&services)?;
    let service = &service;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        service.handle_deferred(event.payload).await
    }))
    .await
}

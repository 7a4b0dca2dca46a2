//! Lambda `object-sync`: applies change batches from the FIFO sync queue.

use aws_lambda_events::event::sqs::SqsEvent;
use hubspot_qbo_core::sync::ObjectSync;
use hubspot_qbo_core::{runtime::Services, telemetry};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let services = Services::from_env().await?;
    let sync = ObjectSync::new(&services)?;
    let sync = &sync;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        sync.handle(event.payload).await
    }))
    .await
}

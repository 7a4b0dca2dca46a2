//! Object sync: applies batches of changes for one connection and object (filter, match, map,
//! decide, write, record in the ledger). Fed by the FIFO sync queue.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

use crate::error::Error;
use crate::queue::batch::{self, LogTerminalFailures, Ordering};
use crate::queue::messages::SyncRequest;
use crate::runtime::Services;

pub async fn handle_batch(
    _services: &Services,
    event: SqsEvent,
) -> Result<SqsBatchResponse, Error> {
    batch::process_batch(
        event,
        Ordering::Fifo,
        &LogTerminalFailures,
        |_request: SyncRequest, _| async {
            // Retryable: queued work stays queued (or rests in the DLQ) until sync exists.
            Err::<(), _>(Error::NotImplemented {
                capability: "object sync",
            })
        },
    )
    .await
    .map_err(Error::from)
}

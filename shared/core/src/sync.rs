//! Object sync: applies batches of changes for one connection and object (filter, match, map,
//! decide, write, record in the ledger). Fed by the FIFO sync queue.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

use crate::error::Error;
use crate::runtime::sqs_batch::{self, LogTerminalFailures, Ordering};
use crate::runtime::Services;

pub async fn handle_batch(
    _services: &Services,
    event: SqsEvent,
) -> Result<SqsBatchResponse, Error> {
    sqs_batch::process_batch(
        event,
        Ordering::Fifo,
        &LogTerminalFailures,
        |_change: serde_json::Value, _| async {
            // Retryable: queued changes stay queued (or rest in the DLQ) until sync exists.
            Err(Error::NotImplemented {
                capability: "object sync",
            })
        },
    )
    .await
    .map_err(Error::from)
}

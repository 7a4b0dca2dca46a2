//! Object sync: applies batches of changes for one connection and object (filter, match, map,
//! decide, write, record in the ledger). Fed by the FIFO sync queue.

pub mod engine;
pub mod objects;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

use crate::error::Error;
use crate::queue::batch::{Ordering, StoredFailures};
use crate::queue::messages::SyncRequest;
use crate::queue::QueueName;
use crate::runtime::Services;

pub async fn handle_batch(services: &Services, event: SqsEvent) -> Result<SqsBatchResponse, Error> {
    let failures = StoredFailures::new(services.store.clone(), services.clock.clone(), "sync");
    failures
        .consumer(Ordering::Fifo, &*services.queue, QueueName::Sync)
        .process(event, |_request: SyncRequest, _| async {
            // Retryable: queued work stays queued until sync exists.
            Err::<(), _>(Error::NotImplemented {
                capability: "object sync",
            })
        })
        .await
        .map_err(Error::from)
}

//! Object sync: applies batches of changes for one connection and object (filter, match, map,
//! decide, write, record in the ledger). Fed by the FIFO sync queue.

pub mod cursors;
pub mod engine;
mod invoices;
pub mod objects;
pub mod settings;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

use crate::error::Error;
use crate::queue::batch::{Ordering, StoredFailures};
use crate::queue::messages::{PollTask, SyncRequest};
use crate::queue::{OutgoingMessage, QueueName};
use crate::runtime::Services;
use engine::{Engine, SyncError};

/// The object-sync function's parts, built once per cold start.
pub struct ObjectSync {
    services: Services,
    engine: Engine,
}

impl ObjectSync {
    pub fn new(services: &Services) -> Result<Self, Error> {
        let (engine, _) = Engine::from_services(services)?;
        Ok(Self {
            services: services.clone(),
            engine,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// One batch of the sync queue.
    pub async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, Error> {
        let failures = StoredFailures::new(
            self.services.store.clone(),
            self.services.clock.clone(),
            "sync",
        );
        failures
            .consumer(Ordering::Fifo, &*self.services.queue, QueueName::Sync)
            .process(event, |request: SyncRequest, _| async move {
                match request {
                    SyncRequest::Changes {
                        connection_id,
                        object,
                        from,
                        records,
                    } => {
                        let applied = self
                            .engine
                            .apply(&connection_id, object, from, &records)
                            .await?;
                        tracing::info!(connection = %connection_id, %object, from = from.as_str(),
                            created = applied.created, updated = applied.updated, linked = applied.linked,
                            unchanged = applied.unchanged, excluded = applied.excluded, failed = applied.failed,
                            "changes applied");
                        Ok(())
                    }
                    // The poller starts a backfill where there is no cursor yet: ask it now
                    // rather than at the next tick.
                    SyncRequest::InitialSync {
                        connection_id,
                        object,
                        ..
                    } => {
                        let task = OutgoingMessage::json(&PollTask {
                            connection_id,
                            object,
                        })?;
                        self.services
                            .queue
                            .send_all(QueueName::Poll, vec![task])
                            .await?;
                        Ok::<(), SyncError>(())
                    }
                }
            })
            .await
            .map_err(Error::from)
    }
}

//! The initial sync of a connection, requested once and queued at least once (S6).
//!
//! The request is an item written in the same transaction as the connection, so a connection
//! never exists without it. Queuing happens after the transaction: when it fails (the queue is
//! down, the function dies), the request stays listed as pending and the schedule queues it
//! again ([`requeue_pending`]). A repeat is harmless: the messages keep their deduplication ids,
//! and the sync makes replays no-ops.

use serde::{Deserialize, Serialize};

use crate::domain::{ConnectionId, Direction, ObjectKind};
use crate::queue::messages::initial_sync_messages;
use crate::queue::{Queue, QueueError, QueueName};
use crate::store::keys::connections as keys;
use crate::store::{CasOutcome, Item, Query, Store, StoreError, Table, TransactWrite};

/// What the request remembers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitialSyncRequest {
    pub connection_id: ConnectionId,
    /// The objects to backfill and their directions, as the settings said when connecting.
    pub objects: Vec<(ObjectKind, Direction)>,
    /// Epoch seconds; also fixes the messages' deduplication ids.
    pub requested_at: i64,
    /// When the queue accepted the messages; `None` while pending.
    pub queued_at: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum InitialSyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl InitialSyncRequest {
    fn item(&self) -> Result<Item, StoreError> {
        let item = Item::from_value(keys::initial_sync(&self.connection_id), self)?;
        Ok(match self.queued_at {
            None => item.with_index(
                keys::INITIAL_SYNC_PENDING,
                format!("{:020}#{}", self.requested_at, self.connection_id),
            ),
            Some(_) => item,
        })
    }

    /// The write that records a new request, for the connect transaction.
    pub fn write(&self) -> Result<TransactWrite, StoreError> {
        Ok(TransactWrite::PutVersioned {
            table: Table::Connections,
            item: self.item()?,
            expected: None,
        })
    }
}

/// Queues the request's messages, then marks it queued (compare-and-swap on `version`, so a
/// concurrent requeue that already marked it is left alone).
pub async fn queue(
    store: &dyn Store,
    queue: &dyn Queue,
    request: &InitialSyncRequest,
    version: u64,
    now: i64,
) -> Result<(), InitialSyncError> {
    let messages = initial_sync_messages(
        &request.connection_id,
        request.objects.iter().copied(),
        request.requested_at,
    )?;
    queue.send_all(QueueName::Sync, messages).await?;
    let queued = InitialSyncRequest {
        queued_at: Some(now),
        ..request.clone()
    };
    match store
        .put_versioned(Table::Connections, queued.item()?, Some(version))
        .await?
    {
        CasOutcome::Written { .. } | CasOutcome::VersionConflict => Ok(()),
    }
}

/// What a requeue round did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct RequeueReport {
    pub queued: Vec<ConnectionId>,
    pub failed: usize,
}

/// Queues every request still pending `min_age_seconds` after it was made (younger ones are
/// probably being queued by their own connect right now).
pub async fn requeue_pending(
    store: &dyn Store,
    queue_port: &dyn Queue,
    now: i64,
    min_age_seconds: i64,
) -> Result<RequeueReport, StoreError> {
    let pending = store
        .query_all(
            Table::Connections,
            Query::index(keys::INITIAL_SYNC_PENDING),
            now,
        )
        .await?;
    let mut report = RequeueReport::default();
    for item in pending {
        let request: InitialSyncRequest = item.to_value()?;
        if request.queued_at.is_some() || request.requested_at > now - min_age_seconds {
            continue;
        }
        match queue(store, queue_port, &request, item.version, now).await {
            Ok(()) => report.queued.push(request.connection_id),
            Err(error) => {
                tracing::warn!(connection = %request.connection_id, %error,
                    "initial sync still not queued; the next round tries again");
                report.failed += 1;
            }
        }
    }
    Ok(report)
}

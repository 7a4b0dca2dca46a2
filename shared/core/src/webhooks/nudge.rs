//! Nudges: a change notification asks for one early poll of its connection and object. Bursts
//! are coalesced by a claim in the store: the first notification of a window claims it and
//! queues a poll delayed to the window's end; the others find the claim and add nothing, their
//! changes being older than that poll's start. Consecutive claims of one connection and object
//! are at least a window apart, so a burst lasting `T` queues at most `⌊T / window⌋ + 1` polls
//! for it, however many notifications it holds.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::{ConnectionId, ObjectKind};
use crate::queue::messages::PollTask;
use crate::queue::{OutgoingMessage, Queue, QueueError, QueueName};
use crate::store::keys::connections as keys;
use crate::store::{ClaimOutcome, Item, Store, StoreError, Table};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Nudged {
    /// A poll was queued.
    Queued,
    /// A poll queued within the window covers it.
    Coalesced,
}

#[derive(Debug, thiserror::Error)]
pub enum NudgeError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
}

/// What the claim records (for whoever looks at the table).
#[derive(Debug, Serialize, Deserialize)]
struct NudgeClaim {
    /// Epoch ms of the notification that claimed the window.
    claimed_at_ms: i64,
    /// Epoch ms the queued poll becomes visible.
    poll_at_ms: i64,
}

/// The most polls a burst of notifications lasting `burst` queues for one connection and
/// object, with `window` between claims.
pub fn most_polls(burst: Duration, window: Duration) -> u64 {
    let window = window.as_millis().max(1);
    (burst.as_millis() / window) as u64 + 1
}

pub struct Nudger {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    window: Duration,
}

impl Nudger {
    pub fn new(store: Arc<dyn Store>, queue: Arc<dyn Queue>, window: Duration) -> Self {
        Self {
            store,
            queue,
            window: window.max(Duration::from_secs(1)),
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Asks for a poll of `object` of `connection` at `now_ms`, unless one is queued within the
    /// window. If queuing fails, the claim is given back, so the provider's retry of the
    /// notification can try again.
    pub async fn nudge(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        now_ms: i64,
    ) -> Result<Nudged, NudgeError> {
        let window_ms = self.window.as_millis() as i64;
        // Whole seconds (the store's expiry), rounded up: the next claim can come no sooner
        // than a full window after this one.
        let until = now_ms.div_euclid(1000) + 1 + window_ms.div_euclid(1000);
        let claim = NudgeClaim {
            claimed_at_ms: now_ms,
            poll_at_ms: now_ms + window_ms,
        };
        let key = keys::nudge(connection, object);
        let item = Item::from_value(key.clone(), &claim)?.expiring_at(until);
        match self
            .store
            .claim(Table::Connections, item, now_ms.div_euclid(1000))
            .await?
        {
            ClaimOutcome::AlreadyClaimed => Ok(Nudged::Coalesced),
            ClaimOutcome::Claimed => {
                let task = OutgoingMessage::json(&PollTask {
                    connection_id: connection.clone(),
                    object,
                })?
                .delayed_by(self.window);
                let sent = self.queue.send_all(QueueName::Poll, vec![task]).await;
                if let Err(error) = sent {
                    if let Err(e) = self.store.delete(Table::Connections, &key).await {
                        tracing::warn!(%connection, %object, error = %e,
                            "a nudge's claim could not be given back: the schedule's poll covers it");
                    }
                    return Err(error.into());
                }
                Ok(Nudged::Queued)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_counts_whole_windows_and_the_first() {
        let s = Duration::from_secs;
        let cases = [
            (s(0), s(3), 1),
            (s(2), s(3), 1),
            (s(3), s(3), 2),
            (s(10), s(3), 4),
            (Duration::from_millis(59_999), s(60), 1),
        ];
        for (burst, window, expected) in cases {
            assert_eq!(
                most_polls(burst, window),
                expected,
                "{burst:?} / {window:?}"
            );
        }
    }
}

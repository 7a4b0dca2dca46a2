//! Nudges: a change notification asks for one early poll of its connection and object. Bursts
//! are coalesced by a claim in the store: the first notification of a window claims it and
//! queues a poll delayed past the claim's end; the others find the claim and add nothing, their
//! changes being older than that poll's start. Consecutive claims of one connection and object
//! are at least a window apart, so a burst lasting `T` queues at most `⌊T / window⌋ + 1` polls
//! for it, however many notifications it holds.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::{ConnectionId, ObjectKind, RealmId};
use crate::queue::messages::{LifecycleTask, PollQueueTask, PollTask};
use crate::queue::{OutgoingMessage, Queue, QueueError, QueueName};
use crate::store::keys::connections as keys;
use crate::store::{ClaimOutcome, Item, ItemKey, Store, StoreError, Table};

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
    /// Epoch ms the queued task becomes visible (after the claim ends).
    poll_at_ms: i64,
}

/// The most polls a burst of notifications lasting `burst` queues for one connection and
/// object, with `window` between claims.
pub fn most_polls(burst: Duration, window: Duration) -> u64 {
    let window = window.as_millis().max(1);
    (burst.as_millis() / window) as u64 + 1
}

/// The longest window: SQS delays a message at most 900 s, and the task waits two seconds past
/// its window.
pub const MAX_WINDOW: Duration = Duration::from_secs(898);
/// The window of checks with Intuit that the unsigned Disconnect URL asks for: opening it in a
/// loop costs at most one token refresh per company this often.
pub const COMPANY_CHECK_WINDOW: Duration = Duration::from_secs(30);

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
            window: window.clamp(Duration::from_secs(1), MAX_WINDOW),
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Asks for a poll of `object` of `connection` at `now_ms`, unless one is queued within the
    /// window.
    pub async fn nudge(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        now_ms: i64,
    ) -> Result<Nudged, NudgeError> {
        let task = OutgoingMessage::json(&PollQueueTask::Read(PollTask {
            connection_id: connection.clone(),
            object,
        }))?;
        self.claim_and_send(keys::nudge(connection, object), task, self.window, now_ms)
            .await
    }

    /// Asks for a check of the company with Intuit, unless one is queued within the window:
    /// the disconnect page anyone may open costs at most one token refresh a window.
    pub async fn check_company(&self, realm: &RealmId, now_ms: i64) -> Result<Nudged, NudgeError> {
        let task = OutgoingMessage::json(&PollQueueTask::Lifecycle(LifecycleTask::CheckCompany {
            realm_id: realm.clone(),
        }))?;
        self.claim_and_send(
            keys::company_check(realm),
            task,
            COMPANY_CHECK_WINDOW,
            now_ms,
        )
        .await
    }

    /// Claims the window at `key` and sends `task`, delayed so that it starts after the claim
    /// ends: whatever the claim turned away happened before the task runs. If sending fails,
    /// the claim is given back, so the provider's retry can try again.
    async fn claim_and_send(
        &self,
        key: ItemKey,
        task: OutgoingMessage,
        window: Duration,
        now_ms: i64,
    ) -> Result<Nudged, NudgeError> {
        let (until, delay) = claim_times(now_ms, window);
        let claim = NudgeClaim {
            claimed_at_ms: now_ms,
            poll_at_ms: now_ms + delay.as_millis() as i64,
        };
        let item = Item::from_value(key.clone(), &claim)?.expiring_at(until);
        match self
            .store
            .claim(Table::Connections, item, now_ms.div_euclid(1000))
            .await?
        {
            ClaimOutcome::AlreadyClaimed => Ok(Nudged::Coalesced),
            ClaimOutcome::Claimed => {
                let task = task.delayed_by(delay);
                if let Err(error) = self.queue.send_all(QueueName::Poll, vec![task]).await {
                    if let Err(e) = self.store.delete(Table::Connections, &key).await {
                        tracing::warn!(error = %e,
                            "a nudge's claim could not be given back: the schedule's poll covers it");
                    }
                    return Err(error.into());
                }
                Ok(Nudged::Queued)
            }
        }
    }
}

/// When a claim made at `now_ms` ends (epoch seconds: the store's expiry, an item is gone once
/// `expires_at <= now`) and how long its task waits. The claim ends at the start of the second
/// after a full window, so consecutive claims are more than a window apart; the task waits two
/// seconds past the window, so it starts at least a second after the claim ends (a margin for
/// the clocks of different hosts).
pub fn claim_times(now_ms: i64, window: Duration) -> (i64, Duration) {
    let window_s = window.as_secs() as i64;
    (
        now_ms.div_euclid(1000) + 1 + window_s,
        window + Duration::from_secs(2),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::SendReport;
    use crate::store::memory::MemoryStore;
    use std::sync::Mutex;

    /// Records what is sent, or refuses everything.
    #[derive(Default)]
    struct Sent {
        messages: Mutex<Vec<OutgoingMessage>>,
        refuse: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl Queue for Sent {
        async fn send(
            &self,
            _: QueueName,
            messages: Vec<OutgoingMessage>,
        ) -> Result<SendReport, QueueError> {
            if self.refuse.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(QueueError::Unavailable("down".into()));
            }
            let sent = messages.len();
            self.messages.lock().unwrap().extend(messages);
            Ok(SendReport {
                sent,
                failed: Vec::new(),
            })
        }
        async fn delay_redelivery(
            &self,
            _: QueueName,
            _: Vec<String>,
            _: Duration,
        ) -> Result<(), QueueError> {
            Ok(())
        }
    }

    #[test]
    fn a_claim_ends_a_full_window_later_and_its_task_starts_after_it() {
        let window = Duration::from_secs(3);
        for now_ms in [1_000_000_000, 1_000_000_001, 1_000_000_500, 1_000_000_999] {
            let (until, delay) = claim_times(now_ms, window);
            // More than a window after the claim…
            assert!(until * 1000 > now_ms + 3000, "{now_ms}");
            // …and the task starts at least a second after the claim ends.
            assert!(
                now_ms + delay.as_millis() as i64 >= until * 1000 + 1000,
                "{now_ms}"
            );
        }
    }

    #[tokio::test]
    async fn one_poll_a_window_and_a_failed_send_gives_the_claim_back() {
        let store = Arc::new(MemoryStore::new());
        let queue = Arc::new(Sent::default());
        let nudger = Nudger::new(store.clone(), queue.clone(), Duration::from_secs(3));
        let connection = ConnectionId::parse("c1").unwrap();
        let start = 1_900_000_000_000;
        // Forty notifications over ten seconds: one poll at 0 s, then the next claims once the
        // previous claim has ended.
        let mut queued_at = Vec::new();
        for step in 0..40 {
            let now = start + step * 250;
            if nudger
                .nudge(&connection, ObjectKind::Contact, now)
                .await
                .unwrap()
                == Nudged::Queued
            {
                queued_at.push(now);
            }
        }
        assert_eq!(queued_at, [start, start + 4000, start + 8000]);
        assert!(
            queued_at.len() as u64 <= most_polls(Duration::from_millis(9_750), nudger.window())
        );
        assert!(
            queued_at.windows(2).all(|w| w[1] - w[0] > 3000),
            "{queued_at:?}"
        );
        let sent = queue.messages.lock().unwrap().clone();
        assert_eq!(sent.len(), queued_at.len());
        assert!(sent.iter().all(|m| m.delay == Some(Duration::from_secs(5))));
        assert!(matches!(
            serde_json::from_str::<PollQueueTask>(&sent[0].body),
            Ok(PollQueueTask::Read(PollTask {
                object: ObjectKind::Contact,
                ..
            }))
        ));
        // Another object has its own window.
        assert_eq!(
            nudger
                .nudge(&connection, ObjectKind::Product, start)
                .await
                .unwrap(),
            Nudged::Queued
        );

        // The queue refuses: the error is returned and the claim given back, so the next
        // notification (the provider's retry) claims again.
        queue
            .refuse
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let later = start + 60_000;
        assert!(nudger
            .nudge(&connection, ObjectKind::Contact, later)
            .await
            .is_err());
        queue
            .refuse
            .store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            nudger
                .nudge(&connection, ObjectKind::Contact, later + 10)
                .await
                .unwrap(),
            Nudged::Queued
        );
    }

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

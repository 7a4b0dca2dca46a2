//! One ledger entry: a link (or an attempt at one) between a HubSpot record and a QBO record of
//! one connection and object — both ids, what was last synced of each side (version and
//! fingerprint), the status, and a bounded history.

use serde::{Deserialize, Serialize};

use crate::domain::{ConnectionId, ObjectKind, Provider};

/// How many activity lines an entry keeps (newest last).
pub const ACTIVITY_LIMIT: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkStatus {
    /// Both sides hold the same mapped values (as of the versions recorded).
    Synced,
    /// The last attempt failed; `failure` says why and when it is tried again.
    Failing,
    /// Left out on purpose; `exclusion` says why (a filter, no SKU, deleted on one side).
    Excluded,
    /// A write was sent whose answer is not known yet; it is settled before anything else.
    Pending,
}

impl LinkStatus {
    pub const ALL: [LinkStatus; 4] = [
        LinkStatus::Synced,
        LinkStatus::Failing,
        LinkStatus::Excluded,
        LinkStatus::Pending,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LinkStatus::Synced => "synced",
            LinkStatus::Failing => "failing",
            LinkStatus::Excluded => "excluded",
            LinkStatus::Pending => "pending",
        }
    }
}

/// What is known of one side of a link.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SideState {
    pub id: Option<String>,
    /// HubSpot: `updatedAt` in epoch milliseconds; QBO: the `SyncToken`.
    pub version: Option<i64>,
    /// Of the mapped values that flow from this side, as last synced.
    pub fingerprint: Option<String>,
    /// The record was deleted, archived or made inactive on this side.
    #[serde(default)]
    pub gone: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// A stable name (`duplicate_display_name`, `rate_limited`, …).
    pub category: String,
    /// A sentence a bookkeeper understands.
    pub message: String,
    pub attempts: u32,
    pub first_failed_at: i64,
    /// When a retryable failure is tried again; `None` for one that needs a person.
    pub next_retry_at: Option<i64>,
    /// The side whose change failed (the one read again to retry).
    #[serde(default)]
    pub source: Option<Provider>,
    /// The version of that side's record that failed: read again unchanged (a poll's overlap)
    /// while the failure waits for a person, it is not tried again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
}

/// A pending write whose answer has not been recorded this long is settled by the retry sweep
/// (its message may have been lost with a killed worker).
pub const SETTLE_PENDING_AFTER_SECONDS: i64 = 300;

/// A write whose answer was lost or not yet recorded: replayed with the same request id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingWrite {
    /// The batch request id (QBO `requestid`) the write was sent with.
    pub requestid: String,
    /// The item's id within the batch.
    pub bid: String,
    pub sent_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    pub at: i64,
    /// The side the change came from.
    pub from: Provider,
    /// `created`, `updated`, `linked`, `unchanged`, `excluded`, `failed`, `conflict` …
    pub action: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub connection_id: ConnectionId,
    pub object: ObjectKind,
    /// The entry's own id: the side and id of the record it was first seen as (`hs:51`,
    /// `qbo:7`); it never changes.
    pub link: String,
    pub hubspot: SideState,
    pub qbo: SideState,
    /// The normalised email or SKU the two records were matched by.
    pub match_key: Option<String>,
    pub status: LinkStatus,
    pub failure: Option<Failure>,
    pub exclusion: Option<String>,
    pub pending: Option<PendingWrite>,
    pub updated_at: i64,
    #[serde(default)]
    pub activity: Vec<Activity>,
    /// Invoices made in HubSpot: the QBO payments applied when the invoice last synced, so a
    /// payment removed in QBO is told apart (S13).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payments: Vec<String>,
}

impl LedgerEntry {
    /// A new entry for a record first seen on `from`.
    pub fn new(
        connection_id: ConnectionId,
        object: ObjectKind,
        from: Provider,
        id: &str,
        now: i64,
    ) -> Self {
        let mut entry = Self {
            connection_id,
            object,
            link: link_id(from, id),
            hubspot: SideState::default(),
            qbo: SideState::default(),
            match_key: None,
            status: LinkStatus::Pending,
            failure: None,
            exclusion: None,
            pending: None,
            updated_at: now,
            activity: Vec::new(),
            payments: Vec::new(),
        };
        entry.side_mut(from).id = Some(id.to_owned());
        entry
    }

    pub fn side(&self, provider: Provider) -> &SideState {
        match provider {
            Provider::HubSpot => &self.hubspot,
            Provider::Qbo => &self.qbo,
        }
    }

    pub fn side_mut(&mut self, provider: Provider) -> &mut SideState {
        match provider {
            Provider::HubSpot => &mut self.hubspot,
            Provider::Qbo => &mut self.qbo,
        }
    }

    /// Records a line of history, keeping the newest [`ACTIVITY_LIMIT`].
    pub fn record(&mut self, at: i64, from: Provider, action: &str, detail: impl Into<String>) {
        self.activity.push(Activity {
            at,
            from,
            action: action.to_owned(),
            detail: detail.into(),
        });
        if self.activity.len() > ACTIVITY_LIMIT {
            let extra = self.activity.len() - ACTIVITY_LIMIT;
            self.activity.drain(..extra);
        }
        self.updated_at = at;
    }

    pub fn mark_synced(&mut self) {
        self.status = LinkStatus::Synced;
        self.failure = None;
        self.exclusion = None;
        self.pending = None;
    }

    pub fn mark_excluded(&mut self, reason: impl Into<String>) {
        self.status = LinkStatus::Excluded;
        self.exclusion = Some(reason.into());
        self.failure = None;
        self.pending = None;
    }

    /// A failure of a change from `from`, recorded in the history; a retryable one is tried
    /// again after a delay that grows with the attempts.
    pub fn fail(
        &mut self,
        from: Provider,
        category: &str,
        message: impl Into<String>,
        retryable: bool,
        now: i64,
    ) {
        let message = message.into();
        let attempts = self
            .failure
            .as_ref()
            .filter(|f| f.category == category)
            .map_or(1, |f| f.attempts + 1);
        let first_failed_at = self.failure.as_ref().map_or(now, |f| f.first_failed_at);
        self.status = LinkStatus::Failing;
        self.failure = Some(Failure {
            category: category.to_owned(),
            message: message.clone(),
            attempts,
            first_failed_at,
            next_retry_at: retryable.then(|| now + retry_delay_seconds(attempts)),
            source: Some(from),
            version: None,
        });
        self.pending = None;
        self.record(now, from, "failed", message);
    }

    /// Names the version of the record whose change just failed (see [`Failure::version`]).
    pub fn failed_at(&mut self, version: Option<i64>) {
        if let Some(failure) = self.failure.as_mut() {
            failure.version = version;
        }
    }

    /// A retry that came due but could not be tried (the sync no longer flows that way, the
    /// other side is gone): tried again later, as if it had failed once more.
    pub fn postpone_retry(&mut self, now: i64) {
        if let Some(failure) = self.failure.as_mut().filter(|f| f.next_retry_at.is_some()) {
            failure.attempts += 1;
            failure.next_retry_at = Some(now + retry_delay_seconds(failure.attempts));
        }
    }

    /// When the retry sweep is to read this entry's record again, and from which side: a
    /// retryable failure at its next retry, a pending write once it is overdue.
    pub fn retry_at(&self) -> Option<(i64, Provider)> {
        match (self.status, &self.failure, &self.pending) {
            (LinkStatus::Failing, Some(failure), _) => {
                let at = failure.next_retry_at?;
                let source = failure.source.unwrap_or_else(|| self.first_side());
                Some((at, source))
            }
            // Pending writes are QBO creates of HubSpot records.
            (LinkStatus::Pending, _, Some(pending)) => Some((
                pending.sent_at + SETTLE_PENDING_AFTER_SECONDS,
                Provider::HubSpot,
            )),
            _ => None,
        }
    }

    /// The side the entry's record was first seen on.
    pub fn first_side(&self) -> Provider {
        if self.link.starts_with("qbo:") {
            Provider::Qbo
        } else {
            Provider::HubSpot
        }
    }
}

/// 1, 2, 4 … minutes, at most six hours.
fn retry_delay_seconds(attempts: u32) -> i64 {
    (60i64 << attempts.saturating_sub(1).min(9)).min(6 * 3600)
}

/// The id of a link first seen on `from` as record `id`.
pub fn link_id(from: Provider, id: &str) -> String {
    match from {
        Provider::HubSpot => format!("hs:{id}"),
        Provider::Qbo => format!("qbo:{id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> LedgerEntry {
        LedgerEntry::new(
            ConnectionId::parse("c1").unwrap(),
            ObjectKind::Contact,
            Provider::HubSpot,
            "51",
            100,
        )
    }

    #[test]
    fn history_is_bounded_and_newest_last() {
        let mut e = entry();
        for i in 0..30 {
            e.record(i, Provider::HubSpot, "updated", format!("change {i}"));
        }
        assert_eq!(e.activity.len(), ACTIVITY_LIMIT);
        assert_eq!(e.activity.first().unwrap().detail, "change 10");
        assert_eq!(e.activity.last().unwrap().detail, "change 29");
        assert_eq!(e.updated_at, 29);
    }

    #[test]
    fn failures_count_attempts_and_back_off() {
        let mut e = entry();
        assert_eq!(e.link, "hs:51");
        assert_eq!(e.hubspot.id.as_deref(), Some("51"));
        e.fail(Provider::Qbo, "rate_limited", "busy", true, 1000);
        e.fail(Provider::Qbo, "rate_limited", "busy", true, 2000);
        let failure = e.failure.clone().unwrap();
        assert_eq!((failure.attempts, failure.first_failed_at), (2, 1000));
        assert_eq!(failure.next_retry_at, Some(2000 + 120));
        assert_eq!(
            e.retry_at(),
            Some((2120, Provider::Qbo)),
            "retried from where it failed"
        );
        assert_eq!(e.activity.last().unwrap().action, "failed");
        e.fail(
            Provider::HubSpot,
            "duplicate_display_name",
            "taken",
            false,
            3000,
        );
        let failure = e.failure.clone().unwrap();
        assert_eq!(
            (failure.attempts, failure.next_retry_at),
            (1, None),
            "a new reason starts over"
        );
        assert_eq!(
            e.retry_at(),
            None,
            "a failure that needs a person is not retried"
        );
        e.status = LinkStatus::Pending;
        e.pending = Some(PendingWrite {
            requestid: "r".into(),
            bid: "c0".into(),
            sent_at: 4000,
        });
        assert_eq!(
            e.retry_at(),
            Some((4000 + SETTLE_PENDING_AFTER_SECONDS, Provider::HubSpot))
        );
        e.mark_synced();
        assert_eq!(e.retry_at(), None);
        assert_eq!((e.status, e.failure.is_none()), (LinkStatus::Synced, true));
        assert_eq!(retry_delay_seconds(30), 6 * 3600);
    }
}

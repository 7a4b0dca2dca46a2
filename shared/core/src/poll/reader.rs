//! Reading what changed, per connection, object and side, and queuing it for `object-sync`.
//!
//! - The initial sync is a backfill in pages (HubSpot: the list API, 100 a page; QBO: a query
//!   keyed on `Id`, 1,000 a page). The cursor keeps the position after each queued page, so a
//!   crash resumes where it stopped; a task that runs out of time asks for its own continuation.
//! - Then incremental reads from the cursor, with an overlap (HubSpot's search index lags; QBO
//!   times are to the second), the ledger making the re-read records no-ops:
//!   - QBO: CDC while the cursor is within its 30 days; when CDC answers its 1,000-object cap,
//!     the window is read again with a paged query on `MetaData.LastUpdatedTime`, which has no
//!     cap. Older cursors use the query directly.
//!   - HubSpot: search on the object's last-modified property over `[since, now]`; a window
//!     holding more than search's 10,000 results is halved until each part fits, never cut.
//! - A cursor moves only after the changes it covers are queued.
//! - Entries due to be tried again (a retryable failure, a write whose answer was lost) have
//!   their records read again from the side that failed and queued like any change.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::connection::registry::{ConnectionStatus, Connections};
use crate::connection::tokens::{KeeperBearer, TokenKeeper};
use crate::domain::{ObjectKind, Provider};
use crate::error_class::ErrorClass;
use crate::hubspot::{
    CrmObject, Filter, FilterGroup, HubSpotClient, HubSpotError, Portal, SearchRequest, Sort,
    MAX_LIST_PAGE, MAX_SEARCH_PAGE, MAX_SEARCH_RESULTS,
};
use crate::ledger::{DueRetry, Ledger};
use crate::qbo::query::{Order, Query, MAX_RESULTS};
use crate::qbo::{Company, QboClient, QboError};
use crate::queue::batch::MessageError;
use crate::queue::messages::{change_messages, PollTask};
use crate::queue::{OutgoingMessage, Queue, QueueError, QueueName};
use crate::settings::SettingsStore;
use crate::store::{CasOutcome, Store, StoreError};
use crate::sync::cursors::{Cursor, Cursors};
use crate::sync::objects::Synced;

/// HubSpot's search index lags behind writes: windows start this much before the cursor.
pub const HUBSPOT_OVERLAP_MS: i64 = 120_000;
/// QBO times are to the second: windows start this much before the cursor.
pub const QBO_OVERLAP_SECONDS: i64 = 60;
/// The most objects one CDC answer holds.
pub const CDC_LIMIT: usize = 1000;
/// CDC reaches back 30 days; a cursor older than this is read by query.
pub const CDC_DAYS: i64 = 29;
/// How long one task reads before it hands the rest to its continuation.
const TASK_BUDGET: Duration = Duration::from_secs(20);
/// The most entries one task reads again for retries.
const RETRIES_PER_TASK: u32 = 500;

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Qbo(#[from] QboError),
    #[error(transparent)]
    HubSpot(#[from] HubSpotError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Lifecycle(#[from] crate::connection::install::ConnectError),
}

impl MessageError for PollError {
    fn class(&self) -> ErrorClass {
        match self {
            PollError::Qbo(e) => e.class(),
            PollError::HubSpot(e) => e.class(),
            PollError::Store(e) => e.class(),
            PollError::Queue(e) => e.class(),
            PollError::Lifecycle(e) => e.class(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            PollError::Qbo(e) => e.retry_after(),
            PollError::HubSpot(e) => e.retry_after(),
            _ => None,
        }
    }
}

/// What one task read and queued.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct PollReport {
    pub records: usize,
    pub messages: usize,
    /// Records read again because their entries were due for a retry.
    pub retries: usize,
    /// The backfill is not finished: a continuation task was queued.
    pub continues: bool,
}

pub struct Reader {
    connections: Connections,
    settings: SettingsStore,
    cursors: Cursors,
    ledger: Ledger,
    tokens: Arc<TokenKeeper>,
    qbo: QboClient,
    hubspot: HubSpotClient,
    queue: Arc<dyn Queue>,
    clock: Clock,
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// `id@version`: what a change message's dedup id is made of.
fn version_key(record: &Value, side: Provider) -> String {
    match side {
        Provider::HubSpot => format!(
            "{}@{}",
            record["id"].as_str().unwrap_or_default(),
            record["updatedAt"].as_str().unwrap_or_default()
        ),
        Provider::Qbo => format!(
            "{}@{}",
            record["Id"].as_str().unwrap_or_default(),
            record["SyncToken"].as_str().unwrap_or_default()
        ),
    }
}

impl Reader {
    pub fn new(
        store: Arc<dyn Store>,
        tokens: Arc<TokenKeeper>,
        qbo: QboClient,
        hubspot: HubSpotClient,
        queue: Arc<dyn Queue>,
        clock: Clock,
    ) -> Self {
        Self {
            connections: Connections::new(store.clone()),
            settings: SettingsStore::new(store.clone()),
            cursors: Cursors::new(store.clone()),
            ledger: Ledger::new(store),
            tokens,
            qbo,
            hubspot,
            queue,
            clock,
        }
    }

    /// Reads one connection's changes of one object and queues them.
    pub async fn poll(&self, task: &PollTask) -> Result<PollReport, PollError> {
        let now = self.clock.now_seconds();
        let mut report = PollReport::default();
        let Some(connection) = self.connections.get(&task.connection_id, now).await? else {
            return Ok(report);
        };
        if connection.status != ConnectionStatus::Active {
            return Ok(report);
        }
        let (Some(synced), Some(settings)) = (
            Synced::of(task.object),
            self.settings
                .get(&task.connection_id, task.object, now)
                .await?,
        ) else {
            return Ok(report);
        };
        if !settings.enabled {
            return Ok(report);
        }
        let fields = synced.fields(&settings);
        let properties = synced.hubspot_properties(&fields);
        let (qbo_bearer, hubspot_bearer) =
            KeeperBearer::both(&self.tokens, &connection.realm_id, &connection.portal_id);
        let side = Side {
            reader: self,
            task,
            synced,
            properties,
            qbo: self.qbo.company(&connection.realm_id, &qbo_bearer),
            hubspot: self.hubspot.portal(&connection.portal_id, &hubspot_bearer),
            started: Instant::now(),
        };
        let mut sides = Vec::new();
        if settings.direction.hubspot_to_qbo() {
            sides.push(Provider::HubSpot);
        }
        if settings.direction.qbo_to_hubspot() {
            sides.push(Provider::Qbo);
        }
        for from in sides {
            side.read(from, &mut report).await?;
        }
        side.retry_due(&mut report).await?;
        if report.continues {
            let more = OutgoingMessage::json(task)?;
            self.queue.send_all(QueueName::Poll, vec![more]).await?;
        }
        Ok(report)
    }
}

/// One task's reading.
struct Side<'a> {
    reader: &'a Reader,
    task: &'a PollTask,
    synced: Synced,
    properties: Vec<String>,
    qbo: Company<'a>,
    hubspot: Portal<'a>,
    started: Instant,
}

/// A HubSpot page size that is a whole number of change messages (list 90, search 180), so that
/// no message of a page goes part full (each message's QuickBooks batches are full ones).
fn whole_messages(most: u32) -> u32 {
    let per_message = crate::queue::messages::max_records_per_message(Provider::HubSpot) as u32;
    match most / per_message {
        0 => most,
        whole => whole * per_message,
    }
}

impl Side<'_> {
    fn out_of_time(&self) -> bool {
        self.started.elapsed() >= TASK_BUDGET
    }

    async fn queue(
        &self,
        from: Provider,
        records: Vec<Value>,
        report: &mut PollReport,
    ) -> Result<(), PollError> {
        report.records += records.len();
        let keyed = records
            .into_iter()
            .map(|r| (version_key(&r, from), r))
            .collect();
        self.queue_keyed(from, keyed, report).await
    }

    /// Queues records with their dedup keys (`id@version`, plus the retry for retries).
    async fn queue_keyed(
        &self,
        from: Provider,
        keyed: Vec<(String, Value)>,
        report: &mut PollReport,
    ) -> Result<(), PollError> {
        if keyed.is_empty() {
            return Ok(());
        }
        let messages = change_messages(&self.task.connection_id, self.task.object, from, keyed)?;
        report.messages += messages.len();
        self.reader
            .queue
            .send_all(QueueName::Sync, messages)
            .await?;
        Ok(())
    }

    /// Moves the cursor; `false` when another poller moved it first (this one stops).
    async fn advance(
        &self,
        from: Provider,
        cursor: &Cursor,
        version: &mut Option<u64>,
    ) -> Result<bool, PollError> {
        match self
            .reader
            .cursors
            .put(
                &self.task.connection_id,
                self.task.object,
                from,
                cursor,
                *version,
            )
            .await?
        {
            CasOutcome::Written { version: v } => {
                *version = Some(v);
                Ok(true)
            }
            CasOutcome::VersionConflict => Ok(false),
        }
    }

    async fn read(&self, from: Provider, report: &mut PollReport) -> Result<(), PollError> {
        let now = self.reader.clock.now_seconds();
        let (mut cursor, mut version) = match self
            .reader
            .cursors
            .get(&self.task.connection_id, self.task.object, from, now)
            .await?
        {
            Some((cursor, version)) => (cursor, Some(version)),
            None => (
                Cursor::Backfill {
                    started_at: now,
                    position: None,
                },
                None,
            ),
        };
        loop {
            match cursor.clone() {
                Cursor::Backfill {
                    started_at,
                    position,
                } => {
                    let (records, next) = match from {
                        Provider::HubSpot => self.hubspot_page(position.as_deref()).await?,
                        Provider::Qbo => self.qbo_page(position.as_deref()).await?,
                    };
                    self.queue(from, records, report).await?;
                    cursor = match next {
                        Some(position) => Cursor::Backfill {
                            started_at,
                            position: Some(position),
                        },
                        None => Cursor::Incremental {
                            since: match from {
                                Provider::HubSpot => (started_at * 1000).to_string(),
                                Provider::Qbo => OffsetDateTime::from_unix_timestamp(started_at)
                                    .map(rfc3339)
                                    .unwrap_or_default(),
                            },
                        },
                    };
                    if !self.advance(from, &cursor, &mut version).await? {
                        return Ok(());
                    }
                    if matches!(cursor, Cursor::Backfill { .. }) && self.out_of_time() {
                        report.continues = true;
                        return Ok(());
                    }
                    if matches!(cursor, Cursor::Incremental { .. }) {
                        return Ok(());
                    }
                }
                Cursor::Incremental { since } => {
                    let next = match from {
                        Provider::HubSpot => self.hubspot_changes(&since, report).await?,
                        Provider::Qbo => self.qbo_changes(&since, report).await?,
                    };
                    self.advance(from, &Cursor::Incremental { since: next }, &mut version)
                        .await?;
                    return Ok(());
                }
            }
        }
    }

    async fn hubspot_page(
        &self,
        after: Option<&str>,
    ) -> Result<(Vec<Value>, Option<String>), PollError> {
        let wanted: Vec<&str> = self.properties.iter().map(String::as_str).collect();
        let (records, next) = self
            .hubspot
            .list(
                self.synced.hubspot_type(),
                &wanted,
                after,
                whole_messages(MAX_LIST_PAGE),
            )
            .await?;
        Ok((to_values(&records), next))
    }

    async fn qbo_page(
        &self,
        after_id: Option<&str>,
    ) -> Result<(Vec<Value>, Option<String>), PollError> {
        let mut query =
            Query::select(self.synced.qbo_entity()).with_projection(self.synced.qbo_projection());
        if let Some(after) = after_id {
            query = query.gt("Id", after);
        }
        let query = query.order_by("Id", Order::Asc).page(1, MAX_RESULTS);
        let rows = self.qbo.query_values(&query).await?;
        let next = (rows.len() as u32 == MAX_RESULTS)
            .then(|| {
                rows.last()
                    .and_then(|r| r["Id"].as_str())
                    .map(str::to_owned)
            })
            .flatten();
        Ok((rows, next))
    }

    /// Every HubSpot record modified in `[since − overlap, now]`; returns the next `since`.
    async fn hubspot_changes(
        &self,
        since: &str,
        report: &mut PollReport,
    ) -> Result<String, PollError> {
        let now_ms = self.reader.clock.now_ms();
        let low = since.parse::<i64>().unwrap_or(0) - HUBSPOT_OVERLAP_MS;
        let mut windows = vec![(low.max(0), now_ms)];
        while let Some((low, high)) = windows.pop() {
            let first = self.search_window(low, high, None).await?;
            if first.total > MAX_SEARCH_RESULTS && high > low {
                // Too many for one search: halve the window and read both halves.
                let middle = low + (high - low) / 2;
                windows.push((middle + 1, high));
                windows.push((low, middle));
                continue;
            }
            if first.total > MAX_SEARCH_RESULTS {
                tracing::error!(connection = %self.task.connection_id, at = low,
                    "more than 10,000 records changed within one millisecond; some may be read only on a later window");
            }
            let mut records = to_values(&first.results);
            let mut after = first.after;
            while let Some(next) = after {
                let page = self.search_window(low, high, Some(next)).await?;
                records.extend(to_values(&page.results));
                after = page.after;
            }
            self.queue(Provider::HubSpot, records, report).await?;
        }
        Ok(now_ms.to_string())
    }

    async fn search_window(
        &self,
        low: i64,
        high: i64,
        after: Option<String>,
    ) -> Result<crate::hubspot::SearchPage, PollError> {
        let modified = self.synced.hubspot_modified();
        let request = SearchRequest {
            filter_groups: vec![FilterGroup {
                filters: vec![Filter::between(modified, low, high)],
            }],
            sorts: vec![Sort::ascending(modified)],
            properties: self.properties.clone(),
            limit: whole_messages(MAX_SEARCH_PAGE),
            after,
        };
        Ok(self
            .hubspot
            .search(self.synced.hubspot_type(), &request)
            .await?)
    }

    /// Every QBO record changed since `since − overlap`; returns the next `since`.
    async fn qbo_changes(&self, since: &str, report: &mut PollReport) -> Result<String, PollError> {
        let now = OffsetDateTime::from_unix_timestamp(self.reader.clock.now_seconds())
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let from = parse_time(since).unwrap_or(now) - time::Duration::seconds(QBO_OVERLAP_SECONDS);
        let entity = self.synced.qbo_entity();
        if now - from < time::Duration::days(CDC_DAYS) {
            let changes = self.qbo.cdc(&[entity], &rfc3339(from)).await?;
            let rows = changes.entities.get(entity).cloned().unwrap_or_default();
            if rows.len() < CDC_LIMIT {
                self.queue(Provider::Qbo, rows, report).await?;
                let next = parse_time(&changes.time)
                    .map(rfc3339)
                    .unwrap_or_else(|| rfc3339(now));
                return Ok(next);
            }
            tracing::info!(connection = %self.task.connection_id, entity,
                "CDC answered its 1,000-object cap; reading the window by query");
        }
        let query = self
            .synced
            .qbo_query()
            .ge("MetaData.LastUpdatedTime", &rfc3339(from))
            .le("MetaData.LastUpdatedTime", &rfc3339(now))
            .order_by("MetaData.LastUpdatedTime", Order::Asc);
        let mut page = query.page(1, MAX_RESULTS);
        loop {
            let rows = self.qbo.query_values(&page).await?;
            let full = rows.len() as u32 == MAX_RESULTS;
            self.queue(Provider::Qbo, rows, report).await?;
            if !full {
                break;
            }
            page = page.next_page();
        }
        Ok(rfc3339(now))
    }
}

impl Side<'_> {
    /// Entries due to be tried again: their records, read again from the side that failed,
    /// are queued like any change (the engine decides again, against the ledger). A record its
    /// side no longer has is queued as gone, so its entry is left out rather than retried.
    async fn retry_due(&self, report: &mut PollReport) -> Result<(), PollError> {
        let now = self.reader.clock.now_seconds();
        let due = self
            .reader
            .ledger
            .due(
                &self.task.connection_id,
                self.task.object,
                now,
                RETRIES_PER_TASK,
            )
            .await?;
        for from in [Provider::HubSpot, Provider::Qbo] {
            let wanted: Vec<&DueRetry> = due.iter().filter(|d| d.source == from).collect();
            if wanted.is_empty() {
                continue;
            }
            let ids: Vec<String> = wanted.iter().map(|d| d.id.clone()).collect();
            let found = match from {
                Provider::HubSpot => self.hubspot_by_id(&ids).await?,
                Provider::Qbo => self.qbo_by_id(&ids).await?,
            };
            let keyed = wanted
                .iter()
                .map(|d| {
                    let record = found
                        .iter()
                        .find(|(asked, _)| *asked == d.id)
                        .map(|(_, r)| r.clone())
                        .unwrap_or_else(|| gone_record(from, &d.id));
                    (
                        format!("{}~retry{}", version_key(&record, from), d.at),
                        record,
                    )
                })
                .collect::<Vec<_>>();
            report.retries += keyed.len();
            self.queue_keyed(from, keyed, report).await?;
        }
        Ok(())
    }

    /// HubSpot records by id, each with the id it was asked by (a merged id answers as the
    /// record it was merged into).
    async fn hubspot_by_id(&self, ids: &[String]) -> Result<Vec<(String, Value)>, PollError> {
        let wanted: Vec<&str> = self.properties.iter().map(String::as_str).collect();
        let mut found = Vec::new();
        for chunk in ids.chunks(crate::hubspot::MAX_BATCH_INPUTS) {
            let read = self
                .hubspot
                .batch_read(self.synced.hubspot_type(), chunk, &wanted, None)
                .await?;
            for record in read.results {
                let merged = record
                    .property(crate::mapping::contacts::MERGED_IDS)
                    .unwrap_or_default()
                    .split(';')
                    .map(str::to_owned)
                    .collect::<Vec<_>>();
                let value = serde_json::to_value(&record).unwrap_or(Value::Null);
                for asked in chunk
                    .iter()
                    .filter(|id| **id == record.id || merged.contains(id))
                {
                    found.push((asked.clone(), value.clone()));
                }
            }
        }
        Ok(found)
    }

    async fn qbo_by_id(&self, ids: &[String]) -> Result<Vec<(String, Value)>, PollError> {
        let mut found = Vec::new();
        for chunk in ids.chunks(100) {
            let query = self
                .synced
                .qbo_query()
                .any_of("Id", chunk.iter().map(String::as_str));
            for row in self.qbo.query_all_values(&query).await? {
                if let Some(id) = row["Id"].as_str() {
                    found.push((id.to_owned(), row.clone()));
                }
            }
        }
        Ok(found)
    }
}

/// A record its side no longer answers for, as that side marks one gone.
fn gone_record(side: Provider, id: &str) -> Value {
    match side {
        Provider::HubSpot => serde_json::json!({"id": id, "properties": {}, "archived": true}),
        Provider::Qbo => serde_json::json!({"Id": id, "status": "Deleted"}),
    }
}

fn to_values(records: &[CrmObject]) -> Vec<Value> {
    records
        .iter()
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect()
}

/// The objects the poller reads (those the engine syncs).
pub fn polled_objects() -> impl Iterator<Item = ObjectKind> {
    ObjectKind::ALL
        .into_iter()
        .filter(|o| Synced::of(*o).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hubspot_pages_are_whole_messages() {
        assert_eq!(whole_messages(MAX_LIST_PAGE), 90);
        assert_eq!(whole_messages(MAX_SEARCH_PAGE), 180);
        assert_eq!(whole_messages(10), 10, "never above the API's page");
    }
}

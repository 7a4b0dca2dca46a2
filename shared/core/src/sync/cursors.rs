//! Where reading each object's changes stands, per connection and side. A cursor moves only
//! after the changes it covers are queued, and only by compare-and-swap, so two pollers never
//! move it past each other.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::domain::{ConnectionId, ObjectKind, Provider};
use crate::store::keys::connections as keys;
use crate::store::{CasOutcome, Item, Query, Store, StoreError, Table, TransactWrite};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Cursor {
    /// Reading every record, page after page (the initial sync); `position` is where the next
    /// page starts (`None`: the first).
    Backfill {
        /// Epoch seconds: changes from then on are read incrementally afterwards.
        started_at: i64,
        position: Option<String>,
    },
    /// Reading what changed since `since` (QBO: an RFC 3339 time; HubSpot: epoch ms).
    Incremental { since: String },
}

pub struct Cursors {
    store: Arc<dyn Store>,
}

impl Cursors {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// The cursor and the version its next write must name.
    pub async fn get(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        side: Provider,
        now: i64,
    ) -> Result<Option<(Cursor, u64)>, StoreError> {
        match self
            .store
            .get(
                Table::Connections,
                &keys::cursor(connection, object, side),
                now,
            )
            .await?
        {
            Some(item) => Ok(Some((item.to_value()?, item.version))),
            None => Ok(None),
        }
    }

    /// Moves the cursor from `expected` (`None`: there was none); a conflict means another
    /// poller moved it first.
    pub async fn put(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        side: Provider,
        cursor: &Cursor,
        expected: Option<u64>,
    ) -> Result<CasOutcome, StoreError> {
        let item = Item::from_value(keys::cursor(connection, object, side), cursor)?;
        self.store
            .put_versioned(Table::Connections, item, expected)
            .await
    }

    /// Reads one side of an object from the start again (a mapping was added that historical
    /// records need), then goes on incrementally from now. Nothing is missed: the backfill
    /// reads every record. Lost races are retried on what the other writer left.
    pub async fn restart(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        side: Provider,
        now: i64,
    ) -> Result<(), StoreError> {
        let restarted = Cursor::Backfill {
            started_at: now,
            position: None,
        };
        for _ in 0..5 {
            let version = self.get(connection, object, side, now).await?.map(|c| c.1);
            match self
                .put(connection, object, side, &restarted, version)
                .await?
            {
                CasOutcome::Written { .. } => return Ok(()),
                CasOutcome::VersionConflict => continue,
            }
        }
        Err(StoreError::Unavailable(
            "the cursor kept moving while it was restarted".into(),
        ))
    }

    /// Forgets where reading stood (the object's settings were deleted).
    pub async fn delete_all(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        now: i64,
    ) -> Result<(), StoreError> {
        let query = Query::partition(keys::partition(connection))
            .sort_prefix(format!("{}{object}#", keys::CURSOR_PREFIX));
        let writes: Vec<TransactWrite> = self
            .store
            .query_all(Table::Connections, query, now)
            .await?
            .into_iter()
            .map(|item| TransactWrite::Delete {
                table: Table::Connections,
                key: item.key,
            })
            .collect();
        if !writes.is_empty() {
            self.store.transact(writes).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn cursors_move_by_compare_and_swap_and_are_forgotten_together() {
        let cursors = Cursors::new(Arc::new(MemoryStore::new()));
        let c = ConnectionId::parse("c1").unwrap();
        let start = Cursor::Backfill {
            started_at: 100,
            position: None,
        };
        assert_eq!(
            cursors
                .put(&c, ObjectKind::Contact, Provider::Qbo, &start, None)
                .await
                .unwrap(),
            CasOutcome::Written { version: 1 }
        );
        let next = Cursor::Incremental {
            since: "2026-01-01T00:00:00Z".into(),
        };
        assert_eq!(
            cursors
                .put(&c, ObjectKind::Contact, Provider::Qbo, &next, None)
                .await
                .unwrap(),
            CasOutcome::VersionConflict,
            "a second poller starting over loses"
        );
        cursors
            .put(&c, ObjectKind::Contact, Provider::Qbo, &next, Some(1))
            .await
            .unwrap();
        cursors
            .put(&c, ObjectKind::Contact, Provider::HubSpot, &start, None)
            .await
            .unwrap();
        cursors
            .put(&c, ObjectKind::Product, Provider::Qbo, &start, None)
            .await
            .unwrap();
        assert_eq!(
            cursors
                .get(&c, ObjectKind::Contact, Provider::Qbo, 0)
                .await
                .unwrap(),
            Some((next, 2))
        );
        cursors
            .delete_all(&c, ObjectKind::Contact, 0)
            .await
            .unwrap();
        assert!(cursors
            .get(&c, ObjectKind::Contact, Provider::Qbo, 0)
            .await
            .unwrap()
            .is_none());
        assert!(cursors
            .get(&c, ObjectKind::Contact, Provider::HubSpot, 0)
            .await
            .unwrap()
            .is_none());
        assert!(cursors
            .get(&c, ObjectKind::Product, Provider::Qbo, 0)
            .await
            .unwrap()
            .is_some());
    }
}

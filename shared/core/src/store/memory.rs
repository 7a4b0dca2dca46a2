//! In-memory adapter of the storage port, for unit tests of logic that uses the store. It keeps
//! the same conditional semantics as the DynamoDB adapter; the integration suite runs one set of
//! contract tests against both.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::*;

type Rows = BTreeMap<ItemKey, Item>;

#[derive(Default)]
pub struct MemoryStore {
    tables: Mutex<HashMap<Table, Rows>>,
    leases: Mutex<HashMap<(Table, ItemKey), Lease>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, table: Table, f: impl FnOnce(&mut Rows) -> R) -> Result<R, StoreError> {
        let mut tables = self.tables.lock().map_err(|_| poisoned())?;
        Ok(f(tables.entry(table).or_default()))
    }
}

fn poisoned() -> StoreError {
    StoreError::Unavailable("store lock poisoned".into())
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(
        &self,
        table: Table,
        key: &ItemKey,
        now_epoch_seconds: i64,
    ) -> Result<Option<Item>, StoreError> {
        self.with(table, |rows| {
            rows.get(key)
                .filter(|item| !item.is_expired(now_epoch_seconds))
                .cloned()
        })
    }

    async fn put(&self, table: Table, item: Item) -> Result<(), StoreError> {
        check_document(&item.doc)?;
        self.with(table, |rows| {
            rows.insert(item.key.clone(), item);
        })
    }

    async fn claim(
        &self,
        table: Table,
        item: Item,
        now_epoch_seconds: i64,
    ) -> Result<ClaimOutcome, StoreError> {
        check_document(&item.doc)?;
        self.with(table, |rows| match rows.get(&item.key) {
            Some(existing) if !existing.is_expired(now_epoch_seconds) => {
                ClaimOutcome::AlreadyClaimed
            }
            _ => {
                rows.insert(item.key.clone(), item);
                ClaimOutcome::Claimed
            }
        })
    }

    async fn put_versioned(
        &self,
        table: Table,
        mut item: Item,
        expected: Option<u64>,
    ) -> Result<CasOutcome, StoreError> {
        check_document(&item.doc)?;
        self.with(table, |rows| {
            let current = rows.get(&item.key).map(|stored| stored.version);
            let matches = match (expected, current) {
                (None, None) => true,
                (Some(v), Some(c)) => v == c,
                _ => false,
            };
            if !matches {
                return CasOutcome::VersionConflict;
            }
            let version = expected.map_or(1, |v| v + 1);
            item.version = version;
            rows.insert(item.key.clone(), item);
            CasOutcome::Written { version }
        })
    }

    async fn acquire_lease(
        &self,
        table: Table,
        key: &ItemKey,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<LeaseOutcome, StoreError> {
        let mut leases = self.leases.lock().map_err(|_| poisoned())?;
        let slot = (table, key.clone());
        match leases.get(&slot) {
            Some(lease) if lease.until_ms > now_ms && lease.owner != owner => {
                Ok(LeaseOutcome::Held(lease.clone()))
            }
            _ => {
                let lease = Lease {
                    owner: owner.to_owned(),
                    until_ms: now_ms.saturating_add(ttl_ms),
                };
                leases.insert(slot, lease.clone());
                Ok(LeaseOutcome::Acquired(lease))
            }
        }
    }

    async fn release_lease(
        &self,
        table: Table,
        key: &ItemKey,
        owner: &str,
    ) -> Result<bool, StoreError> {
        let mut leases = self.leases.lock().map_err(|_| poisoned())?;
        let slot = (table, key.clone());
        if leases.get(&slot).is_some_and(|lease| lease.owner == owner) {
            leases.remove(&slot);
            Ok(true)
        } else {
            Ok(false)
        }
    }

    async fn delete(&self, table: Table, key: &ItemKey) -> Result<(), StoreError> {
        self.with(table, |rows| {
            rows.remove(key);
        })
    }

    async fn take(
        &self,
        table: Table,
        key: &ItemKey,
        now_epoch_seconds: i64,
    ) -> Result<Option<Item>, StoreError> {
        self.with(table, |rows| {
            rows.remove(key)
                .filter(|item| !item.is_expired(now_epoch_seconds))
        })
    }

    async fn query(
        &self,
        table: Table,
        query: Query,
        now_epoch_seconds: i64,
    ) -> Result<Page, StoreError> {
        self.with(table, |rows| {
            // Position of an item in the (index) sort order; also the paging cursor.
            let mut matching: Vec<(String, Item)> = rows
                .values()
                .filter_map(|item| {
                    let (pk, sk) = if query.on_index {
                        item.index
                            .as_ref()
                            .map(|i| (i.pk.as_str(), i.sk.as_str()))?
                    } else {
                        (item.key.pk.as_str(), item.key.sk.as_str())
                    };
                    let wanted = pk == query.partition
                        && query
                            .sort_prefix
                            .as_deref()
                            .is_none_or(|p| sk.starts_with(p))
                        && !item.is_expired(now_epoch_seconds);
                    wanted.then(|| {
                        (
                            format!("{sk}\u{0}{}\u{0}{}", item.key.pk, item.key.sk),
                            item.clone(),
                        )
                    })
                })
                .collect();
            matching.sort_by(|a, b| a.0.cmp(&b.0));
            if let Some(after) = query.after.as_ref().and_then(|cursor| cursor.0.first()) {
                matching.retain(|(position, _)| *position > after.1);
            }
            let limit = query.limit.map_or(usize::MAX, |l| (l as usize).max(1));
            let next = (matching.len() > limit).then(|| {
                ItemKeyCursor(vec![("position".to_owned(), matching[limit - 1].0.clone())])
            });
            Page {
                items: matching
                    .into_iter()
                    .take(limit)
                    .map(|(_, item)| item)
                    .collect(),
                next,
            }
        })
    }

    async fn batch_put(&self, table: Table, items: Vec<Item>) -> Result<(), StoreError> {
        for item in items {
            self.put(table, item).await?;
        }
        Ok(())
    }
}

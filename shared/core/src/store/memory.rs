//! In-memory adapter of the storage port, for unit tests of logic that uses the store. It keeps
//! the same conditional semantics as the DynamoDB adapter; the integration suite runs one set of
//! contract tests against both.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::*;

#[derive(Debug, Clone)]
struct Stored {
    item: Item,
    lease: Option<Lease>,
}

#[derive(Default)]
pub struct MemoryStore {
    tables: Mutex<HashMap<Table, BTreeMap<ItemKey, Stored>>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(
        &self,
        table: Table,
        f: impl FnOnce(&mut BTreeMap<ItemKey, Stored>) -> R,
    ) -> Result<R, StoreError> {
        let mut tables = self
            .tables
            .lock()
            .map_err(|_| StoreError::Unavailable("store lock poisoned".into()))?;
        Ok(f(tables.entry(table).or_default()))
    }
}

fn sort_key_of(item: &Item, on_index: bool) -> Option<(&str, &str)> {
    if on_index {
        item.index.as_ref().map(|i| (i.pk.as_str(), i.sk.as_str()))
    } else {
        Some((item.key.pk.as_str(), item.key.sk.as_str()))
    }
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
                .map(|s| s.item.clone())
                .filter(|item| !item.is_expired(now_epoch_seconds))
        })
    }

    async fn put(&self, table: Table, item: Item) -> Result<(), StoreError> {
        check_document(&item.doc)?;
        self.with(table, |rows| {
            let lease = rows.get(&item.key).and_then(|s| s.lease.clone());
            rows.insert(item.key.clone(), Stored { item, lease });
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
            Some(existing) if !existing.item.is_expired(now_epoch_seconds) => {
                ClaimOutcome::AlreadyClaimed
            }
            _ => {
                rows.insert(item.key.clone(), Stored { item, lease: None });
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
            let current = rows.get(&item.key).map(|s| s.item.version);
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
            let lease = rows.get(&item.key).and_then(|s| s.lease.clone());
            rows.insert(item.key.clone(), Stored { item, lease });
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
        self.with(table, |rows| {
            let stored = rows.entry(key.clone()).or_insert_with(|| Stored {
                item: Item::new(key.clone(), Document::new()),
                lease: None,
            });
            match &stored.lease {
                Some(lease) if lease.until_ms > now_ms && lease.owner != owner => {
                    LeaseOutcome::Held(lease.clone())
                }
                _ => {
                    let lease = Lease {
                        owner: owner.to_owned(),
                        until_ms: now_ms.saturating_add(ttl_ms),
                    };
                    stored.lease = Some(lease.clone());
                    LeaseOutcome::Acquired(lease)
                }
            }
        })
    }

    async fn release_lease(
        &self,
        table: Table,
        key: &ItemKey,
        owner: &str,
    ) -> Result<bool, StoreError> {
        self.with(table, |rows| match rows.get_mut(key) {
            Some(stored) if stored.lease.as_ref().is_some_and(|l| l.owner == owner) => {
                stored.lease = None;
                true
            }
            _ => false,
        })
    }

    async fn delete(&self, table: Table, key: &ItemKey) -> Result<(), StoreError> {
        self.with(table, |rows| {
            rows.remove(key);
        })
    }

    async fn query(
        &self,
        table: Table,
        query: Query,
        now_epoch_seconds: i64,
    ) -> Result<Page, StoreError> {
        self.with(table, |rows| {
            let mut matching: Vec<(String, Item)> = rows
                .values()
                .filter_map(|s| {
                    let (pk, sk) = sort_key_of(&s.item, query.on_index)?;
                    let wanted = pk == query.partition
                        && query
                            .sort_prefix
                            .as_deref()
                            .is_none_or(|p| sk.starts_with(p))
                        && !s.item.is_expired(now_epoch_seconds);
                    wanted.then(|| {
                        (
                            format!("{sk}\u{0}{}\u{0}{}", s.item.key.pk, s.item.key.sk),
                            s.item.clone(),
                        )
                    })
                })
                .collect();
            matching.sort_by(|a, b| a.0.cmp(&b.0));
            let start = query
                .after
                .as_ref()
                .and_then(|cursor| cursor.0.first().map(|(_, position)| position.clone()))
                .map_or(0, |position| {
                    matching
                        .iter()
                        .position(|(p, _)| *p > position)
                        .unwrap_or(matching.len())
                });
            let limit = query.limit.map_or(usize::MAX, |l| (l as usize).max(1));
            let page: Vec<(String, Item)> = matching.into_iter().skip(start).collect();
            let next = (page.len() > limit)
                .then(|| ItemKeyCursor(vec![("position".to_owned(), page[limit - 1].0.clone())]));
            Page {
                items: page.into_iter().take(limit).map(|(_, item)| item).collect(),
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

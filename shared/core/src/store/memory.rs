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

    async fn get_many(
        &self,
        table: Table,
        keys: &[ItemKey],
        now_epoch_seconds: i64,
    ) -> Result<Vec<Item>, StoreError> {
        self.with(table, |rows| {
            keys.iter()
                .filter_map(|key| rows.get(key))
                .filter(|item| !item.is_expired(now_epoch_seconds))
                .cloned()
                .collect()
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

    async fn delete_versioned(
        &self,
        table: Table,
        key: &ItemKey,
        expected: u64,
    ) -> Result<CasOutcome, StoreError> {
        self.with(table, |rows| match rows.get(key) {
            Some(item) if item.version == expected => {
                rows.remove(key);
                CasOutcome::Written { version: expected }
            }
            _ => CasOutcome::VersionConflict,
        })
    }

    async fn transact(&self, writes: Vec<TransactWrite>) -> Result<TransactOutcome, StoreError> {
        check_transaction(&writes)?;
        let mut tables = self.tables.lock().map_err(|_| poisoned())?;
        // Every condition first; then every write, under the one lock.
        for (index, write) in writes.iter().enumerate() {
            let (table, expected) = match write {
                TransactWrite::PutVersioned {
                    table, expected, ..
                } => (*table, *expected),
                TransactWrite::DeleteVersioned {
                    table, expected, ..
                } => (*table, Some(*expected)),
                TransactWrite::Check {
                    table, expected, ..
                } => (*table, *expected),
                TransactWrite::Put { .. }
                | TransactWrite::Delete { .. }
                | TransactWrite::Add { .. } => continue,
            };
            let current = tables
                .get(&table)
                .and_then(|rows| rows.get(write.key()))
                .map(|item| item.version);
            if current != expected {
                return Ok(TransactOutcome::Conflict { index });
            }
        }
        for write in writes {
            match write {
                TransactWrite::PutVersioned {
                    table,
                    mut item,
                    expected,
                } => {
                    item.version = expected.map_or(1, |v| v + 1);
                    tables
                        .entry(table)
                        .or_default()
                        .insert(item.key.clone(), item);
                }
                TransactWrite::Put { table, item } => {
                    tables
                        .entry(table)
                        .or_default()
                        .insert(item.key.clone(), item);
                }
                TransactWrite::Delete { table, key }
                | TransactWrite::DeleteVersioned { table, key, .. } => {
                    tables.entry(table).or_default().remove(&key);
                }
                TransactWrite::Check { .. } => {}
                TransactWrite::Add { table, key, deltas } => {
                    let item = tables
                        .entry(table)
                        .or_default()
                        .entry(key.clone())
                        .or_insert_with(|| Item::new(key, Document::new()));
                    for (attribute, by) in deltas {
                        let value = item
                            .doc
                            .get(&attribute)
                            .and_then(Value::as_i64)
                            .unwrap_or(0)
                            + by;
                        item.doc.insert(attribute, Value::from(value));
                    }
                }
            }
        }
        Ok(TransactOutcome::Written)
    }

    async fn increment(
        &self,
        table: Table,
        key: &ItemKey,
        attribute: &str,
        by: i64,
        expires_at: Option<i64>,
    ) -> Result<i64, StoreError> {
        self.with(table, |rows| {
            let item = rows
                .entry(key.clone())
                .or_insert_with(|| Item::new(key.clone(), Document::new()));
            let value = item.doc.get(attribute).and_then(Value::as_i64).unwrap_or(0) + by;
            item.doc.insert(attribute.to_owned(), Value::from(value));
            if expires_at.is_some() {
                item.expires_at = expires_at;
            }
            value
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
            let mut matching: Vec<(String, Item)> =
                rows.values()
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
                            && query.sort_between.as_ref().is_none_or(|(low, high)| {
                                sk >= low.as_str() && sk <= high.as_str()
                            })
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

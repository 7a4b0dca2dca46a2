//! Where the ledger is kept (the ledger table). Each entry lives under its link id; pointers
//! from each side's record id and from the match key lead to it, and are written in the same
//! transaction as the entry, so a link is never half-recorded. Entries are indexed by status
//! (with the failure category), so lists per status are queries; the counts per status are
//! one item, moved in the same transactions as the entries.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::entry::{LedgerEntry, LinkStatus};
use crate::domain::{ConnectionId, ObjectKind, Provider};
use crate::store::keys::ledger as keys;
use crate::store::{
    Item, ItemKey, ItemKeyCursor, Query, Store, StoreError, Table, TransactOutcome, TransactWrite,
    MAX_TRANSACTION_WRITES,
};

/// How long an outbox is kept (the replay has long happened by then).
const OUTBOX_DAYS: i64 = 7;

/// An entry as read, with the version its next write must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub entry: LedgerEntry,
    pub version: u64,
}

/// What asking to retry one record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOne {
    Retried,
    /// It is not failing (synced, excluded or pending): nothing to retry.
    NotFailing(LinkStatus),
    /// No such record is known to the connection.
    Unknown,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pointer {
    link: String,
}

/// The writes that store one entry (or an outbox), and the status move they make.
#[derive(Debug, Clone, PartialEq)]
pub struct Writes {
    writes: Vec<TransactWrite>,
    moves: Option<StatusMove>,
}

/// An entry going from one status (none: new) to another, on its object's counts item.
#[derive(Debug, Clone, PartialEq)]
struct StatusMove {
    counts: ItemKey,
    from: Option<LinkStatus>,
    /// `None`: the entry is removed.
    to: Option<LinkStatus>,
}

/// An entry due to be read again: the side and id of the record to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueRetry {
    pub link: String,
    pub source: Provider,
    pub id: String,
    /// When it became due (part of the pointer's key).
    pub at: i64,
}

/// A batch write waiting for its answer to be recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outbox {
    pub requestid: String,
    /// The batch items, exactly as sent.
    pub items: Vec<Value>,
    pub sent_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a ledger entry was written by someone else meanwhile; read it again")]
    Conflict,
}

pub struct Ledger {
    store: Arc<dyn Store>,
}

fn status_index(entry: &LedgerEntry) -> (String, String) {
    let category = entry
        .failure
        .as_ref()
        .map(|f| f.category.as_str())
        .unwrap_or("");
    (
        keys::status_index(&entry.connection_id, entry.object, entry.status.as_str()),
        keys::status_index_sort(category, entry.updated_at, &entry.link),
    )
}

impl Ledger {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// The linked record on the other side of each of these records of `side` that has one
    /// still there, by record id.
    pub async fn linked(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        side: Provider,
        ids: &[String],
        now: i64,
    ) -> Result<HashMap<String, String>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let other = side.other();
        Ok(self
            .find(connection, object, side, ids, now)
            .await?
            .into_iter()
            .filter(|(_, s)| !s.entry.side(other).gone)
            .filter_map(|(id, s)| s.entry.side(other).id.clone().map(|o| (id, o)))
            .collect())
    }

    /// The entries holding these records of `side`, by record id.
    pub async fn find(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        side: Provider,
        ids: &[String],
        now: i64,
    ) -> Result<HashMap<String, Stored>, StoreError> {
        let pointers: Vec<ItemKey> = ids
            .iter()
            .map(|id| keys::record_pointer(connection, object, side, id))
            .collect();
        let links = self.pointed(&pointers, now).await?;
        let by_link = self
            .entries(connection, object, links.values(), now)
            .await?;
        Ok(ids
            .iter()
            .filter_map(|id| {
                let key = keys::record_pointer(connection, object, side, id);
                let link = links.get(&key.sk)?;
                Some((id.clone(), by_link.get(link)?.clone()))
            })
            .collect())
    }

    /// Which links hold these match keys, by key.
    pub async fn key_holders(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        match_keys: &[String],
        now: i64,
    ) -> Result<HashMap<String, String>, StoreError> {
        let pointers: Vec<ItemKey> = match_keys
            .iter()
            .map(|k| keys::key_pointer(connection, object, k))
            .collect();
        let links = self.pointed(&pointers, now).await?;
        Ok(match_keys
            .iter()
            .filter_map(|k| {
                let key = keys::key_pointer(connection, object, k);
                Some((k.clone(), links.get(&key.sk)?.clone()))
            })
            .collect())
    }

    /// Pointer sort keys → link ids.
    async fn pointed(
        &self,
        pointers: &[ItemKey],
        now: i64,
    ) -> Result<HashMap<String, String>, StoreError> {
        let items = self.store.get_many(Table::Ledger, pointers, now).await?;
        items
            .into_iter()
            .map(|item| Ok((item.key.sk.clone(), item.to_value::<Pointer>()?.link)))
            .collect()
    }

    async fn entries<'a>(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        links: impl Iterator<Item = &'a String>,
        now: i64,
    ) -> Result<HashMap<String, Stored>, StoreError> {
        let mut keys: Vec<ItemKey> = links
            .map(|link| keys::entry(connection, object, link))
            .collect();
        keys.sort();
        keys.dedup();
        let items = self.store.get_many(Table::Ledger, &keys, now).await?;
        items
            .into_iter()
            .map(|item| {
                let entry: LedgerEntry = item.to_value()?;
                Ok((
                    entry.link.clone(),
                    Stored {
                        entry,
                        version: item.version,
                    },
                ))
            })
            .collect()
    }

    /// One entry by its link id.
    pub async fn get(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        link: &str,
        now: i64,
    ) -> Result<Option<Stored>, StoreError> {
        Ok(self
            .entries(connection, object, std::iter::once(&link.to_owned()), now)
            .await?
            .remove(link))
    }
    /// The item of an entry, with its place in the status index (the ledger's writes make
    /// it; benchmarks fill a ledger with it directly).
    pub fn entry_item(entry: &LedgerEntry) -> Result<Item, StoreError> {
        let (index_pk, index_sk) = status_index(entry);
        Ok(Item::from_value(
            keys::entry(&entry.connection_id, entry.object, &entry.link),
            entry,
        )?
        .with_index(index_pk, index_sk))
    }

    /// The writes that store `entry` (read at `previous`, `None` for a new one) with any new
    /// pointers: a record id or match key newly held is claimed (it must be free), one given up
    /// is released.
    pub fn writes(
        &self,
        entry: &LedgerEntry,
        previous: Option<&Stored>,
    ) -> Result<Writes, StoreError> {
        let item = Self::entry_item(entry)?;
        let mut writes = vec![TransactWrite::PutVersioned {
            table: Table::Ledger,
            item,
            expected: previous.map(|p| p.version),
        }];
        let pointer = |key: ItemKey| -> Result<TransactWrite, StoreError> {
            Ok(TransactWrite::PutVersioned {
                table: Table::Ledger,
                item: Item::from_value(
                    key,
                    &Pointer {
                        link: entry.link.clone(),
                    },
                )?,
                expected: None,
            })
        };
        let before = previous.map(|p| &p.entry);
        for side in [Provider::HubSpot, Provider::Qbo] {
            let now_id = entry.side(side).id.as_deref();
            let then_id = before.and_then(|b| b.side(side).id.as_deref());
            if now_id != then_id {
                if let Some(id) = now_id {
                    writes.push(pointer(keys::record_pointer(
                        &entry.connection_id,
                        entry.object,
                        side,
                        id,
                    ))?);
                }
                if let Some(id) = then_id {
                    writes.push(TransactWrite::Delete {
                        table: Table::Ledger,
                        key: keys::record_pointer(&entry.connection_id, entry.object, side, id),
                    });
                }
            }
        }
        let retry_now = entry.retry_at();
        let retry_then = before.and_then(LedgerEntry::retry_at);
        if retry_now != retry_then {
            if let Some((at, _)) = retry_then {
                writes.push(TransactWrite::Delete {
                    table: Table::Ledger,
                    key: keys::retry_pointer(&entry.connection_id, entry.object, at, &entry.link),
                });
            }
            if let Some((at, source)) = retry_now {
                if let Some(id) = entry.side(source).id.clone() {
                    let key =
                        keys::retry_pointer(&entry.connection_id, entry.object, at, &entry.link);
                    writes.push(TransactWrite::Put {
                        table: Table::Ledger,
                        item: Item::from_value(
                            key,
                            &DueRetry {
                                link: entry.link.clone(),
                                source,
                                id,
                                at,
                            },
                        )?,
                    });
                }
            }
        }
        let then_key = before.and_then(|b| b.match_key.as_deref());
        if entry.match_key.as_deref() != then_key {
            if let Some(key) = &entry.match_key {
                writes.push(pointer(keys::key_pointer(
                    &entry.connection_id,
                    entry.object,
                    key,
                ))?);
            }
            if let Some(key) = then_key {
                writes.push(TransactWrite::Delete {
                    table: Table::Ledger,
                    key: keys::key_pointer(&entry.connection_id, entry.object, key),
                });
            }
        }
        let from = previous.map(|p| p.entry.status);
        let moves = (from != Some(entry.status)).then(|| StatusMove {
            counts: keys::status_counts(&entry.connection_id, entry.object),
            from,
            to: Some(entry.status),
        });
        Ok(Writes { writes, moves })
    }

    /// Removes an entry that never linked two records (left out, or failing before its first
    /// write), with its pointers and its place in the counts, so that the record it holds can
    /// be linked by another entry. Conditioned on the version read: `Conflict` if it changed.
    pub async fn remove(&self, stored: &Stored) -> Result<(), LedgerError> {
        let entry = &stored.entry;
        let mut writes = vec![TransactWrite::DeleteVersioned {
            table: Table::Ledger,
            key: keys::entry(&entry.connection_id, entry.object, &entry.link),
            expected: stored.version,
        }];
        for side in [Provider::HubSpot, Provider::Qbo] {
            if let Some(id) = entry.side(side).id.as_deref() {
                writes.push(TransactWrite::Delete {
                    table: Table::Ledger,
                    key: keys::record_pointer(&entry.connection_id, entry.object, side, id),
                });
            }
        }
        if let Some(key) = &entry.match_key {
            writes.push(TransactWrite::Delete {
                table: Table::Ledger,
                key: keys::key_pointer(&entry.connection_id, entry.object, key),
            });
        }
        if let Some((at, _)) = entry.retry_at() {
            writes.push(TransactWrite::Delete {
                table: Table::Ledger,
                key: keys::retry_pointer(&entry.connection_id, entry.object, at, &entry.link),
            });
        }
        let moves = Some(StatusMove {
            counts: keys::status_counts(&entry.connection_id, entry.object),
            from: Some(entry.status),
            to: None,
        });
        self.transact(vec![Writes { writes, moves }]).await
    }

    /// Makes the writes of several entries, each entry's writes in one transaction (and as
    /// many entries per transaction as fit), with the counts they move. A conflict means
    /// someone else wrote meanwhile; nothing of that transaction was written.
    pub async fn commit(&self, groups: Vec<Writes>) -> Result<(), LedgerError> {
        let mut batch: Vec<Writes> = Vec::new();
        let mut size = 0;
        for group in groups {
            // One place in each transaction is kept for each counts item it moves.
            let counted = batch
                .iter()
                .chain(std::iter::once(&group))
                .filter_map(|g| g.moves.as_ref().map(|m| &m.counts))
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            if !batch.is_empty() && size + group.writes.len() + counted > MAX_TRANSACTION_WRITES {
                self.transact(std::mem::take(&mut batch)).await?;
                size = 0;
            }
            size += group.writes.len();
            batch.push(group);
        }
        if !batch.is_empty() {
            self.transact(batch).await?;
        }
        Ok(())
    }

    async fn transact(&self, groups: Vec<Writes>) -> Result<(), LedgerError> {
        let mut deltas: std::collections::BTreeMap<ItemKey, HashMap<LinkStatus, i64>> =
            std::collections::BTreeMap::new();
        let mut writes = Vec::new();
        for group in groups {
            if let Some(moved) = group.moves {
                let counts = deltas.entry(moved.counts).or_default();
                if let Some(from) = moved.from {
                    *counts.entry(from).or_default() -= 1;
                }
                if let Some(to) = moved.to {
                    *counts.entry(to).or_default() += 1;
                }
            }
            writes.extend(group.writes);
        }
        for (key, counts) in deltas {
            let deltas: Vec<(String, i64)> = LinkStatus::ALL
                .iter()
                .filter_map(|s| {
                    counts
                        .get(s)
                        .filter(|d| **d != 0)
                        .map(|d| (s.as_str().to_owned(), *d))
                })
                .collect();
            if !deltas.is_empty() {
                writes.push(TransactWrite::Add {
                    table: Table::Ledger,
                    key,
                    deltas,
                });
            }
        }
        match self.store.transact(writes).await? {
            TransactOutcome::Written => Ok(()),
            TransactOutcome::Conflict { .. } => Err(LedgerError::Conflict),
        }
    }

    /// Entries due to be read again at `now` (oldest first, at most `limit`).
    pub async fn due(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        now: i64,
        limit: u32,
    ) -> Result<Vec<DueRetry>, StoreError> {
        let page = self
            .store
            .query(
                Table::Ledger,
                Query::partition(keys::retry_partition(connection, object))
                    .sort_prefix(keys::RETRY_PREFIX)
                    .sort_between(keys::RETRY_PREFIX, keys::retry_due_until(now))
                    .limit(limit),
                now,
            )
            .await?;
        page.items.iter().map(Item::to_value).collect()
    }

    /// Failing entries (of `category`, or all) are tried again at `now` — those that wait for a
    /// person and those whose retry is later — e.g. after a settings change that may fix them,
    /// or when someone asks. Answers how many.
    pub async fn retry_failures(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        category: Option<&str>,
        now: i64,
    ) -> Result<usize, LedgerError> {
        let items = self
            .store
            .query_all(
                Table::Ledger,
                Query::index(keys::status_index(
                    connection,
                    object,
                    LinkStatus::Failing.as_str(),
                )),
                now,
            )
            .await?;
        let mut retried = 0;
        for item in items {
            let stored = Stored {
                entry: item.to_value()?,
                version: item.version,
            };
            let mut entry = stored.entry.clone();
            let Some(failure) = entry.failure.as_mut() else {
                continue;
            };
            let due = failure.next_retry_at.is_some_and(|at| at <= now);
            if due || category.is_some_and(|c| failure.category != c) {
                continue;
            }
            failure.next_retry_at = Some(now);
            match self.commit(vec![self.writes(&entry, Some(&stored))?]).await {
                Ok(()) => retried += 1,
                // Written meanwhile: it is being worked on already.
                Err(LedgerError::Conflict) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(retried)
    }

    /// One failing record is tried again now (whatever its retry time was).
    pub async fn retry_one(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        side: Provider,
        id: &str,
        now: i64,
    ) -> Result<RetryOne, LedgerError> {
        let Some(stored) = self
            .find(connection, object, side, &[id.to_owned()], now)
            .await?
            .remove(id)
        else {
            return Ok(RetryOne::Unknown);
        };
        let mut entry = stored.entry.clone();
        let Some(failure) = entry
            .failure
            .as_mut()
            .filter(|_| entry.status == LinkStatus::Failing)
        else {
            return Ok(RetryOne::NotFailing(stored.entry.status));
        };
        failure.next_retry_at = Some(now);
        self.commit(vec![self.writes(&entry, Some(&stored))?])
            .await?;
        Ok(RetryOne::Retried)
    }

    /// Every entry of one object in one status.
    pub async fn with_status(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        status: LinkStatus,
        now: i64,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        self.store
            .query_all(
                Table::Ledger,
                Query::index(keys::status_index(connection, object, status.as_str())),
                now,
            )
            .await?
            .iter()
            .map(Item::to_value)
            .collect()
    }

    /// One page of the entries of one object in one status, in index order; pass `next` back
    /// for the following page.
    pub async fn status_page(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        status: LinkStatus,
        after: Option<ItemKeyCursor>,
        limit: u32,
        now: i64,
    ) -> Result<(Vec<LedgerEntry>, Option<ItemKeyCursor>), StoreError> {
        let query = Query::index(keys::status_index(connection, object, status.as_str()));
        self.page_of(query.limit(limit).after(after), now).await
    }

    /// One page of every entry of one object, in link order (the object's ledger partition).
    pub async fn entries_page(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        after: Option<ItemKeyCursor>,
        limit: u32,
        now: i64,
    ) -> Result<(Vec<LedgerEntry>, Option<ItemKeyCursor>), StoreError> {
        let query =
            Query::partition(keys::partition(connection, object)).sort_prefix(keys::ENTRY_PREFIX);
        self.page_of(query.limit(limit).after(after), now).await
    }

    /// One page of a query of entries.
    async fn page_of(
        &self,
        query: Query,
        now: i64,
    ) -> Result<(Vec<LedgerEntry>, Option<ItemKeyCursor>), StoreError> {
        let page = self.store.query(Table::Ledger, query, now).await?;
        let entries = page
            .items
            .iter()
            .map(Item::to_value)
            .collect::<Result<_, _>>()?;
        Ok((entries, page.next))
    }

    /// The entries of one object last changed at or after `since`: the synced ones by a range
    /// of the status index (its sort key starts with the time for them), the failing ones all.
    pub async fn changed_since(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        since: i64,
        now: i64,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let (low, high) = keys::status_index_time_range(since, now);
        let synced = Query::index(keys::status_index(
            connection,
            object,
            LinkStatus::Synced.as_str(),
        ))
        .sort_between(low, high);
        let mut entries: Vec<LedgerEntry> = self
            .store
            .query_all(Table::Ledger, synced, now)
            .await?
            .iter()
            .map(Item::to_value)
            .collect::<Result<_, _>>()?;
        entries.extend(
            self.with_status(connection, object, LinkStatus::Failing, now)
                .await?
                .into_iter()
                .filter(|e| e.updated_at >= since),
        );
        Ok(entries)
    }

    /// How many entries of one object are in each status (one read).
    pub async fn counts(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        now: i64,
    ) -> Result<HashMap<LinkStatus, usize>, StoreError> {
        let item = self
            .store
            .get(Table::Ledger, &keys::status_counts(connection, object), now)
            .await?;
        Ok(LinkStatus::ALL
            .into_iter()
            .map(|status| {
                let count = item
                    .as_ref()
                    .and_then(|i| i.doc.get(status.as_str()))
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                (status, count.max(0) as usize)
            })
            .collect())
    }

    /// The write that keeps an outbox, for the transaction that marks its entries pending.
    pub fn outbox_write(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        outbox: &Outbox,
    ) -> Result<Writes, StoreError> {
        let item = Item::from_value(keys::outbox(connection, object, &outbox.requestid), outbox)?
            .expiring_at(outbox.sent_at + OUTBOX_DAYS * 86_400);
        Ok(Writes {
            writes: vec![TransactWrite::Put {
                table: Table::Ledger,
                item,
            }],
            moves: None,
        })
    }

    pub async fn outbox(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        requestid: &str,
        now: i64,
    ) -> Result<Option<Outbox>, StoreError> {
        match self
            .store
            .get(
                Table::Ledger,
                &keys::outbox(connection, object, requestid),
                now,
            )
            .await?
        {
            Some(item) => Ok(Some(item.to_value()?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    const NOW: i64 = 1_900_000_000;

    fn conn() -> ConnectionId {
        ConnectionId::parse("c1").unwrap()
    }

    #[tokio::test]
    async fn entries_are_found_from_either_side_and_by_key() {
        let ledger = Ledger::new(Arc::new(MemoryStore::new()));
        let mut entry = LedgerEntry::new(conn(), ObjectKind::Contact, Provider::HubSpot, "51", NOW);
        entry.match_key = Some("ann@x.com".into());
        ledger
            .commit(vec![ledger.writes(&entry, None).unwrap()])
            .await
            .unwrap();
        let found = ledger
            .find(
                &conn(),
                ObjectKind::Contact,
                Provider::HubSpot,
                &["51".into(), "52".into()],
                NOW,
            )
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        let stored = found["51"].clone();
        assert_eq!(stored.version, 1);

        // The QBO side is linked later: its pointer appears; the key stays.
        let mut linked = stored.entry.clone();
        linked.qbo.id = Some("7".into());
        linked.mark_synced();
        ledger
            .commit(vec![ledger.writes(&linked, Some(&stored)).unwrap()])
            .await
            .unwrap();
        let by_qbo = ledger
            .find(
                &conn(),
                ObjectKind::Contact,
                Provider::Qbo,
                &["7".into()],
                NOW,
            )
            .await
            .unwrap();
        assert_eq!(by_qbo["7"].entry.link, "hs:51");
        assert_eq!(
            ledger
                .key_holders(
                    &conn(),
                    ObjectKind::Contact,
                    &["ann@x.com".into(), "bo@x.com".into()],
                    NOW
                )
                .await
                .unwrap(),
            HashMap::from([("ann@x.com".to_owned(), "hs:51".to_owned())])
        );
        let counts = ledger
            .counts(&conn(), ObjectKind::Contact, NOW)
            .await
            .unwrap();
        assert_eq!(
            (counts[&LinkStatus::Synced], counts[&LinkStatus::Pending]),
            (1, 0)
        );

        // A stale write conflicts; a second link claiming the same key conflicts.
        assert!(matches!(
            ledger
                .commit(vec![ledger.writes(&linked, Some(&stored)).unwrap()])
                .await,
            Err(LedgerError::Conflict)
        ));
        let mut rival = LedgerEntry::new(conn(), ObjectKind::Contact, Provider::Qbo, "9", NOW);
        rival.match_key = Some("ann@x.com".into());
        assert!(matches!(
            ledger
                .commit(vec![ledger.writes(&rival, None).unwrap()])
                .await,
            Err(LedgerError::Conflict)
        ));
        assert!(
            ledger
                .find(
                    &conn(),
                    ObjectKind::Contact,
                    Provider::Qbo,
                    &["9".into()],
                    NOW
                )
                .await
                .unwrap()
                .is_empty(),
            "nothing of the rival was written"
        );
        let counts = ledger
            .counts(&conn(), ObjectKind::Contact, NOW)
            .await
            .unwrap();
        assert_eq!(
            LinkStatus::ALL.map(|s| counts[&s]),
            [1, 0, 0, 0],
            "the counts moved with the writes, and not with the refused ones"
        );
    }

    #[tokio::test]
    async fn an_entry_that_never_linked_is_removed_with_its_pointers_and_count() {
        let ledger = Ledger::new(Arc::new(MemoryStore::new()));
        let mut entry = LedgerEntry::new(conn(), ObjectKind::Contact, Provider::Qbo, "2", NOW);
        entry.match_key = Some("held@x.com".into());
        entry.fail(Provider::Qbo, "duplicate_record", "exists", true, NOW);
        ledger
            .commit(vec![ledger.writes(&entry, None).unwrap()])
            .await
            .unwrap();
        let stored = ledger
            .get(&conn(), ObjectKind::Contact, &entry.link, NOW)
            .await
            .unwrap()
            .unwrap();
        let counts = ledger
            .counts(&conn(), ObjectKind::Contact, NOW)
            .await
            .unwrap();
        assert_eq!(counts[&LinkStatus::Failing], 1);
        // Only at the version read.
        let mut stale = stored.clone();
        stale.version += 1;
        assert!(matches!(
            ledger.remove(&stale).await,
            Err(LedgerError::Conflict)
        ));
        ledger.remove(&stored).await.unwrap();
        assert!(ledger
            .get(&conn(), ObjectKind::Contact, &entry.link, NOW)
            .await
            .unwrap()
            .is_none());
        let counts = ledger
            .counts(&conn(), ObjectKind::Contact, NOW)
            .await
            .unwrap();
        assert_eq!(counts[&LinkStatus::Failing], 0);
        assert!(ledger
            .due(&conn(), ObjectKind::Contact, NOW + 99_999, 10)
            .await
            .unwrap()
            .is_empty());
        // Its record and key are free: a new entry claims them.
        let mut again = LedgerEntry::new(conn(), ObjectKind::Contact, Provider::Qbo, "2", NOW);
        again.match_key = Some("held@x.com".into());
        ledger
            .commit(vec![ledger.writes(&again, None).unwrap()])
            .await
            .unwrap();
        assert!(ledger
            .key_holders(&conn(), ObjectKind::Contact, &["held@x.com".into()], NOW)
            .await
            .unwrap()
            .contains_key("held@x.com"));
    }

    #[tokio::test]
    async fn retries_come_due_in_time_order_and_leave_with_the_failure() {
        let ledger = Ledger::new(Arc::new(MemoryStore::new()));
        let mut stored = Vec::new();
        for (id, at) in [("51", 0), ("52", 600)] {
            let mut entry =
                LedgerEntry::new(conn(), ObjectKind::Contact, Provider::HubSpot, id, NOW);
            entry.qbo.id = Some(format!("q{id}"));
            entry.fail(Provider::Qbo, "qbo_unavailable", "busy", true, NOW + at);
            ledger
                .commit(vec![ledger.writes(&entry, None).unwrap()])
                .await
                .unwrap();
            stored.push(
                ledger
                    .get(&conn(), ObjectKind::Contact, &entry.link, NOW)
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        let due = ledger
            .due(&conn(), ObjectKind::Contact, NOW + 60, 10)
            .await
            .unwrap();
        assert_eq!(
            due,
            vec![DueRetry {
                link: "hs:51".into(),
                source: Provider::Qbo,
                id: "q51".into(),
                at: NOW + 60
            }],
            "only what is due, read from the side that failed"
        );
        let later = ledger
            .due(&conn(), ObjectKind::Contact, NOW + 3600, 10)
            .await
            .unwrap();
        assert_eq!(
            later.iter().map(|d| d.link.as_str()).collect::<Vec<_>>(),
            ["hs:51", "hs:52"]
        );

        // Failing again moves the pointer; syncing removes it; a failure for a person has none.
        let mut again = stored[0].entry.clone();
        again.fail(Provider::Qbo, "qbo_unavailable", "busy", true, NOW + 60);
        ledger
            .commit(vec![ledger.writes(&again, Some(&stored[0])).unwrap()])
            .await
            .unwrap();
        let mut synced = stored[1].entry.clone();
        synced.mark_synced();
        ledger
            .commit(vec![ledger.writes(&synced, Some(&stored[1])).unwrap()])
            .await
            .unwrap();
        let due = ledger
            .due(&conn(), ObjectKind::Contact, NOW + 3600, 10)
            .await
            .unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].at, NOW + 60 + 120);
        let stored = ledger
            .get(&conn(), ObjectKind::Contact, "hs:51", NOW)
            .await
            .unwrap()
            .unwrap();
        let mut for_a_person = stored.entry.clone();
        for_a_person.fail(
            Provider::HubSpot,
            "duplicate_display_name",
            "taken",
            false,
            NOW + 200,
        );
        ledger
            .commit(vec![ledger.writes(&for_a_person, Some(&stored)).unwrap()])
            .await
            .unwrap();
        assert!(ledger
            .due(&conn(), ObjectKind::Contact, NOW + 99_999, 10)
            .await
            .unwrap()
            .is_empty());
        // Until a settings change asks for it to be tried again.
        assert_eq!(
            ledger
                .retry_failures(
                    &conn(),
                    ObjectKind::Contact,
                    Some("rate_limited"),
                    NOW + 300
                )
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            ledger
                .retry_failures(
                    &conn(),
                    ObjectKind::Contact,
                    Some("duplicate_display_name"),
                    NOW + 300
                )
                .await
                .unwrap(),
            1
        );
        let due = ledger
            .due(&conn(), ObjectKind::Contact, NOW + 300, 10)
            .await
            .unwrap();
        assert_eq!(
            (due.len(), due[0].source, due[0].id.as_str()),
            (1, Provider::HubSpot, "51")
        );
        // A retry scheduled later is brought forward when asked for.
        let stored = ledger
            .get(&conn(), ObjectKind::Contact, "hs:51", NOW)
            .await
            .unwrap()
            .unwrap();
        let mut later = stored.entry.clone();
        later.fail(Provider::HubSpot, "rate_limited", "busy", true, NOW + 300);
        ledger
            .commit(vec![ledger.writes(&later, Some(&stored)).unwrap()])
            .await
            .unwrap();
        assert!(ledger
            .due(&conn(), ObjectKind::Contact, NOW + 301, 10)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            ledger
                .retry_failures(&conn(), ObjectKind::Contact, None, NOW + 301)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            ledger
                .due(&conn(), ObjectKind::Contact, NOW + 301, 10)
                .await
                .unwrap()
                .len(),
            1
        );
    }
}

//! The storage port: a small key-value model over DynamoDB tables.
//!
//! Every item has a partition key `pk` and sort key `sk`, an optional secondary-index key
//! (`gsi1pk`/`gsi1sk`), an optional expiry (`expires_at`, epoch seconds, the table's TTL
//! attribute), a `version` for compare-and-swap, and a JSON document of domain attributes stored
//! as native DynamoDB attributes. The capabilities are the ones the integration's rules need:
//! claims (no duplicates), leases (single-flight token refresh), compare-and-swap (no lost
//! updates), index queries and batch writes.

pub mod dynamodb;
pub mod keys;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;

use async_trait::async_trait;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{Map, Value};

use crate::config::Tables;
use crate::error_class::ErrorClass;

/// Attribute and index names shared by the adapter and the infrastructure template.
pub mod schema {
    pub const PK: &str = "pk";
    pub const SK: &str = "sk";
    pub const GSI1: &str = "gsi1";
    pub const GSI1_PK: &str = "gsi1pk";
    pub const GSI1_SK: &str = "gsi1sk";
    pub const VERSION: &str = "version";
    pub const EXPIRES_AT: &str = "expires_at";
    pub const LEASE_OWNER: &str = "lease_owner";
    pub const LEASE_UNTIL_MS: &str = "lease_until_ms";
    /// Names the adapter manages; a document may not use them.
    pub const RESERVED: [&str; 8] = [
        PK,
        SK,
        GSI1_PK,
        GSI1_SK,
        VERSION,
        EXPIRES_AT,
        LEASE_OWNER,
        LEASE_UNTIL_MS,
    ];
}

/// Which table an operation addresses; names come from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Connections,
    Ledger,
    ActionRuns,
}

impl Table {
    pub fn name(self, tables: &Tables) -> &str {
        match self {
            Table::Connections => &tables.connections,
            Table::Ledger => &tables.ledger,
            Table::ActionRuns => &tables.action_runs,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemKey {
    pub pk: String,
    pub sk: String,
}

impl ItemKey {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
        }
    }

    /// Where the lease on this item is kept.
    pub fn lease_key(&self) -> ItemKey {
        ItemKey {
            pk: self.pk.clone(),
            sk: format!("{LEASE_SORT_PREFIX}{}", self.sk),
        }
    }
}

/// DynamoDB's limit on the writes of one transaction.
pub const MAX_TRANSACTION_WRITES: usize = 100;

/// Refuses transactions DynamoDB would refuse, saying why.
pub(crate) fn check_transaction(writes: &[TransactWrite]) -> Result<(), StoreError> {
    if writes.is_empty() || writes.len() > MAX_TRANSACTION_WRITES {
        return Err(StoreError::Rejected(format!(
            "a transaction takes 1 to {MAX_TRANSACTION_WRITES} writes, not {}",
            writes.len()
        )));
    }
    let mut keys = std::collections::HashSet::new();
    for write in writes {
        if !keys.insert((write.table(), write.key().clone())) {
            return Err(StoreError::Rejected(format!(
                "a transaction writes {:?} twice",
                write.key()
            )));
        }
        if let TransactWrite::PutVersioned { item, .. } | TransactWrite::Put { item, .. } = write {
            check_document(&item.doc)?;
        }
    }
    Ok(())
}

/// Sort-key prefix of lease items.
pub const LEASE_SORT_PREFIX: &str = "lease#";

/// The secondary-index key of an item (index `gsi1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexKey {
    pub pk: String,
    pub sk: String,
}

pub type Document = Map<String, Value>;

/// One stored item.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub key: ItemKey,
    pub index: Option<IndexKey>,
    /// Epoch seconds after which the item counts as gone (DynamoDB TTL deletes it later).
    pub expires_at: Option<i64>,
    /// Incremented by every versioned write; 0 for items written without one.
    pub version: u64,
    pub doc: Document,
}

impl Item {
    pub fn new(key: ItemKey, doc: Document) -> Self {
        Self {
            key,
            index: None,
            expires_at: None,
            version: 0,
            doc,
        }
    }

    /// An item whose document is `value` serialized (it must serialize to a JSON object).
    pub fn from_value<T: Serialize>(key: ItemKey, value: &T) -> Result<Self, StoreError> {
        match serde_json::to_value(value).map_err(|e| StoreError::Encoding(e.to_string()))? {
            Value::Object(doc) => Ok(Self::new(key, doc)),
            other => Err(StoreError::Encoding(format!(
                "expected a JSON object, got {other}"
            ))),
        }
    }

    pub fn with_index(mut self, pk: impl Into<String>, sk: impl Into<String>) -> Self {
        self.index = Some(IndexKey {
            pk: pk.into(),
            sk: sk.into(),
        });
        self
    }

    pub fn expiring_at(mut self, epoch_seconds: i64) -> Self {
        self.expires_at = Some(epoch_seconds);
        self
    }

    /// The document read back as a domain type.
    pub fn to_value<T: DeserializeOwned>(&self) -> Result<T, StoreError> {
        serde_json::from_value(Value::Object(self.doc.clone()))
            .map_err(|e| StoreError::Encoding(format!("item {:?}: {e}", self.key)))
    }

    pub(crate) fn is_expired(&self, now_epoch_seconds: i64) -> bool {
        self.expires_at.is_some_and(|at| at <= now_epoch_seconds)
    }
}

/// Result of a conditional create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    Claimed,
    /// Another writer created the item first: the caller must not do the claimed work.
    AlreadyClaimed,
}

/// Result of a compare-and-swap write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasOutcome {
    Written {
        version: u64,
    },
    /// The stored version was not the expected one: re-read and decide again.
    VersionConflict,
}

/// One write of a transaction (see [`Store::transact`]).
#[derive(Debug, Clone, PartialEq)]
pub enum TransactWrite {
    /// Writes `item` only if the stored version is `expected` (`None`: only if absent); the
    /// written item carries version `expected + 1`.
    PutVersioned {
        table: Table,
        item: Item,
        expected: Option<u64>,
    },
    /// Writes `item` whatever is stored (its version as given).
    Put { table: Table, item: Item },
    /// Deletes the item whatever is stored.
    Delete { table: Table, key: ItemKey },
    /// Deletes the item only if the stored version is `expected`.
    DeleteVersioned {
        table: Table,
        key: ItemKey,
        expected: u64,
    },
    /// Writes nothing, but the transaction goes through only if the item is stored at `expected`
    /// (`None`: only if absent).
    Check {
        table: Table,
        key: ItemKey,
        expected: Option<u64>,
    },
    /// Adds to numeric attributes of the item (each created at 0, the item too): counters kept
    /// in step with the writes beside them.
    Add {
        table: Table,
        key: ItemKey,
        deltas: Vec<(String, i64)>,
    },
}

impl TransactWrite {
    pub fn key(&self) -> &ItemKey {
        match self {
            TransactWrite::PutVersioned { item, .. } | TransactWrite::Put { item, .. } => &item.key,
            TransactWrite::Delete { key, .. }
            | TransactWrite::DeleteVersioned { key, .. }
            | TransactWrite::Check { key, .. }
            | TransactWrite::Add { key, .. } => key,
        }
    }

    pub fn table(&self) -> Table {
        match self {
            TransactWrite::PutVersioned { table, .. }
            | TransactWrite::Put { table, .. }
            | TransactWrite::Delete { table, .. }
            | TransactWrite::DeleteVersioned { table, .. }
            | TransactWrite::Check { table, .. }
            | TransactWrite::Add { table, .. } => *table,
        }
    }
}

/// Result of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactOutcome {
    /// Every write was made.
    Written,
    /// The condition of the write at `index` failed: nothing was written.
    Conflict { index: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub until_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    Acquired(Lease),
    /// A live lease belongs to someone else.
    Held(Lease),
}

/// One page of a query; pass `next` back to continue.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Item>,
    pub next: Option<ItemKeyCursor>,
}

/// Opaque continuation of a query (DynamoDB's `LastEvaluatedKey`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemKeyCursor(pub(crate) Vec<(String, String)>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Partition to read: the table's `pk`, or the index's `gsi1pk` when `on_index`.
    pub partition: String,
    /// Only sort keys starting with this.
    pub sort_prefix: Option<String>,
    /// Only sort keys from the first to the second, both included (with `sort_prefix`, both
    /// must start with it).
    pub sort_between: Option<(String, String)>,
    pub on_index: bool,
    pub limit: Option<u32>,
    pub after: Option<ItemKeyCursor>,
}

impl Query {
    pub fn partition(pk: impl Into<String>) -> Self {
        Self {
            partition: pk.into(),
            sort_prefix: None,
            sort_between: None,
            on_index: false,
            limit: None,
            after: None,
        }
    }

    pub fn index(gsi1pk: impl Into<String>) -> Self {
        Self {
            on_index: true,
            ..Self::partition(gsi1pk)
        }
    }

    pub fn sort_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.sort_prefix = Some(prefix.into());
        self
    }

    pub fn sort_between(mut self, low: impl Into<String>, high: impl Into<String>) -> Self {
        self.sort_between = Some((low.into(), high.into()));
        self
    }

    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    pub fn after(mut self, cursor: Option<ItemKeyCursor>) -> Self {
        self.after = cursor;
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("throttled by the store: {0}")]
    Throttled(String),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("{0} items stayed unprocessed after retries")]
    Unprocessed(usize),
    #[error("could not encode or decode an item: {0}")]
    Encoding(String),
    #[error("store rejected the request: {0}")]
    Rejected(String),
}

impl StoreError {
    pub fn class(&self) -> ErrorClass {
        match self {
            StoreError::Throttled(_) | StoreError::Unavailable(_) | StoreError::Unprocessed(_) => {
                ErrorClass::Retryable
            }
            StoreError::Encoding(_) | StoreError::Rejected(_) => ErrorClass::Terminal,
        }
    }
}

/// The storage port. Adapters: [`dynamodb::DynamoStore`] and, for unit tests of pure logic,
/// [`memory::MemoryStore`]. `now_*` arguments come from the caller so expiry is testable.
#[async_trait]
pub trait Store: Send + Sync {
    /// Reads many items at once (any number; absent and expired ones are left out).
    async fn get_many(
        &self,
        table: Table,
        keys: &[ItemKey],
        now_epoch_seconds: i64,
    ) -> Result<Vec<Item>, StoreError>;

    /// Reads one item; items past their expiry read as absent.
    async fn get(
        &self,
        table: Table,
        key: &ItemKey,
        now_epoch_seconds: i64,
    ) -> Result<Option<Item>, StoreError>;

    /// Unconditional write (the item's version is stored as given).
    async fn put(&self, table: Table, item: Item) -> Result<(), StoreError>;

    /// Creates the item only if no item with its key exists (or the existing one has expired).
    async fn claim(
        &self,
        table: Table,
        item: Item,
        now_epoch_seconds: i64,
    ) -> Result<ClaimOutcome, StoreError>;

    /// Writes the item only if the stored version equals `expected` (`None`: only if absent).
    /// The written item carries version `expected + 1` (1 when created).
    async fn put_versioned(
        &self,
        table: Table,
        item: Item,
        expected: Option<u64>,
    ) -> Result<CasOutcome, StoreError>;

    /// Takes the lease on `key` for `owner` unless someone else holds a live one. The lease is kept
    /// beside the item (sort key `lease#<sk>`), so writes of the item never disturb it and the
    /// item need not exist. Re-acquiring one's own lease extends it.
    async fn acquire_lease(
        &self,
        table: Table,
        key: &ItemKey,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<LeaseOutcome, StoreError>;

    /// Gives the lease back if `owner` still holds it; returns whether it did.
    async fn release_lease(
        &self,
        table: Table,
        key: &ItemKey,
        owner: &str,
    ) -> Result<bool, StoreError>;

    async fn delete(&self, table: Table, key: &ItemKey) -> Result<(), StoreError>;

    /// Deletes the item only if its stored version is `expected`.
    async fn delete_versioned(
        &self,
        table: Table,
        key: &ItemKey,
        expected: u64,
    ) -> Result<CasOutcome, StoreError>;

    /// Makes every write or none (at most [`MAX_TRANSACTION_WRITES`], distinct keys). A failed
    /// condition is an outcome, not an error: it names the write, and nothing was written.
    async fn transact(&self, writes: Vec<TransactWrite>) -> Result<TransactOutcome, StoreError>;

    /// Adds `by` to the item's numeric attribute `attribute` (created at 0) and returns the new
    /// value; atomic under concurrency. `expires_at` (epoch seconds) is set on the item.
    async fn increment(
        &self,
        table: Table,
        key: &ItemKey,
        attribute: &str,
        by: i64,
        expires_at: Option<i64>,
    ) -> Result<i64, StoreError>;

    /// Deletes the item and returns it, atomically: of concurrent takers exactly one gets it
    /// (single-use tokens). An expired item is deleted and reads as absent.
    async fn take(
        &self,
        table: Table,
        key: &ItemKey,
        now_epoch_seconds: i64,
    ) -> Result<Option<Item>, StoreError>;

    /// Items of one partition (or index partition) in sort-key order; expired items are left out.
    async fn query(
        &self,
        table: Table,
        query: Query,
        now_epoch_seconds: i64,
    ) -> Result<Page, StoreError>;

    /// Writes many items, retrying those the store leaves unprocessed.
    async fn batch_put(&self, table: Table, items: Vec<Item>) -> Result<(), StoreError>;

    /// Every item a query matches, all pages read.
    async fn query_all(
        &self,
        table: Table,
        query: Query,
        now_epoch_seconds: i64,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut next = query;
        loop {
            let page = self.query(table, next.clone(), now_epoch_seconds).await?;
            items.extend(page.items);
            match page.next {
                Some(cursor) => next.after = Some(cursor),
                None => return Ok(items),
            }
        }
    }
}

pub(crate) fn check_document(doc: &Document) -> Result<(), StoreError> {
    match schema::RESERVED
        .iter()
        .find(|name| doc.contains_key(**name))
    {
        Some(name) => Err(StoreError::Encoding(format!(
            "document uses the reserved attribute {name:?}"
        ))),
        None => Ok(()),
    }
}

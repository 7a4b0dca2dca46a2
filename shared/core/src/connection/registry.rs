//! The connection records: one per (HubSpot portal, QuickBooks company) pair.
//!
//! Items in the connections table:
//! - `connection#{id}` / `connection`: the record; indexed by status (`connections#{status}`), so
//!   the poller lists only active connections;
//! - `realm#{realm}` / `owner`: which connection holds a QuickBooks company (a company belongs to
//!   one connection at a time; the claim is a conditional write);
//! - `portal#{portal}` / `connection#{id}`: the portal's connections ("which QuickBooks account").

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::domain::{ConnectionId, PortalId, Provider, RealmId};
use crate::qbo::company::{CompanyProfile, PreflightWarning};
use crate::store::keys::connections as keys;
use crate::store::{
    CasOutcome, Item, Query, Store, StoreError, Table, TransactOutcome, TransactWrite,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// Syncing and serving actions.
    Active,
    /// A provider refused our refresh token: polling stops until someone reconnects.
    ReconnectRequired,
    /// Tokens revoked and deleted; the ledger and settings are kept until the connection is
    /// deleted.
    Disconnected,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Active => "active",
            ConnectionStatus::ReconnectRequired => "reconnect_required",
            ConnectionStatus::Disconnected => "disconnected",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub id: ConnectionId,
    pub portal_id: PortalId,
    pub realm_id: RealmId,
    pub status: ConnectionStatus,
    /// Which provider must be reconnected, when `status` says so.
    pub reconnect_provider: Option<Provider>,
    pub company_name: String,
    /// First connected (epoch seconds); the settings' setup day comes from it.
    pub connected_at: i64,
    pub updated_at: i64,
    pub disconnected_at: Option<i64>,
    /// When the initial sync was queued; `None` until the queue accepted it.
    pub initial_sync_requested_at: Option<i64>,
    /// The install function's address the connection was last made through: where its
    /// reconnect link points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_url: Option<String>,
}

/// What was learnt about the company when it was connected (C2, C3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preflight {
    pub checked_at: i64,
    pub company: CompanyProfile,
    pub warnings: Vec<PreflightWarning>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RealmOwner {
    connection_id: ConnectionId,
    portal_id: PortalId,
}

/// A portal's view of one of its connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalConnection {
    pub connection_id: ConnectionId,
    pub realm_id: RealmId,
    pub company_name: String,
    pub status: ConnectionStatus,
}

/// A record as read, with the version a compare-and-swap write must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("this QuickBooks company is already connected to HubSpot portal {portal}")]
    RealmTaken { portal: PortalId },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How many times a compare-and-swap update re-reads after losing a race before it gives up
/// (retryably): a record contended this hard is being written in a loop by something else.
const UPDATE_ATTEMPTS: usize = 8;

pub struct Connections {
    store: Arc<dyn Store>,
}

fn status_index(status: ConnectionStatus) -> String {
    keys::status_index(status.as_str())
}

fn lost_races(what: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "{what} kept changing under concurrent writers; try again"
    ))
}

impl Connections {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    pub async fn get(&self, id: &ConnectionId, now: i64) -> Result<Option<Connection>, StoreError> {
        Ok(self.get_versioned(id, now).await?.map(|v| v.value))
    }

    pub async fn get_versioned(
        &self,
        id: &ConnectionId,
        now: i64,
    ) -> Result<Option<Versioned<Connection>>, StoreError> {
        match self
            .store
            .get(Table::Connections, &keys::record(id), now)
            .await?
        {
            Some(item) => Ok(Some(Versioned {
                value: item.to_value()?,
                version: item.version,
            })),
            None => Ok(None),
        }
    }

    async fn owner(
        &self,
        realm: &RealmId,
        now: i64,
    ) -> Result<Option<Versioned<RealmOwner>>, StoreError> {
        match self
            .store
            .get(Table::Connections, &keys::realm_owner(realm), now)
            .await?
        {
            Some(item) => Ok(Some(Versioned {
                value: item.to_value()?,
                version: item.version,
            })),
            None => Ok(None),
        }
    }

    /// The connection holding `realm`, if any.
    pub async fn owner_of(
        &self,
        realm: &RealmId,
        now: i64,
    ) -> Result<Option<ConnectionId>, StoreError> {
        Ok(self
            .owner(realm, now)
            .await?
            .map(|owner| owner.value.connection_id))
    }

    /// The writes that store `connection` (read at `expected`, `None` for a new one) with its
    /// portal entry, for one transaction.
    pub fn save_writes(
        &self,
        connection: &Connection,
        expected: Option<u64>,
    ) -> Result<Vec<TransactWrite>, StoreError> {
        let record = Item::from_value(keys::record(&connection.id), connection)?
            .with_index(status_index(connection.status), connection.id.as_str());
        let entry = PortalConnection {
            connection_id: connection.id.clone(),
            realm_id: connection.realm_id.clone(),
            company_name: connection.company_name.clone(),
            status: connection.status,
        };
        let entry = Item::from_value(
            keys::portal_entry(&connection.portal_id, &connection.id),
            &entry,
        )?;
        Ok(vec![
            TransactWrite::PutVersioned {
                table: Table::Connections,
                item: record,
                expected,
            },
            TransactWrite::Put {
                table: Table::Connections,
                item: entry,
            },
        ])
    }

    /// The writes that make `connection` the holder of its company and store it, for one
    /// transaction with the rest of a connect: the company claim (or a check that it is still
    /// ours), the record (compare-and-swap on `expected`) and the portal entry.
    pub async fn connect_writes(
        &self,
        connection: &Connection,
        expected: Option<u64>,
        now: i64,
    ) -> Result<Vec<TransactWrite>, RegistryError> {
        let key = keys::realm_owner(&connection.realm_id);
        let claim = match self.owner(&connection.realm_id, now).await? {
            Some(owner) if owner.value.connection_id != connection.id => {
                return Err(RegistryError::RealmTaken {
                    portal: owner.value.portal_id,
                })
            }
            Some(owner) => TransactWrite::Check {
                table: Table::Connections,
                key,
                expected: Some(owner.version),
            },
            None => TransactWrite::PutVersioned {
                table: Table::Connections,
                item: Item::from_value(
                    key,
                    &RealmOwner {
                        connection_id: connection.id.clone(),
                        portal_id: connection.portal_id.clone(),
                    },
                )?,
                expected: None,
            },
        };
        let mut writes = vec![claim];
        writes.extend(self.save_writes(connection, expected)?);
        Ok(writes)
    }

    /// Stores the record read at `expected` (`None`: a new one) and its portal entry, together.
    pub async fn save(
        &self,
        connection: &Connection,
        expected: Option<u64>,
    ) -> Result<CasOutcome, StoreError> {
        match self
            .store
            .transact(self.save_writes(connection, expected)?)
            .await?
        {
            TransactOutcome::Written => Ok(CasOutcome::Written {
                version: expected.map_or(1, |v| v + 1),
            }),
            TransactOutcome::Conflict { .. } => Ok(CasOutcome::VersionConflict),
        }
    }

    /// Changes the record with `change` under compare-and-swap, reading again whenever another
    /// writer got there first, so that no writer's change is lost. `change` answers whether it
    /// changed anything; `guard` is written along (a check on another item) and when its
    /// condition fails the record is left as it is. Returns the record as it now stands (`None`:
    /// no such connection).
    pub async fn update(
        &self,
        id: &ConnectionId,
        now: i64,
        guard: Option<TransactWrite>,
        mut change: impl FnMut(&mut Connection) -> bool + Send,
    ) -> Result<Option<Connection>, StoreError> {
        for _ in 0..UPDATE_ATTEMPTS {
            let Some(Versioned {
                value: mut connection,
                version,
            }) = self.get_versioned(id, now).await?
            else {
                return Ok(None);
            };
            if !change(&mut connection) {
                return Ok(Some(connection));
            }
            let mut writes = self.save_writes(&connection, Some(version))?;
            let guarded = guard.is_some();
            writes.extend(guard.clone());
            match self.store.transact(writes).await? {
                TransactOutcome::Written => return Ok(Some(connection)),
                // The guard is the last write: the item it watches changed, so the reason for
                // this change is gone.
                TransactOutcome::Conflict { index } if guarded && index == 2 => {
                    return self.get(id, now).await
                }
                TransactOutcome::Conflict { .. } => continue,
            }
        }
        Err(lost_races("the connection record"))
    }

    /// Lets the company be connected elsewhere (after a disconnect): the claim is deleted only if
    /// it is still this connection's.
    pub async fn release_realm(&self, connection: &Connection, now: i64) -> Result<(), StoreError> {
        for _ in 0..UPDATE_ATTEMPTS {
            match self.owner(&connection.realm_id, now).await? {
                Some(owner) if owner.value.connection_id == connection.id => {
                    let key = keys::realm_owner(&connection.realm_id);
                    match self
                        .store
                        .delete_versioned(Table::Connections, &key, owner.version)
                        .await?
                    {
                        CasOutcome::Written { .. } => return Ok(()),
                        CasOutcome::VersionConflict => continue,
                    }
                }
                _ => return Ok(()),
            }
        }
        Err(lost_races("the company claim"))
    }

    /// The write that stores the pre-flight record, for the connect transaction.
    pub fn preflight_write(
        &self,
        id: &ConnectionId,
        preflight: &Preflight,
    ) -> Result<TransactWrite, StoreError> {
        Ok(TransactWrite::Put {
            table: Table::Connections,
            item: Item::from_value(keys::preflight(id), preflight)?,
        })
    }

    pub async fn preflight(
        &self,
        id: &ConnectionId,
        now: i64,
    ) -> Result<Option<Preflight>, StoreError> {
        match self
            .store
            .get(Table::Connections, &keys::preflight(id), now)
            .await?
        {
            Some(item) => Ok(Some(item.to_value()?)),
            None => Ok(None),
        }
    }

    /// Every connection in `status` (the poller asks for the active ones).
    pub async fn with_status(
        &self,
        status: ConnectionStatus,
        now: i64,
    ) -> Result<Vec<Connection>, StoreError> {
        self.store
            .query_all(Table::Connections, Query::index(status_index(status)), now)
            .await?
            .iter()
            .map(Item::to_value)
            .collect()
    }

    /// The portal's connections, in any status.
    pub async fn of_portal(
        &self,
        portal: &PortalId,
        now: i64,
    ) -> Result<Vec<PortalConnection>, StoreError> {
        let query =
            Query::partition(keys::portal_partition(portal)).sort_prefix(keys::PORTAL_ENTRY_PREFIX);
        self.store
            .query_all(Table::Connections, query, now)
            .await?
            .iter()
            .map(Item::to_value)
            .collect()
    }

    /// Marks an active connection as needing a reconnect of `provider` (its polling stops), but
    /// only while `tokens_unchanged` holds: the refusal that prompted this must still be what is
    /// stored, so a reconnect that landed in between is never undone.
    pub async fn require_reconnect(
        &self,
        id: &ConnectionId,
        provider: Provider,
        tokens_unchanged: Option<TransactWrite>,
        now: i64,
    ) -> Result<Option<Connection>, StoreError> {
        self.update(id, now, tokens_unchanged, |connection| {
            if connection.status != ConnectionStatus::Active {
                return false;
            }
            connection.status = ConnectionStatus::ReconnectRequired;
            connection.reconnect_provider = Some(provider);
            connection.updated_at = now;
            true
        })
        .await
    }

    /// After `provider`'s tokens of the portal were renewed: every connection of the portal that
    /// waited for exactly that reconnect is active again. Returns those connections.
    pub async fn reactivate(
        &self,
        portal: &PortalId,
        provider: Provider,
        now: i64,
    ) -> Result<Vec<ConnectionId>, StoreError> {
        let mut reactivated = Vec::new();
        for entry in self.of_portal(portal, now).await? {
            if entry.status != ConnectionStatus::ReconnectRequired {
                continue;
            }
            let mut changed = false;
            self.update(&entry.connection_id, now, None, |connection| {
                changed = connection.status == ConnectionStatus::ReconnectRequired
                    && connection.reconnect_provider == Some(provider);
                if changed {
                    connection.status = ConnectionStatus::Active;
                    connection.reconnect_provider = None;
                    connection.updated_at = now;
                }
                changed
            })
            .await?;
            if changed {
                reactivated.push(entry.connection_id);
            }
        }
        Ok(reactivated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use crate::store::ItemKey;

    const NOW: i64 = 1_900_000_000;

    fn connection(portal: &str, realm: &str) -> Connection {
        let portal = PortalId::parse(portal).unwrap();
        let realm = RealmId::parse(realm).unwrap();
        Connection {
            id: ConnectionId::for_pair(&portal, &realm),
            portal_id: portal,
            realm_id: realm,
            status: ConnectionStatus::Active,
            reconnect_provider: None,
            company_name: "Acme".into(),
            connected_at: NOW,
            updated_at: NOW,
            disconnected_at: None,
            initial_sync_requested_at: None,
            install_url: None,
        }
    }

    #[test]
    fn the_pair_makes_the_id() {
        let a = connection("62515", "9130350000000001");
        assert_eq!(a.id.as_str(), "62515-9130350000000001");
        assert_eq!(a.id, connection("62515", "9130350000000001").id);
        assert_ne!(a.id, connection("62516", "9130350000000001").id);
    }

    async fn connect(connections: &Connections, connection: &Connection) -> TransactOutcome {
        let writes = connections
            .connect_writes(connection, None, NOW)
            .await
            .unwrap();
        connections.store.transact(writes).await.unwrap()
    }

    #[tokio::test]
    async fn a_company_belongs_to_one_connection() {
        let connections = Connections::new(Arc::new(MemoryStore::new()));
        let first = connection("62515", "9130350000000001");
        let second = connection("62516", "9130350000000001");
        assert_eq!(
            connect(&connections, &first).await,
            TransactOutcome::Written
        );
        let taken = connections
            .connect_writes(&second, None, NOW)
            .await
            .unwrap_err();
        assert!(
            matches!(&taken, RegistryError::RealmTaken { portal } if portal.as_str() == "62515"),
            "{taken}"
        );
        // Renewing the holder checks the claim instead of writing it again.
        let renewal = connections
            .connect_writes(&first, Some(1), NOW)
            .await
            .unwrap();
        assert!(matches!(renewal[0], TransactWrite::Check { .. }));
        connections.release_realm(&second, NOW).await.unwrap();
        assert_eq!(
            connections.owner_of(&first.realm_id, NOW).await.unwrap(),
            Some(first.id.clone()),
            "only the holder releases"
        );
        connections.release_realm(&first, NOW).await.unwrap();
        assert_eq!(
            connections.owner_of(&first.realm_id, NOW).await.unwrap(),
            None
        );
        let mut second_new = second.clone();
        second_new.company_name = "Acme again".into();
        assert_eq!(
            connect(&connections, &second_new).await,
            TransactOutcome::Written
        );
    }

    #[tokio::test]
    async fn a_claim_made_between_read_and_write_cancels_the_connect() {
        let connections = Connections::new(Arc::new(MemoryStore::new()));
        let mine = connection("62515", "9130350000000001");
        let theirs = connection("62516", "9130350000000001");
        let my_writes = connections.connect_writes(&mine, None, NOW).await.unwrap();
        assert_eq!(
            connect(&connections, &theirs).await,
            TransactOutcome::Written
        );
        assert_eq!(
            connections.store.transact(my_writes).await.unwrap(),
            TransactOutcome::Conflict { index: 0 }
        );
        assert_eq!(
            connections.get(&mine.id, NOW).await.unwrap(),
            None,
            "no record without the claim"
        );
    }

    #[tokio::test]
    async fn writers_that_read_the_same_version_cannot_both_write() {
        let connections = Connections::new(Arc::new(MemoryStore::new()));
        let record = connection("62515", "9130350000000001");
        assert_eq!(
            connections.save(&record, None).await.unwrap(),
            CasOutcome::Written { version: 1 }
        );
        let mut a = record.clone();
        a.company_name = "A".into();
        let mut b = record.clone();
        b.company_name = "B".into();
        assert_eq!(
            connections.save(&a, Some(1)).await.unwrap(),
            CasOutcome::Written { version: 2 }
        );
        assert_eq!(
            connections.save(&b, Some(1)).await.unwrap(),
            CasOutcome::VersionConflict
        );
        assert_eq!(
            connections.save(&record, None).await.unwrap(),
            CasOutcome::VersionConflict,
            "a second create loses too"
        );
        let stored = connections.get(&record.id, NOW).await.unwrap().unwrap();
        assert_eq!(stored.company_name, "A");
        let portal = connections.of_portal(&record.portal_id, NOW).await.unwrap();
        assert_eq!(portal[0].company_name, "A", "the entry follows the record");
    }

    #[tokio::test]
    async fn an_update_that_loses_a_race_reads_again_and_keeps_both_changes() {
        let store = Arc::new(MemoryStore::new());
        let connections = Connections::new(store.clone());
        let other = Connections::new(store);
        let record = connection("62515", "9130350000000001");
        connections.save(&record, None).await.unwrap();
        let mut calls = 0;
        let updated = connections
            .update(&record.id, NOW, None, |connection| {
                calls += 1;
                if calls == 1 {
                    // Another writer renames the company between our read and our write.
                    let mut renamed = record.clone();
                    renamed.company_name = "Renamed".into();
                    let writes = other.save_writes(&renamed, Some(1)).unwrap();
                    futures::executor::block_on(other.store.transact(writes)).unwrap();
                }
                connection.status = ConnectionStatus::Disconnected;
                true
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(calls, 2, "read again after losing");
        assert_eq!(
            (updated.company_name.as_str(), updated.status),
            ("Renamed", ConnectionStatus::Disconnected)
        );
        let stored = connections.get(&record.id, NOW).await.unwrap().unwrap();
        assert_eq!(stored, updated);
    }

    #[tokio::test]
    async fn a_reconnect_requirement_needs_the_refusal_to_still_stand() {
        let store = Arc::new(MemoryStore::new());
        let connections = Connections::new(store.clone());
        let record = connection("62515", "9130350000000001");
        connections.save(&record, None).await.unwrap();
        let tokens = ItemKey::new("tokens#qbo#9130350000000001", "tokens");
        store
            .put_versioned(
                Table::Connections,
                Item::new(tokens.clone(), Default::default()),
                None,
            )
            .await
            .unwrap();
        // The refusal was seen at version 1, but a reconnect stored new tokens (version 2).
        store
            .put_versioned(
                Table::Connections,
                Item::new(tokens.clone(), Default::default()),
                Some(1),
            )
            .await
            .unwrap();
        let guard = |version| TransactWrite::Check {
            table: Table::Connections,
            key: tokens.clone(),
            expected: Some(version),
        };
        let kept = connections
            .require_reconnect(&record.id, Provider::Qbo, Some(guard(1)), NOW)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kept.status, ConnectionStatus::Active);
        let blocked = connections
            .require_reconnect(&record.id, Provider::Qbo, Some(guard(2)), NOW)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(blocked.status, ConnectionStatus::ReconnectRequired);
        assert_eq!(
            connections
                .get(&record.id, NOW)
                .await
                .unwrap()
                .unwrap()
                .status,
            ConnectionStatus::ReconnectRequired
        );
    }

    #[tokio::test]
    async fn a_renewed_portal_reactivates_what_its_refusal_blocked() {
        let connections = Connections::new(Arc::new(MemoryStore::new()));
        let by_hubspot = connection("62515", "9130350000000001");
        let by_qbo = connection("62515", "9130350000000002");
        let active = connection("62515", "9130350000000003");
        let elsewhere = connection("62516", "9130350000000004");
        for record in [&by_hubspot, &by_qbo, &active, &elsewhere] {
            connections.save(record, None).await.unwrap();
        }
        for (record, provider) in [
            (&by_hubspot, Provider::HubSpot),
            (&by_qbo, Provider::Qbo),
            (&elsewhere, Provider::HubSpot),
        ] {
            connections
                .require_reconnect(&record.id, provider, None, NOW)
                .await
                .unwrap();
        }
        let back = connections
            .reactivate(&by_hubspot.portal_id, Provider::HubSpot, NOW + 1)
            .await
            .unwrap();
        assert_eq!(back, vec![by_hubspot.id.clone()]);
        let status = |c: Option<Connection>| c.map(|c| c.status);
        for (record, expected) in [
            (&by_hubspot, ConnectionStatus::Active),
            (&by_qbo, ConnectionStatus::ReconnectRequired),
            (&active, ConnectionStatus::Active),
            (&elsewhere, ConnectionStatus::ReconnectRequired),
        ] {
            assert_eq!(
                status(connections.get(&record.id, NOW).await.unwrap()),
                Some(expected),
                "{}",
                record.id
            );
        }
    }

    #[tokio::test]
    async fn records_are_listed_by_status_and_portal() {
        let connections = Connections::new(Arc::new(MemoryStore::new()));
        let a = connection("62515", "9130350000000001");
        let b = connection("62515", "9130350000000002");
        let c = connection("62516", "9130350000000003");
        for record in [&a, &b, &c] {
            connections.save(record, None).await.unwrap();
        }
        connections
            .require_reconnect(&b.id, Provider::Qbo, None, NOW + 5)
            .await
            .unwrap();
        let active: Vec<_> = connections
            .with_status(ConnectionStatus::Active, NOW)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(active, vec![a.id.clone(), c.id.clone()]);
        let blocked = connections
            .with_status(ConnectionStatus::ReconnectRequired, NOW)
            .await
            .unwrap();
        assert_eq!(blocked.len(), 1);
        assert_eq!(blocked[0].reconnect_provider, Some(Provider::Qbo));
        let portal = connections.of_portal(&a.portal_id, NOW).await.unwrap();
        assert_eq!(portal.len(), 2);
        assert_eq!(portal[1].status, ConnectionStatus::ReconnectRequired);
    }
}

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

use super::company::{CompanyProfile, PreflightWarning};
use crate::domain::{ConnectionId, PortalId, Provider, RealmId};
use crate::store::keys::connections as keys;
use crate::store::{ClaimOutcome, Item, Query, Store, StoreError, Table};

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

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("this QuickBooks company is already connected to HubSpot portal {portal}")]
    RealmTaken { portal: PortalId },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Connections {
    store: Arc<dyn Store>,
}

fn status_index(status: ConnectionStatus) -> String {
    keys::status_index(status.as_str())
}

impl Connections {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    pub async fn get(&self, id: &ConnectionId, now: i64) -> Result<Option<Connection>, StoreError> {
        match self
            .store
            .get(Table::Connections, &keys::record(id), now)
            .await?
        {
            Some(item) => Ok(Some(item.to_value()?)),
            None => Ok(None),
        }
    }

    /// The connection holding `realm`, if any.
    pub async fn owner_of(
        &self,
        realm: &RealmId,
        now: i64,
    ) -> Result<Option<ConnectionId>, StoreError> {
        match self
            .store
            .get(Table::Connections, &keys::realm_owner(realm), now)
            .await?
        {
            Some(item) => Ok(Some(item.to_value::<RealmOwner>()?.connection_id)),
            None => Ok(None),
        }
    }

    /// Makes `connection` the holder of its company, unless another connection holds it.
    pub async fn claim_realm(
        &self,
        connection: &Connection,
        now: i64,
    ) -> Result<(), RegistryError> {
        let owner = RealmOwner {
            connection_id: connection.id.clone(),
            portal_id: connection.portal_id.clone(),
        };
        let item = Item::from_value(keys::realm_owner(&connection.realm_id), &owner)?;
        match self.store.claim(Table::Connections, item, now).await? {
            ClaimOutcome::Claimed => Ok(()),
            ClaimOutcome::AlreadyClaimed => {
                let existing = self
                    .store
                    .get(
                        Table::Connections,
                        &keys::realm_owner(&connection.realm_id),
                        now,
                    )
                    .await?;
                match existing
                    .map(|item| item.to_value::<RealmOwner>())
                    .transpose()?
                {
                    Some(owner) if owner.connection_id != connection.id => {
                        Err(RegistryError::RealmTaken {
                            portal: owner.portal_id,
                        })
                    }
                    // Ours already, or released in between: claim again.
                    Some(_) => Ok(()),
                    None => Box::pin(self.claim_realm(connection, now)).await,
                }
            }
        }
    }

    /// Lets the company be connected elsewhere (after a disconnect).
    pub async fn release_realm(&self, connection: &Connection, now: i64) -> Result<(), StoreError> {
        if self.owner_of(&connection.realm_id, now).await?.as_ref() == Some(&connection.id) {
            self.store
                .delete(Table::Connections, &keys::realm_owner(&connection.realm_id))
                .await?;
        }
        Ok(())
    }

    /// Writes the record and the portal's entry for it.
    pub async fn save(&self, connection: &Connection) -> Result<(), StoreError> {
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
        self.store
            .batch_put(Table::Connections, vec![record, entry])
            .await
    }

    pub async fn save_preflight(
        &self,
        id: &ConnectionId,
        preflight: &Preflight,
    ) -> Result<(), StoreError> {
        self.store
            .put(
                Table::Connections,
                Item::from_value(keys::preflight(id), preflight)?,
            )
            .await
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

    /// Marks the connection as needing a reconnect of `provider` (its polling stops).
    pub async fn require_reconnect(
        &self,
        id: &ConnectionId,
        provider: Provider,
        now: i64,
    ) -> Result<Option<Connection>, StoreError> {
        let Some(mut connection) = self.get(id, now).await? else {
            return Ok(None);
        };
        if connection.status == ConnectionStatus::Active {
            connection.status = ConnectionStatus::ReconnectRequired;
            connection.reconnect_provider = Some(provider);
            connection.updated_at = now;
            self.save(&connection).await?;
        }
        Ok(Some(connection))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

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
        }
    }

    #[test]
    fn the_pair_makes_the_id() {
        let a = connection("62515", "9130350000000001");
        assert_eq!(a.id.as_str(), "62515-9130350000000001");
        assert_eq!(a.id, connection("62515", "9130350000000001").id);
        assert_ne!(a.id, connection("62516", "9130350000000001").id);
    }

    #[tokio::test]
    async fn a_company_belongs_to_one_connection() {
        let connections = Connections::new(Arc::new(MemoryStore::new()));
        let first = connection("62515", "9130350000000001");
        let second = connection("62516", "9130350000000001");
        connections.claim_realm(&first, NOW).await.unwrap();
        connections.claim_realm(&first, NOW).await.unwrap();
        let taken = connections.claim_realm(&second, NOW).await.unwrap_err();
        assert!(
            matches!(&taken, RegistryError::RealmTaken { portal } if portal.as_str() == "62515"),
            "{taken}"
        );
        connections.release_realm(&second, NOW).await.unwrap();
        assert_eq!(
            connections.owner_of(&first.realm_id, NOW).await.unwrap(),
            Some(first.id.clone()),
            "only the holder releases"
        );
        connections.release_realm(&first, NOW).await.unwrap();
        connections.claim_realm(&second, NOW).await.unwrap();
    }

    #[tokio::test]
    async fn records_are_listed_by_status_and_portal() {
        let connections = Connections::new(Arc::new(MemoryStore::new()));
        let a = connection("62515", "9130350000000001");
        let b = connection("62515", "9130350000000002");
        let c = connection("62516", "9130350000000003");
        for record in [&a, &b, &c] {
            connections.save(record).await.unwrap();
        }
        connections
            .require_reconnect(&b.id, Provider::Qbo, NOW + 5)
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

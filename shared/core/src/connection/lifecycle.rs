//! Ending a connection (C4), from any side: the disconnect page, HubSpot's app-uninstall
//! notification, or Intuit's disconnect. The connection stops first, in one store write, so
//! nothing polls or syncs it from then on; revoking its tokens at the providers follows and is
//! safe to repeat (what one run could not revoke, the next one does).

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use super::install::ConnectError;
use super::registry::{Connection, ConnectionStatus, Connections};
use super::tokens::{TokenError, TokenKeeper, TokenOwner};
use crate::clock::Clock;
use crate::domain::{ConnectionId, Provider, RealmId};
use crate::oauth::ProviderApis;
use crate::queue::messages::LifecycleTask;
use crate::store::{Store, StoreError, TransactWrite};

/// Stops the connection at once: `disconnected`, no longer polled or synced (a store write, no
/// provider call). Answers the connection as it now stands (`None`: there is none); stopping a
/// stopped one changes nothing. With `guard`, only while the guard's condition holds.
pub async fn stop(
    connections: &Connections,
    id: &ConnectionId,
    now: i64,
    guard: Option<TransactWrite>,
) -> Result<Option<Connection>, StoreError> {
    connections
        .update(id, now, guard, |connection| {
            if connection.status == ConnectionStatus::Disconnected {
                return false;
            }
            connection.status = ConnectionStatus::Disconnected;
            connection.disconnected_at = Some(now);
            connection.updated_at = now;
            true
        })
        .await
}

pub struct Disconnector {
    connections: Connections,
    tokens: Arc<TokenKeeper>,
    providers: Arc<dyn ProviderApis>,
    clock: Clock,
}

impl Disconnector {
    pub fn new(
        store: Arc<dyn Store>,
        tokens: Arc<TokenKeeper>,
        providers: Arc<dyn ProviderApis>,
        clock: Clock,
    ) -> Self {
        Self {
            connections: Connections::new(store),
            tokens,
            providers,
            clock,
        }
    }

    /// See [`stop`].
    pub async fn stop(
        &self,
        id: &ConnectionId,
        guard: Option<TransactWrite>,
    ) -> Result<Option<Connection>, StoreError> {
        stop(&self.connections, id, self.clock.now_seconds(), guard).await
    }

    /// Revokes the company's tokens at Intuit and forgets them, lets the company be connected
    /// again, and does the same for the portal's HubSpot tokens when no other live connection of
    /// the portal uses them (`fresh_hubspot`: a refresh token just issued, revoked too). Tokens
    /// a provider already refuses count as revoked.
    pub async fn revoke(
        &self,
        connection: &Connection,
        fresh_hubspot: Option<&SecretString>,
    ) -> Result<(), ConnectError> {
        let now = self.clock.now_seconds();
        let company = TokenOwner::Realm(connection.realm_id.clone());
        if let Some(refresh) = self.tokens.refresh_token(&company).await? {
            self.providers.revoke(Provider::Qbo, &refresh).await?;
        }
        self.tokens.forget(&company).await?;
        self.connections.release_realm(connection, now).await?;

        let others_live = self
            .connections
            .of_portal(&connection.portal_id, now)
            .await?
            .into_iter()
            .any(|c| {
                c.connection_id != connection.id && c.status != ConnectionStatus::Disconnected
            });
        if !others_live {
            let portal = TokenOwner::Portal(connection.portal_id.clone());
            let stored = self.tokens.refresh_token(&portal).await?;
            for refresh in stored.iter().chain(fresh_hubspot) {
                self.providers.revoke(Provider::HubSpot, refresh).await?;
            }
            self.tokens.forget(&portal).await?;
        }
        Ok(())
    }

    /// Does what a lifecycle notification left to the poll queue: revoking a stopped
    /// connection's tokens, or checking with Intuit whether a company was really disconnected.
    pub async fn handle(&self, task: &LifecycleTask) -> Result<LifecycleOutcome, ConnectError> {
        match task {
            LifecycleTask::Revoke {
                connection_id,
                disconnected_at,
            } => {
                let Some(connection) = self
                    .connections
                    .get(connection_id, self.clock.now_seconds())
                    .await?
                else {
                    return Ok(LifecycleOutcome::NoConnection);
                };
                // Only a connection still stopped by that disconnect loses its tokens: a reconnect
                // since then keeps them.
                let same_disconnect =
                    disconnected_at.is_none() || connection.disconnected_at == *disconnected_at;
                if connection.status != ConnectionStatus::Disconnected || !same_disconnect {
                    return Ok(LifecycleOutcome::StillConnected);
                }
                self.revoke(&connection, None).await?;
                tracing::info!(connection = %connection.id, "tokens of a disconnected connection revoked");
                Ok(LifecycleOutcome::Revoked)
            }
            LifecycleTask::CheckCompany { realm_id } => self.check_company(realm_id).await,
        }
    }

    /// Intuit's disconnect page is opened by a browser, unsigned: anyone could open it. So it
    /// only makes the integration ask Intuit, by refreshing the company's tokens; only a refused
    /// refresh ends the connection.
    async fn check_company(&self, realm: &RealmId) -> Result<LifecycleOutcome, ConnectError> {
        let now = self.clock.now_seconds();
        let Some(id) = self.connections.owner_of(realm, now).await? else {
            return Ok(LifecycleOutcome::NoConnection);
        };
        let owner = TokenOwner::Realm(realm.clone());
        match self.tokens.keep_alive(&owner, Duration::ZERO).await {
            Ok(()) => Ok(LifecycleOutcome::StillConnected),
            Err(TokenError::ReconnectRequired { .. } | TokenError::NotConnected { .. }) => {
                // Stop only while the refused tokens are still the stored ones: a reconnect
                // that landed meanwhile wins.
                let Some(guard) = self.tokens.refusal_guard(&owner).await? else {
                    return Ok(LifecycleOutcome::StillConnected);
                };
                let Some(connection) = self.stop(&id, Some(guard)).await? else {
                    return Ok(LifecycleOutcome::NoConnection);
                };
                if connection.status != ConnectionStatus::Disconnected {
                    return Ok(LifecycleOutcome::StillConnected);
                }
                self.revoke(&connection, None).await?;
                tracing::info!(connection = %id, "QuickBooks disconnected the app: connection ended");
                Ok(LifecycleOutcome::Revoked)
            }
            Err(other) => Err(other.into()),
        }
    }
}

/// What a lifecycle task came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleOutcome {
    Revoked,
    /// The connection works (reconnected, or the disconnect was not real): left alone.
    StillConnected,
    NoConnection,
}

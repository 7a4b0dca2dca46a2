//! Tokens that never break: access tokens are refreshed ahead of expiry, at most once at a time per
//! token owner (a HubSpot portal or a QuickBooks company) across every concurrent Lambda, and a rotated refresh token is stored
//! before anything uses it.
//!
//! The algorithm (one item per owner, sealed secrets, a `version`):
//! 1. read; a fresh access token is returned at once;
//! 2. otherwise take the item's lease; a caller that cannot waits and reads again (the holder
//!    is refreshing);
//! 3. the lease holder reads again (someone may just have refreshed), calls the provider with the
//!    stored refresh token, and writes the new pair with compare-and-swap on the version it read,
//!    keeping the superseded refresh token beside it;
//! 4. `invalid_grant` marks the tokens `reconnect_required`; every later caller gets that answer
//!    without calling the provider again.
//!
//! A crash after the provider answered but before the write leaves the old refresh token stored;
//! the next refresh presents it again, which providers accept within their rotation grace period.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::crypto::{SealError, Sealer};
use crate::domain::{PortalId, Provider, RealmId};
use crate::error_class::ErrorClass;
use crate::http::bearer::{Bearer, BearerError};
use crate::oauth::{RefreshError, TokenEndpoint, TokenGrant};
use crate::store::{
    keys, CasOutcome, Item, ItemKey, LeaseOutcome, Store, StoreError, Table, TransactOutcome,
    TransactWrite,
};

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{} must be reconnected: its refresh token is no longer accepted (open the \
        integration's reconnect page)", .provider.label())]
    ReconnectRequired { provider: Provider },
    #[error("the connection has no {provider:?} tokens")]
    NotConnected { provider: Provider },
    #[error("another refresh of these tokens did not finish in time")]
    Busy,
    #[error(transparent)]
    Provider(RefreshError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Seal(#[from] SealError),
}

impl TokenError {
    pub fn class(&self) -> ErrorClass {
        match self {
            TokenError::Busy | TokenError::Provider(RefreshError::Transient(_)) => {
                ErrorClass::Retryable
            }
            TokenError::Store(e) => e.class(),
            _ => ErrorClass::Terminal,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    Active,
    ReconnectRequired,
}

/// A check that holds while `owner`'s stored tokens are the ones granted or refreshed no later
/// than `at` (epoch seconds), or while there are none; `None` when they are newer (the owner
/// connected again since). A late lifecycle notification is acted on only under this check.
pub async fn unchanged_since(
    store: &dyn Store,
    owner: &TokenOwner,
    at: i64,
    now: i64,
) -> Result<Option<TransactWrite>, StoreError> {
    let key = token_key(owner);
    let expected = match store.get(Table::Connections, &key, now).await? {
        None => None,
        Some(item) if item.to_value::<StoredTokens>()?.refreshed_at > at => return Ok(None),
        Some(item) => Some(item.version),
    };
    Ok(Some(TransactWrite::Check {
        table: Table::Connections,
        key,
        expected,
    }))
}

/// The stored item's document: secrets only in sealed form.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredTokens {
    status: TokenStatus,
    access_expires_at: i64,
    refreshed_at: i64,
    sealed: String,
}

/// The secrets inside `sealed`.
#[derive(Serialize, Deserialize)]
struct Secrets {
    access_token: String,
    refresh_token: String,
    /// The refresh token this one superseded, kept until the next rotation is stored.
    previous_refresh_token: Option<String>,
}

/// The shortest and longest access-token lifetime believed from a provider's `expires_in`: a
/// zero, negative or absurd answer must neither make every call refresh nor keep a dead token.
pub const MIN_ACCESS_LIFETIME: i64 = 60;
pub const MAX_ACCESS_LIFETIME: i64 = 24 * 3600;

pub fn clamp_lifetime(expires_in: i64) -> i64 {
    expires_in.clamp(MIN_ACCESS_LIFETIME, MAX_ACCESS_LIFETIME)
}

/// Whether a stored access token may still be used: more than the refresh margin left, or, for
/// a short-lived token, more than half its life (so a token that lives less than the margin is
/// not refreshed on every call).
fn is_fresh(stored: &StoredTokens, margin: Duration, now: i64) -> bool {
    let lifetime = (stored.access_expires_at - stored.refreshed_at).max(0);
    let margin = (margin.as_secs() as i64).min(lifetime / 2);
    stored.access_expires_at - margin > now
}

/// How the keeper behaves; the defaults suit Lambda.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Refresh when the access token has less than this left.
    pub refresh_margin: Duration,
    /// How long a refresher holds the lease. It is renewed right before the provider call, so it
    /// must outlast that call ([`crate::oauth::PROVIDER_TIMEOUT`]) plus sealing and storing the
    /// answer (two SDK operations, each bounded by at most [`crate::config::AwsTimeouts::MAX_OPERATION_SECONDS`]).
    pub lease: Duration,
    /// How long a caller waits for someone else's refresh before giving up (retryably).
    pub wait: Duration,
    pub poll: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            refresh_margin: Duration::from_secs(5 * 60),
            lease: Duration::from_secs(30),
            wait: Duration::from_secs(35),
            poll: Duration::from_millis(100),
        }
    }
}

pub struct TokenKeeper {
    store: Arc<dyn Store>,
    sealer: Arc<dyn Sealer>,
    endpoint: Arc<dyn TokenEndpoint>,
    clock: Clock,
    policy: Policy,
    /// Access tokens already opened, by item, with the sealed text they came from. The store is
    /// still read on every call (status, expiry), but KMS is asked only when the tokens changed.
    opened: Mutex<HashMap<ItemKey, (String, SecretString)>>,
}

/// A connection's tokens as API clients use them.
pub struct KeeperBearer {
    pub keeper: Arc<TokenKeeper>,
    pub owner: TokenOwner,
}

impl KeeperBearer {
    /// The bearers of a connection's two owners: its QuickBooks company, its HubSpot portal.
    pub fn both(
        keeper: &Arc<TokenKeeper>,
        realm: &crate::domain::RealmId,
        portal: &crate::domain::PortalId,
    ) -> (KeeperBearer, KeeperBearer) {
        (
            KeeperBearer {
                keeper: keeper.clone(),
                owner: TokenOwner::Realm(realm.clone()),
            },
            KeeperBearer {
                keeper: keeper.clone(),
                owner: TokenOwner::Portal(portal.clone()),
            },
        )
    }
}

fn bearer_error(error: TokenError) -> BearerError {
    match error {
        TokenError::ReconnectRequired { .. } | TokenError::NotConnected { .. } => {
            BearerError::ReconnectRequired(error.to_string())
        }
        other => BearerError::Unavailable(other.to_string()),
    }
}

#[async_trait::async_trait]
impl Bearer for KeeperBearer {
    async fn token(&self) -> Result<SecretString, BearerError> {
        self.keeper
            .access_token(&self.owner)
            .await
            .map_err(bearer_error)
    }

    async fn after_rejection(&self, rejected: &SecretString) -> Result<SecretString, BearerError> {
        self.keeper
            .token_after_rejection(&self.owner, rejected)
            .await
            .map_err(bearer_error)
    }
}

/// Whose tokens: HubSpot grants belong to a portal (every connection of the portal shares them),
/// QuickBooks grants to a company (realm), which only one connection may hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "provider", content = "id", rename_all = "snake_case")]
pub enum TokenOwner {
    #[serde(rename = "hubspot")]
    Portal(PortalId),
    #[serde(rename = "qbo")]
    Realm(RealmId),
}

impl TokenOwner {
    pub fn provider(&self) -> Provider {
        match self {
            TokenOwner::Portal(_) => Provider::HubSpot,
            TokenOwner::Realm(_) => Provider::Qbo,
        }
    }

    fn id(&self) -> &str {
        match self {
            TokenOwner::Portal(portal) => portal.as_str(),
            TokenOwner::Realm(realm) => realm.as_str(),
        }
    }
}

/// The owner a token item's secrets are sealed for: the item's own key, so sealed tokens moved
/// into another owner's item do not open.
fn sealed_for(key: &ItemKey) -> String {
    format!("{}/{}", key.pk, key.sk)
}

pub fn token_key(owner: &TokenOwner) -> ItemKey {
    keys::connections::tokens(owner.provider(), owner.id())
}

impl TokenKeeper {
    pub fn new(
        store: Arc<dyn Store>,
        sealer: Arc<dyn Sealer>,
        endpoint: Arc<dyn TokenEndpoint>,
        clock: Clock,
        policy: Policy,
    ) -> Self {
        Self {
            store,
            sealer,
            endpoint,
            clock,
            policy,
            opened: Mutex::new(HashMap::new()),
        }
    }

    /// The keeper of a function: the services' store, sealer and clock, refreshing at `endpoint`.
    pub fn from_services(
        services: &crate::runtime::Services,
        endpoint: Arc<dyn TokenEndpoint>,
    ) -> Self {
        Self::new(
            services.store.clone(),
            services.sealer.clone(),
            endpoint,
            services.clock.clone(),
            Policy::default(),
        )
    }

    /// Stores the tokens of a new or renewed connection (after an authorization-code exchange).
    pub async fn store_grant(
        &self,
        owner: &TokenOwner,
        grant: &TokenGrant,
    ) -> Result<(), TokenError> {
        loop {
            let write = self.grant_write(owner, grant).await?;
            if let TransactOutcome::Written = self.store.transact(vec![write]).await? {
                return Ok(());
            }
        }
    }

    /// The write that stores a new grant over whatever is stored now (compare-and-swap on the
    /// version just read), for a transaction with other writes. A concurrent refresh makes the
    /// transaction fail; read again and retry.
    pub async fn grant_write(
        &self,
        owner: &TokenOwner,
        grant: &TokenGrant,
    ) -> Result<TransactWrite, TokenError> {
        let key = token_key(owner);
        let current = self
            .store
            .get(Table::Connections, &key, self.now_seconds())
            .await?;
        Ok(TransactWrite::PutVersioned {
            table: Table::Connections,
            expected: current.as_ref().map(|item| item.version),
            item: self.sealed_item(&key, grant, None).await?,
        })
    }

    /// A check that holds while the owner's tokens are still the refused (or missing) ones just
    /// read; `None` when they work again (someone reconnected in the meantime). The poller marks
    /// a connection `reconnect_required` only under this check, so it never undoes a reconnect.
    pub async fn refusal_guard(
        &self,
        owner: &TokenOwner,
    ) -> Result<Option<TransactWrite>, TokenError> {
        let key = token_key(owner);
        let item = self
            .store
            .get(Table::Connections, &key, self.now_seconds())
            .await?;
        let expected = match item {
            None => None,
            Some(item) if item.to_value::<StoredTokens>()?.status == TokenStatus::Active => {
                return Ok(None)
            }
            Some(item) => Some(item.version),
        };
        Ok(Some(TransactWrite::Check {
            table: Table::Connections,
            key,
            expected,
        }))
    }

    /// A working access token, refreshed first if it is about to expire.
    pub async fn access_token(&self, owner: &TokenOwner) -> Result<SecretString, TokenError> {
        self.token_refreshed_after(owner, i64::MIN).await
    }

    /// The token to use after the provider refused `rejected` (a 401): the stored one if it is
    /// already another, else a refreshed one — the provider may have revoked it early.
    pub async fn token_after_rejection(
        &self,
        owner: &TokenOwner,
        rejected: &SecretString,
    ) -> Result<SecretString, TokenError> {
        let key = token_key(owner);
        let (_, stored) = self.read(&key, owner.provider()).await?;
        let current = self.open(&key, &stored).await?.access_token;
        if current != rejected.expose_secret() {
            return Ok(SecretString::from(current));
        }
        self.token_refreshed_after(owner, stored.refreshed_at).await
    }

    /// Refreshes the tokens if their last refresh is older than `max_idle`, so that refresh
    /// tokens which expire when unused never idle out (scheduled, proactive refresh).
    pub async fn keep_alive(
        &self,
        owner: &TokenOwner,
        max_idle: Duration,
    ) -> Result<(), TokenError> {
        let threshold = self.now_seconds() - max_idle.as_secs() as i64;
        self.token_refreshed_after(owner, threshold).await.map(drop)
    }

    /// A working access token from tokens refreshed after `min_refreshed_at` (epoch seconds).
    async fn token_refreshed_after(
        &self,
        owner: &TokenOwner,
        min_refreshed_at: i64,
    ) -> Result<SecretString, TokenError> {
        let provider = owner.provider();
        let key = token_key(owner);
        let owner = uuid::Uuid::new_v4().to_string();
        let give_up_at = self.clock.now_ms() + self.policy.wait.as_millis() as i64;
        loop {
            let (item, stored) = self.read(&key, provider).await?;
            if let Some(token) = self
                .fresh_access_token(&key, &stored, min_refreshed_at)
                .await?
            {
                return Ok(token);
            }
            let now_ms = self.clock.now_ms();
            match self
                .store
                .acquire_lease(
                    Table::Connections,
                    &key,
                    &owner,
                    now_ms,
                    self.policy.lease.as_millis() as i64,
                )
                .await?
            {
                LeaseOutcome::Acquired(_) => {
                    let refreshed = self
                        .refresh_holding_lease(
                            &key,
                            &owner,
                            provider,
                            item.version,
                            min_refreshed_at,
                        )
                        .await;
                    self.store
                        .release_lease(Table::Connections, &key, &owner)
                        .await?;
                    match refreshed? {
                        Some(token) => return Ok(token),
                        None => continue,
                    }
                }
                LeaseOutcome::Held(_) if now_ms >= give_up_at => return Err(TokenError::Busy),
                LeaseOutcome::Held(_) => tokio::time::sleep(self.policy.poll).await,
            }
        }
    }

    /// The stored refresh token, to revoke it at the provider; `None` when nothing is stored.
    pub async fn refresh_token(
        &self,
        owner: &TokenOwner,
    ) -> Result<Option<SecretString>, TokenError> {
        let key = token_key(owner);
        let Some(item) = self
            .store
            .get(Table::Connections, &key, self.now_seconds())
            .await?
        else {
            return Ok(None);
        };
        let stored: StoredTokens = item.to_value()?;
        Ok(Some(SecretString::from(
            self.open(&key, &stored).await?.refresh_token,
        )))
    }

    /// Whether the owner's tokens work, need a reconnect, or do not exist.
    pub async fn status(&self, owner: &TokenOwner) -> Result<Option<TokenStatus>, TokenError> {
        let item = self
            .store
            .get(Table::Connections, &token_key(owner), self.now_seconds())
            .await?;
        match item {
            Some(item) => Ok(Some(item.to_value::<StoredTokens>()?.status)),
            None => Ok(None),
        }
    }

    /// Deletes the owner's tokens (after they were revoked).
    pub async fn forget(&self, owner: &TokenOwner) -> Result<(), TokenError> {
        let key = token_key(owner);
        self.store.delete(Table::Connections, &key).await?;
        self.opened().remove(&key);
        Ok(())
    }

    /// Under the lease: re-read, refresh unless someone just did, store the rotated pair.
    /// `None` means the tokens changed under us: read again.
    async fn refresh_holding_lease(
        &self,
        key: &ItemKey,
        lease_owner: &str,
        provider: Provider,
        seen_version: u64,
        min_refreshed_at: i64,
    ) -> Result<Option<SecretString>, TokenError> {
        let (item, stored) = self.read(key, provider).await?;
        if let Some(token) = self
            .fresh_access_token(key, &stored, min_refreshed_at)
            .await?
        {
            return Ok(Some(token));
        }
        if item.version != seen_version {
            return Ok(None);
        }
        let secrets = self.open(key, &stored).await?;
        let refresh_token = SecretString::from(secrets.refresh_token.clone());
        // The reads above may have been slow: renew the lease so that it covers the provider call
        // and the write that follows (see `Policy::lease`). If it was lost meanwhile, someone
        // else is refreshing: read again instead of presenting the same refresh token twice.
        let renewed = self
            .store
            .acquire_lease(
                Table::Connections,
                key,
                lease_owner,
                self.clock.now_ms(),
                self.policy.lease.as_millis() as i64,
            )
            .await?;
        if let LeaseOutcome::Held(_) = renewed {
            return Ok(None);
        }
        match self.endpoint.refresh(provider, &refresh_token).await {
            Ok(grant) => {
                // The rotated refresh token is stored before anyone uses it; the superseded one
                // stays beside it.
                let next = self
                    .sealed_item(key, &grant, Some(secrets.refresh_token))
                    .await?;
                match self
                    .store
                    .put_versioned(Table::Connections, next, Some(item.version))
                    .await?
                {
                    CasOutcome::Written { .. } => Ok(Some(grant.access_token)),
                    CasOutcome::VersionConflict => Ok(None),
                }
            }
            Err(RefreshError::InvalidGrant) => {
                let mut blocked = stored.clone();
                blocked.status = TokenStatus::ReconnectRequired;
                let blocked = Item::from_value(key.clone(), &blocked)?;
                match self
                    .store
                    .put_versioned(Table::Connections, blocked, Some(item.version))
                    .await?
                {
                    CasOutcome::Written { .. } => {
                        tracing::warn!(
                            provider = provider.as_str(),
                            "refresh token refused: the connection must be reconnected"
                        );
                        Err(TokenError::ReconnectRequired { provider })
                    }
                    // The tokens changed while the provider refused the old refresh token (a
                    // reconnect stored new ones): the refusal is about tokens no longer stored.
                    CasOutcome::VersionConflict => Ok(None),
                }
            }
            Err(error) => Err(TokenError::Provider(error)),
        }
    }

    async fn read(
        &self,
        key: &ItemKey,
        provider: Provider,
    ) -> Result<(Item, StoredTokens), TokenError> {
        let item = self
            .store
            .get(Table::Connections, key, self.now_seconds())
            .await?
            .ok_or(TokenError::NotConnected { provider })?;
        let stored: StoredTokens = item.to_value()?;
        if stored.status == TokenStatus::ReconnectRequired {
            return Err(TokenError::ReconnectRequired { provider });
        }
        Ok((item, stored))
    }

    async fn fresh_access_token(
        &self,
        key: &ItemKey,
        stored: &StoredTokens,
        min_refreshed_at: i64,
    ) -> Result<Option<SecretString>, TokenError> {
        if !is_fresh(stored, self.policy.refresh_margin, self.now_seconds())
            || stored.refreshed_at <= min_refreshed_at
        {
            return Ok(None);
        }
        if let Some((sealed, token)) = self.opened().get(key) {
            if *sealed == stored.sealed {
                return Ok(Some(token.clone()));
            }
        }
        let token = SecretString::from(self.open(key, stored).await?.access_token);
        self.opened()
            .insert(key.clone(), (stored.sealed.clone(), token.clone()));
        Ok(Some(token))
    }

    /// A poisoned lock only means another caller panicked mid-insert: the map is still usable.
    fn opened(&self) -> std::sync::MutexGuard<'_, HashMap<ItemKey, (String, SecretString)>> {
        self.opened
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn open(&self, key: &ItemKey, stored: &StoredTokens) -> Result<Secrets, TokenError> {
        let plaintext = self.sealer.open(&stored.sealed, &sealed_for(key)).await?;
        serde_json::from_slice(&plaintext)
            .map_err(|_| TokenError::Seal(SealError("sealed tokens are unreadable".into())))
    }

    async fn sealed_item(
        &self,
        key: &ItemKey,
        grant: &TokenGrant,
        previous: Option<String>,
    ) -> Result<Item, TokenError> {
        let secrets = Secrets {
            access_token: grant.access_token.expose_secret().to_owned(),
            refresh_token: grant.refresh_token.expose_secret().to_owned(),
            previous_refresh_token: previous,
        };
        let plaintext = serde_json::to_vec(&secrets).map_err(|e| SealError(e.to_string()))?;
        let now = self.now_seconds();
        let stored = StoredTokens {
            status: TokenStatus::Active,
            access_expires_at: now + clamp_lifetime(grant.expires_in),
            refreshed_at: now,
            sealed: self.sealer.seal(&plaintext, &sealed_for(key)).await?,
        };
        Ok(Item::from_value(key.clone(), &stored)?)
    }

    fn now_seconds(&self) -> i64 {
        self.clock.now_ms().div_euclid(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::fakes::ReversingSealer;
    use crate::store::memory::MemoryStore;
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
    use std::sync::Mutex;

    const START_MS: i64 = 1_900_000_000_000;

    /// The provider's side: its current refresh token, superseded ones with the time they stop
    /// working, and how many pairs it has issued.
    #[derive(Default)]
    struct Rotation {
        current: String,
        superseded: Vec<(String, i64)>,
        issued: u64,
    }

    /// A provider that rotates refresh tokens and honours a superseded one for `grace_ms`.
    struct RotatingProvider {
        clock: Arc<AtomicI64>,
        grace_ms: i64,
        delay: Duration,
        state: Mutex<Rotation>,
        refreshes: AtomicUsize,
        lose_next_answer: AtomicBool,
    }

    impl RotatingProvider {
        fn new(clock: Arc<AtomicI64>, grace_ms: i64, delay: Duration) -> Arc<Self> {
            Arc::new(Self {
                clock,
                grace_ms,
                delay,
                state: Mutex::new(Rotation {
                    current: "refresh-0".into(),
                    ..Rotation::default()
                }),
                refreshes: AtomicUsize::new(0),
                lose_next_answer: AtomicBool::new(false),
            })
        }
    }

    #[async_trait]
    impl TokenEndpoint for RotatingProvider {
        async fn refresh(
            &self,
            _: Provider,
            refresh_token: &SecretString,
        ) -> Result<TokenGrant, RefreshError> {
            tokio::time::sleep(self.delay).await;
            let now = self.clock.load(Ordering::SeqCst);
            let grant = {
                let mut state = self.state.lock().unwrap();
                let Rotation {
                    current,
                    superseded,
                    issued,
                } = &mut *state;
                let presented = refresh_token.expose_secret();
                let accepted = presented == current.as_str()
                    || superseded
                        .iter()
                        .any(|(old, until)| old == presented && *until > now);
                if !accepted {
                    return Err(RefreshError::InvalidGrant);
                }
                *issued += 1;
                let next = format!("refresh-{issued}");
                superseded.push((
                    std::mem::replace(current, next.clone()),
                    now + self.grace_ms,
                ));
                TokenGrant {
                    access_token: SecretString::from(format!("access-{issued}")),
                    refresh_token: SecretString::from(next),
                    expires_in: 3600,
                }
            };
            self.refreshes.fetch_add(1, Ordering::SeqCst);
            if self.lose_next_answer.swap(false, Ordering::SeqCst) {
                // The provider rotated, but its answer never reached us.
                return Err(RefreshError::Transient("connection reset".into()));
            }
            Ok(grant)
        }
    }

    struct Fixture {
        clock: Arc<AtomicI64>,
        store: Arc<MemoryStore>,
        provider: Arc<RotatingProvider>,
        keeper: Arc<TokenKeeper>,
        owner: TokenOwner,
    }

    async fn fixture(grace_ms: i64, delay: Duration) -> Fixture {
        let clock = Arc::new(AtomicI64::new(START_MS));
        let store = Arc::new(MemoryStore::new());
        let provider = RotatingProvider::new(clock.clone(), grace_ms, delay);
        let now = clock.clone();
        let keeper = Arc::new(TokenKeeper::new(
            store.clone(),
            Arc::new(ReversingSealer),
            provider.clone(),
            crate::clock::Clock::from_fn(move || now.load(Ordering::SeqCst)),
            Policy {
                poll: Duration::from_millis(5),
                ..Policy::default()
            },
        ));
        let owner = TokenOwner::Realm(RealmId::parse("9130350000000001").unwrap());
        let first = TokenGrant {
            access_token: SecretString::from("access-0".to_owned()),
            refresh_token: SecretString::from("refresh-0".to_owned()),
            expires_in: 3600,
        };
        keeper.store_grant(&owner, &first).await.unwrap();
        Fixture {
            clock,
            store,
            provider,
            keeper,
            owner,
        }
    }

    impl Fixture {
        fn advance(&self, seconds: i64) {
            self.clock.fetch_add(seconds * 1000, Ordering::SeqCst);
        }

        async fn token(&self) -> Result<String, TokenError> {
            self.keeper
                .access_token(&self.owner)
                .await
                .map(|t| t.expose_secret().to_owned())
        }
    }

    #[tokio::test]
    async fn a_fresh_token_is_used_without_calling_the_provider() {
        let f = fixture(0, Duration::ZERO).await;
        f.advance(3600 - 301);
        assert_eq!(f.token().await.unwrap(), "access-0");
        assert_eq!(f.provider.refreshes.load(Ordering::SeqCst), 0);
        f.advance(2);
        assert_eq!(
            f.token().await.unwrap(),
            "access-1",
            "refreshed inside the five-minute margin"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn twenty_concurrent_callers_at_expiry_cause_one_refresh() {
        let f = fixture(0, Duration::from_millis(50)).await;
        f.advance(3600);
        let callers: Vec<_> = (0..20)
            .map(|_| {
                let keeper = f.keeper.clone();
                let owner = f.owner.clone();
                tokio::spawn(async move { keeper.access_token(&owner).await })
            })
            .collect();
        for caller in callers {
            assert_eq!(caller.await.unwrap().unwrap().expose_secret(), "access-1");
        }
        assert_eq!(f.provider.refreshes.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn two_hundred_rotations_never_end_in_invalid_grant() {
        let f = fixture(0, Duration::ZERO).await;
        for cycle in 1..=200 {
            f.advance(3600);
            assert_eq!(f.token().await.unwrap(), format!("access-{cycle}"));
        }
        assert_eq!(f.provider.refreshes.load(Ordering::SeqCst), 200);
    }

    #[tokio::test]
    async fn a_lost_answer_is_recovered_within_the_grace_period() {
        let f = fixture(24 * 3600 * 1000, Duration::ZERO).await;
        f.advance(3600);
        f.provider.lose_next_answer.store(true, Ordering::SeqCst);
        let lost = f.token().await.unwrap_err();
        assert!(matches!(
            lost,
            TokenError::Provider(RefreshError::Transient(_))
        ));
        assert_eq!(lost.class(), ErrorClass::Retryable);
        // The old refresh token is still stored; the provider still accepts it (grace).
        assert_eq!(f.token().await.unwrap(), "access-2");
        f.advance(3600);
        assert_eq!(
            f.token().await.unwrap(),
            "access-3",
            "and the chain goes on from the new token"
        );
    }

    #[tokio::test]
    async fn without_grace_a_lost_answer_needs_a_reconnect_and_says_so() {
        let f = fixture(0, Duration::ZERO).await;
        f.advance(3600);
        f.provider.lose_next_answer.store(true, Ordering::SeqCst);
        assert!(f.token().await.is_err());
        let refused = f.token().await.unwrap_err();
        assert!(matches!(
            refused,
            TokenError::ReconnectRequired {
                provider: Provider::Qbo
            }
        ));
        assert_eq!(refused.class(), ErrorClass::Terminal);
        let calls = f.provider.refreshes.load(Ordering::SeqCst);
        assert!(matches!(
            f.token().await,
            Err(TokenError::ReconnectRequired { .. })
        ));
        assert_eq!(
            f.provider.refreshes.load(Ordering::SeqCst),
            calls,
            "no more calls after invalid_grant"
        );
    }

    #[tokio::test]
    async fn tokens_are_stored_sealed_and_errors_never_show_them() {
        let f = fixture(0, Duration::ZERO).await;
        f.advance(3600);
        f.token().await.unwrap();
        let key = token_key(&f.owner);
        let item = f
            .store
            .get(Table::Connections, &key, START_MS / 1000 + 3600)
            .await
            .unwrap()
            .unwrap();
        let stored = serde_json::to_string(&item.doc).unwrap();
        for secret in ["access-1", "refresh-1", "refresh-0"] {
            assert!(
                !stored.contains(secret),
                "{secret} stored in plain text: {stored}"
            );
        }
        assert_eq!(item.version, 2);
        let errors = [
            TokenError::ReconnectRequired {
                provider: Provider::Qbo,
            },
            TokenError::Provider(RefreshError::InvalidGrant),
            TokenError::Busy,
        ];
        for error in errors {
            assert!(
                !format!("{error} {error:?}").contains("refresh-"),
                "{error}"
            );
        }
    }

    #[tokio::test]
    async fn unchanged_tokens_are_opened_once() {
        struct CountingSealer(AtomicUsize);
        #[async_trait]
        impl Sealer for CountingSealer {
            async fn seal(&self, plaintext: &[u8], owner: &str) -> Result<String, SealError> {
                ReversingSealer.seal(plaintext, owner).await
            }
            async fn open(&self, sealed: &str, owner: &str) -> Result<Vec<u8>, SealError> {
                self.0.fetch_add(1, Ordering::SeqCst);
                ReversingSealer.open(sealed, owner).await
            }
        }
        let clock = Arc::new(AtomicI64::new(START_MS));
        let sealer = Arc::new(CountingSealer(AtomicUsize::new(0)));
        let now = clock.clone();
        let keeper = TokenKeeper::new(
            Arc::new(MemoryStore::new()),
            sealer.clone(),
            RotatingProvider::new(clock.clone(), 0, Duration::ZERO),
            crate::clock::Clock::from_fn(move || now.load(Ordering::SeqCst)),
            Policy::default(),
        );
        let owner = TokenOwner::Realm(RealmId::parse("9130350000000001").unwrap());
        let grant = TokenGrant {
            access_token: SecretString::from("access-0".to_owned()),
            refresh_token: SecretString::from("refresh-0".to_owned()),
            expires_in: 3600,
        };
        keeper.store_grant(&owner, &grant).await.unwrap();
        for _ in 0..10 {
            let token = keeper.access_token(&owner).await.unwrap();
            assert_eq!(token.expose_secret(), "access-0");
        }
        assert_eq!(
            sealer.0.load(Ordering::SeqCst),
            1,
            "opened once for ten calls"
        );
        clock.fetch_add(3600 * 1000, Ordering::SeqCst);
        let refreshed = keeper.access_token(&owner).await.unwrap();
        assert_eq!(
            refreshed.expose_secret(),
            "access-1",
            "a changed item is opened again"
        );
    }

    #[tokio::test]
    async fn keep_alive_refreshes_only_idle_tokens() {
        let f = fixture(0, Duration::ZERO).await;
        let day = Duration::from_secs(24 * 3600);
        f.advance(600);
        f.keeper.keep_alive(&f.owner, day).await.unwrap();
        assert_eq!(
            f.provider.refreshes.load(Ordering::SeqCst),
            0,
            "not idle yet"
        );
        f.advance(24 * 3600);
        f.keeper.keep_alive(&f.owner, day).await.unwrap();
        assert_eq!(
            f.provider.refreshes.load(Ordering::SeqCst),
            1,
            "idle for a day"
        );
        f.keeper.keep_alive(&f.owner, day).await.unwrap();
        assert_eq!(
            f.provider.refreshes.load(Ordering::SeqCst),
            1,
            "just refreshed"
        );
    }

    #[tokio::test]
    async fn forgotten_tokens_are_gone_and_the_refresh_token_was_readable_before() {
        let f = fixture(0, Duration::ZERO).await;
        let refresh = f.keeper.refresh_token(&f.owner).await.unwrap().unwrap();
        assert_eq!(refresh.expose_secret(), "refresh-0");
        assert_eq!(
            f.keeper.status(&f.owner).await.unwrap(),
            Some(TokenStatus::Active)
        );
        f.keeper.forget(&f.owner).await.unwrap();
        assert!(f.keeper.refresh_token(&f.owner).await.unwrap().is_none());
        assert_eq!(f.keeper.status(&f.owner).await.unwrap(), None);
        assert!(matches!(
            f.token().await,
            Err(TokenError::NotConnected { .. })
        ));
    }

    #[tokio::test]
    async fn a_connection_without_tokens_is_not_connected() {
        let f = fixture(0, Duration::ZERO).await;
        let other = TokenOwner::Portal(PortalId::parse("62515").unwrap());
        let missing = f.keeper.access_token(&other).await.unwrap_err();
        assert!(matches!(
            missing,
            TokenError::NotConnected {
                provider: Provider::HubSpot
            }
        ));
    }

    fn grant(access: &str, refresh: &str, expires_in: i64) -> TokenGrant {
        TokenGrant {
            access_token: SecretString::from(access.to_owned()),
            refresh_token: SecretString::from(refresh.to_owned()),
            expires_in,
        }
    }

    /// A provider that refuses the refresh token, while a reconnect stores new tokens during the
    /// refusal (the race between the poller's refresh and a person reconnecting).
    struct RefusesWhileReconnected {
        reconnect: Mutex<Option<Arc<TokenKeeper>>>,
        owner: TokenOwner,
    }

    #[async_trait]
    impl TokenEndpoint for RefusesWhileReconnected {
        async fn refresh(&self, _: Provider, _: &SecretString) -> Result<TokenGrant, RefreshError> {
            let reconnect = self.reconnect.lock().unwrap().take();
            if let Some(flow) = reconnect {
                flow.store_grant(
                    &self.owner,
                    &grant("access-reconnected", "refresh-new", 3600),
                )
                .await
                .unwrap();
            }
            Err(RefreshError::InvalidGrant)
        }
    }

    #[tokio::test]
    async fn a_refusal_that_loses_to_a_reconnect_reads_the_new_tokens() {
        let clock = Arc::new(AtomicI64::new(START_MS));
        let now = clock.clone();
        let store = Arc::new(MemoryStore::new());
        let owner = TokenOwner::Portal(PortalId::parse("62515").unwrap());
        let keeper_on = |endpoint: Arc<dyn TokenEndpoint>| {
            let now = now.clone();
            Arc::new(TokenKeeper::new(
                store.clone(),
                Arc::new(ReversingSealer),
                endpoint,
                crate::clock::Clock::from_fn(move || now.load(Ordering::SeqCst)),
                Policy::default(),
            ))
        };
        let provider = Arc::new(RefusesWhileReconnected {
            reconnect: Mutex::new(None),
            owner: owner.clone(),
        });
        let poller = keeper_on(provider.clone());
        let flow = keeper_on(provider.clone());
        poller
            .store_grant(&owner, &grant("access-old", "refresh-old", 3600))
            .await
            .unwrap();
        *provider.reconnect.lock().unwrap() = Some(flow);
        clock.fetch_add(3600 * 1000, Ordering::SeqCst);
        let token = poller.access_token(&owner).await.unwrap();
        assert_eq!(token.expose_secret(), "access-reconnected");
        assert_eq!(
            poller.status(&owner).await.unwrap(),
            Some(TokenStatus::Active),
            "the refusal of the old refresh token did not block the new tokens"
        );
    }

    /// Opening takes longer than the whole lease (a slow KMS), moving the clock.
    struct SlowSealer(Arc<AtomicI64>);

    #[async_trait]
    impl Sealer for SlowSealer {
        async fn seal(&self, plaintext: &[u8], owner: &str) -> Result<String, SealError> {
            ReversingSealer.seal(plaintext, owner).await
        }
        async fn open(&self, sealed: &str, owner: &str) -> Result<Vec<u8>, SealError> {
            self.0.fetch_add(
                Policy::default().lease.as_millis() as i64 + 10_000,
                Ordering::SeqCst,
            );
            ReversingSealer.open(sealed, owner).await
        }
    }

    /// Checks, when called, that nobody else could take the refresh lease right now.
    struct LeaseWitness {
        store: Arc<MemoryStore>,
        clock: Arc<AtomicI64>,
        key: ItemKey,
        held: AtomicBool,
    }

    #[async_trait]
    impl TokenEndpoint for LeaseWitness {
        async fn refresh(&self, _: Provider, _: &SecretString) -> Result<TokenGrant, RefreshError> {
            let now = self.clock.load(Ordering::SeqCst);
            let other = self
                .store
                .acquire_lease(Table::Connections, &self.key, "someone-else", now, 1000)
                .await
                .unwrap();
            self.held
                .store(matches!(other, LeaseOutcome::Held(_)), Ordering::SeqCst);
            Ok(grant("access-1", "refresh-1", 3600))
        }
    }

    #[tokio::test]
    async fn the_lease_is_renewed_before_the_provider_is_called() {
        let clock = Arc::new(AtomicI64::new(START_MS));
        let store = Arc::new(MemoryStore::new());
        let owner = TokenOwner::Realm(RealmId::parse("9130350000000001").unwrap());
        let witness = Arc::new(LeaseWitness {
            store: store.clone(),
            clock: clock.clone(),
            key: token_key(&owner),
            held: AtomicBool::new(false),
        });
        let now = clock.clone();
        let keeper = TokenKeeper::new(
            store.clone(),
            Arc::new(SlowSealer(clock.clone())),
            witness.clone(),
            crate::clock::Clock::from_fn(move || now.load(Ordering::SeqCst)),
            Policy::default(),
        );
        keeper
            .store_grant(&owner, &grant("access-0", "refresh-0", 3600))
            .await
            .unwrap();
        clock.fetch_add(3600 * 1000, Ordering::SeqCst);
        assert_eq!(
            keeper.access_token(&owner).await.unwrap().expose_secret(),
            "access-1"
        );
        assert!(
            witness.held.load(Ordering::SeqCst),
            "the lease had lapsed when the provider was called"
        );
    }

    #[test]
    fn the_lease_outlasts_everything_done_under_it() {
        let longest_aws_call =
            Duration::from_secs(crate::config::AwsTimeouts::MAX_OPERATION_SECONDS.into());
        let after_renewal = crate::oauth::PROVIDER_TIMEOUT + 2 * longest_aws_call;
        assert!(
            after_renewal < Policy::default().lease,
            "{after_renewal:?} of work under a {:?} lease",
            Policy::default().lease
        );
        assert!(Policy::default().wait > Policy::default().lease);
    }

    #[test]
    fn provider_lifetimes_are_clamped_and_short_ones_refresh_at_half_life() {
        let lifetimes = [
            (-5, MIN_ACCESS_LIFETIME),
            (0, MIN_ACCESS_LIFETIME),
            (30, MIN_ACCESS_LIFETIME),
            (1799, 1799),
            (86_400 * 365, MAX_ACCESS_LIFETIME),
        ];
        for (given, believed) in lifetimes {
            assert_eq!(clamp_lifetime(given), believed, "{given}");
        }
        let margin = Duration::from_secs(300);
        let stored = |refreshed_at: i64, lifetime: i64| StoredTokens {
            status: TokenStatus::Active,
            access_expires_at: refreshed_at + lifetime,
            refreshed_at,
            sealed: String::new(),
        };
        // (lifetime, seconds since the refresh, fresh?)
        let cases = [
            (3600, 0, true),
            (3600, 3299, true),
            (3600, 3300, false),
            (60, 29, true),
            (60, 30, false),
            (600, 299, true),
            (600, 300, false),
        ];
        for (lifetime, age, fresh) in cases {
            assert_eq!(
                is_fresh(&stored(1000, lifetime), margin, 1000 + age),
                fresh,
                "lifetime {lifetime}, age {age}"
            );
        }
    }

    #[tokio::test]
    async fn a_rejected_token_is_replaced_once() {
        let f = fixture(0, Duration::ZERO).await;
        let bearer = KeeperBearer {
            keeper: f.keeper.clone(),
            owner: f.owner.clone(),
        };
        let first = bearer.token().await.unwrap();
        assert_eq!(first.expose_secret(), "access-0");
        // The provider refused a fresh-looking token: it is refreshed although not expired.
        let second = bearer.after_rejection(&first).await.unwrap();
        assert_eq!(second.expose_secret(), "access-1");
        // Another caller that was refused the same old token gets the new one, no refresh.
        let third = bearer.after_rejection(&first).await.unwrap();
        assert_eq!(third.expose_secret(), "access-1");
        assert_eq!(f.provider.refreshes.load(Ordering::SeqCst), 1);
    }
}

//! Connecting, reconnecting and disconnecting (C1–C4).
//!
//! Every flow starts with HubSpot's consent: it proves the person administers the portal, which
//! reconnecting, adding a company and disconnecting all need. Then:
//! - install / add a company / reconnect: QuickBooks' consent, and on its callback the connection
//!   is written whole (tokens, pre-flight record, default settings, initial sync queued);
//! - disconnect: the connection's tokens are revoked at both providers and deleted;
//! - uninstall: the app is uninstalled from the portal and every connection of it disconnected.
//!
//! Nothing is written before the last callback succeeds: the HubSpot grant waits, sealed, inside
//! the single-use state of the QuickBooks step. A rejected callback changes nothing.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::initial_sync::{self, InitialSyncRequest};
use super::lifecycle::Disconnector;
use super::oauth_state::{self, BrowserKey};
use super::oauth_state::{OAuthStates, StateError};
use super::registry::{Connection, ConnectionStatus, Connections, Preflight, RegistryError};
use super::tokens::{TokenError, TokenKeeper, TokenOwner};
use crate::clock::{utc_date, Clock};
use crate::config::Config;
use crate::crypto::{SealError, Sealer};
use crate::domain::{ConnectionId, PortalId, Provider, RealmId};
use crate::error_class::ErrorClass;
use crate::oauth::{HttpProviders, ProviderApis, ProviderError, TokenGrant};
use crate::qbo::company::{
    is_sandbox_company, preflight_warnings, read_profile, PreflightWarning, ProfileError,
};
use crate::queue::{Queue, QueueError};
use crate::runtime::Services;
use crate::settings::{default_settings, SettingsStore};
use crate::store::{Store, StoreError, TransactOutcome};

pub const HUBSPOT_CALLBACK_PATH: &str = "/oauth/hubspot/callback";
pub const QBO_CALLBACK_PATH: &str = "/oauth/qbo/callback";

/// Why a person started a flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Intent {
    /// Connect a QuickBooks company; with a portal, to that portal only ("add another company").
    Install {
        portal: Option<PortalId>,
    },
    /// Renew the tokens of an existing connection (the same portal and company).
    Reconnect {
        connection: ConnectionId,
    },
    Disconnect {
        connection: ConnectionId,
    },
    /// Uninstall the app from the portal: every connection of the portal is disconnected.
    Uninstall,
}

/// What the state of each step remembers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
enum Pending {
    HubSpot {
        intent: Intent,
        base_url: String,
    },
    Qbo {
        intent: Intent,
        base_url: String,
        portal: PortalId,
        /// The HubSpot grant, sealed like stored tokens, until the connection is written.
        hubspot_grant: String,
    },
    /// A disconnect or uninstall waiting for the person to confirm it (a POST).
    Confirm {
        intent: Intent,
        portal: PortalId,
        /// The HubSpot grant the confirmed action uses (uninstall) and revokes.
        hubspot_grant: String,
    },
}

/// The sealed form of a grant waiting in a state. The access token's expiry is absolute (taken
/// when the provider issued it), so a slow second consent cannot store a stale token as fresh.
#[derive(Serialize, Deserialize)]
struct GrantSecrets {
    access_token: String,
    refresh_token: String,
    expires_at: i64,
}

/// Whose the HubSpot grant sealed inside a pending state is.
fn waiting_grant_owner(portal: &PortalId) -> String {
    format!("hubspot-grant#{portal}")
}

/// The query of a provider's redirect back to us. Its `Debug` leaves the code out: an
/// authorization code is a credential until it is exchanged.
#[derive(Default, Clone, Deserialize)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    #[serde(rename = "realmId")]
    pub realm_id: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

impl std::fmt::Debug for CallbackParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackParams")
            .field("code", &self.code.as_ref().map(|_| "[REDACTED]"))
            .field("state", &self.state.as_ref().map(|_| "[REDACTED]"))
            .field("realm_id", &self.realm_id)
            .field("error", &self.error)
            .field("error_description", &self.error_description)
            .finish()
    }
}

/// What a confirmation page asks the person to confirm.
#[derive(Debug)]
pub struct Confirmation {
    pub intent: Intent,
    pub portal: PortalId,
    /// Single use, bound to the browser; sent back in the confirming POST.
    pub token: String,
    /// The connections the action stops.
    pub connections: Vec<Connection>,
    pub base_url: String,
}

/// Where a step leads.
#[derive(Debug)]
pub enum Outcome {
    /// Send the browser to a provider's consent page.
    Redirect(String),
    /// Ask the person to confirm a disconnect or uninstall.
    Confirm(Confirmation),
    Connected(Connected),
    Disconnected(Connection),
    /// The app was uninstalled from the portal; these connections were disconnected.
    Uninstalled {
        portal: PortalId,
        connections: Vec<Connection>,
    },
}

#[derive(Debug)]
pub struct Connected {
    pub connection: Connection,
    pub warnings: Vec<PreflightWarning>,
    /// False when an existing connection was renewed.
    pub created: bool,
    pub initial_sync: InitialSyncState,
    pub base_url: String,
}

/// Where the connection's initial sync stands after a connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InitialSyncState {
    /// Queued now.
    Queued,
    /// Requested, but the queue did not take it: the schedule queues it within minutes.
    Scheduled,
    /// Requested by an earlier connect of the same pair.
    AlreadyRequested,
}

/// The grants a connect stores, and their owners.
struct Grants<'a> {
    portal: &'a PortalId,
    realm: &'a RealmId,
    hubspot: &'a TokenGrant,
    qbo: &'a TokenGrant,
}

/// How many times a connect is rebuilt after a concurrent writer cancelled its transaction.
const CONNECT_ATTEMPTS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the request has no {0} parameter")]
    MissingParameter(&'static str),
    #[error("the {name} parameter is invalid: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    #[error(transparent)]
    State(#[from] StateError),
    #[error("this callback does not belong to the step it was sent to; start again")]
    WrongStep,
    #[error("{} authorization was not given ({error}{})", .provider.label(),
        .description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Denied {
        provider: Provider,
        error: String,
        description: Option<String>,
    },
    #[error(
        "HubSpot portal {0} may not be connected to this deployment (it is not on its allow-list)"
    )]
    PortalNotAllowed(PortalId),
    #[error("you signed in to HubSpot portal {actual}, but this link is for portal {expected}")]
    PortalMismatch {
        expected: PortalId,
        actual: PortalId,
    },
    #[error(
        "you chose QuickBooks company {actual}, but this connection is for company {expected}"
    )]
    RealmMismatch { expected: RealmId, actual: RealmId },
    #[error("{0}")]
    RealmTaken(String),
    #[error(
        "QuickBooks sandbox companies cannot be connected to this deployment (sandbox mode is off)"
    )]
    SandboxCompany,
    #[error("there is no connection {0}")]
    UnknownConnection(ConnectionId),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("the QuickBooks company could not be read: {0}")]
    Company(#[from] ProfileError),
    #[error(transparent)]
    Tokens(#[from] TokenError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl From<RegistryError> for ConnectError {
    fn from(error: RegistryError) -> Self {
        match error {
            RegistryError::RealmTaken { .. } => ConnectError::RealmTaken(error.to_string()),
            RegistryError::Store(e) => ConnectError::Store(e),
        }
    }
}

impl ConnectError {
    /// A stable name for the kind of failure (JSON `category`).
    pub fn category(&self) -> &'static str {
        match self {
            ConnectError::MissingParameter(_) => "missing_parameter",
            ConnectError::InvalidParameter { .. } => "invalid_parameter",
            ConnectError::State(StateError::UnknownOrUsed) => "state_expired_or_used",
            ConnectError::State(StateError::BrowserMismatch) => "browser_mismatch",
            ConnectError::PortalNotAllowed(_) => "portal_not_allowed",
            ConnectError::State(StateError::Store(_)) => "storage_unavailable",
            ConnectError::State(_) | ConnectError::WrongStep => "invalid_state",
            ConnectError::Denied { .. } => "authorization_denied",
            ConnectError::PortalMismatch { .. } => "portal_mismatch",
            ConnectError::RealmMismatch { .. } => "company_mismatch",
            ConnectError::RealmTaken(_) => "company_already_connected",
            ConnectError::SandboxCompany => "sandbox_company_refused",
            ConnectError::UnknownConnection(_) => "unknown_connection",
            ConnectError::Provider(ProviderError::Refused { .. }) => "provider_refused",
            ConnectError::Provider(ProviderError::Unavailable { .. }) => "provider_unavailable",
            ConnectError::Company(_) => "company_unreadable",
            ConnectError::Tokens(_) | ConnectError::Seal(_) => "token_storage_failed",
            ConnectError::Store(_) => "storage_unavailable",
            ConnectError::Queue(_) => "queue_unavailable",
        }
    }

    /// The HTTP status of the page that reports it.
    pub fn http_status(&self) -> u16 {
        match self {
            ConnectError::MissingParameter(_)
            | ConnectError::InvalidParameter { .. }
            | ConnectError::State(StateError::Malformed | StateError::Tampered)
            | ConnectError::WrongStep
            | ConnectError::Denied { .. }
            | ConnectError::Provider(ProviderError::Refused { .. }) => 400,
            ConnectError::State(StateError::UnknownOrUsed) => 410,
            ConnectError::SandboxCompany
            | ConnectError::State(StateError::BrowserMismatch)
            | ConnectError::PortalNotAllowed(_) => 403,
            ConnectError::UnknownConnection(_) => 404,
            ConnectError::PortalMismatch { .. }
            | ConnectError::RealmMismatch { .. }
            | ConnectError::RealmTaken(_) => 409,
            ConnectError::Provider(ProviderError::Unavailable { .. })
            | ConnectError::Company(_) => 502,
            ConnectError::State(StateError::Store(_))
            | ConnectError::Tokens(_)
            | ConnectError::Store(_)
            | ConnectError::Seal(_)
            | ConnectError::Queue(_) => 503,
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self.http_status() {
            502 | 503 => ErrorClass::Retryable,
            _ => ErrorClass::Terminal,
        }
    }
}

/// The parts a flow uses; built once per cold start.
pub struct InstallFlow {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub sealer: Arc<dyn Sealer>,
    pub states: OAuthStates,
    pub tokens: Arc<TokenKeeper>,
    pub providers: Arc<dyn ProviderApis>,
    pub connections: Connections,
    pub settings: SettingsStore,
    pub clock: Clock,
}

impl InstallFlow {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Arc<Config>,
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        sealer: Arc<dyn Sealer>,
        states: OAuthStates,
        tokens: Arc<TokenKeeper>,
        providers: Arc<dyn ProviderApis>,
        clock: Clock,
    ) -> Self {
        Self {
            config,
            store: store.clone(),
            queue,
            sealer,
            states,
            tokens,
            providers,
            connections: Connections::new(store.clone()),
            settings: SettingsStore::new(store),
            clock,
        }
    }

    /// The flows of the install function, over HTTP to both providers.
    pub fn from_services(services: &Services) -> Result<Self, crate::Error> {
        let providers = Arc::new(HttpProviders::new(&services.config)?);
        let states = OAuthStates::new(
            services.store.clone(),
            oauth_state::installation_key(&services.config),
            oauth_state::DEFAULT_TTL,
        );
        Ok(Self::new(
            services.config.clone(),
            services.store.clone(),
            services.queue.clone(),
            services.sealer.clone(),
            states,
            Arc::new(TokenKeeper::from_services(services, providers.clone())),
            providers,
            services.clock.clone(),
        ))
    }

    fn now(&self) -> i64 {
        self.clock.now_seconds()
    }

    /// Starts a flow: the HubSpot consent page. `base_url` is this function's public address.
    pub async fn start(
        &self,
        intent: Intent,
        base_url: &str,
        browser: &BrowserKey,
    ) -> Result<Outcome, ConnectError> {
        let now = self.now();
        if let Intent::Reconnect { connection } | Intent::Disconnect { connection } = &intent {
            if self.connections.get(connection, now).await?.is_none() {
                return Err(ConnectError::UnknownConnection(connection.clone()));
            }
        }
        let pending = Pending::HubSpot {
            intent,
            base_url: base_url.to_owned(),
        };
        let state = self.states.issue(&pending, browser, now).await?;
        let redirect = format!("{base_url}{HUBSPOT_CALLBACK_PATH}");
        Ok(Outcome::Redirect(self.providers.authorize_url(
            Provider::HubSpot,
            &redirect,
            &state,
        )?))
    }

    /// The connection holding a company (Intuit's reconnect URL names the company).
    pub async fn holder_of(&self, realm: &RealmId) -> Result<ConnectionId, ConnectError> {
        self.connections
            .owner_of(realm, self.now())
            .await?
            .ok_or_else(|| ConnectError::InvalidParameter {
                name: "realmId",
                reason: "no connection holds this company".into(),
            })
    }

    /// Takes the step's state (single use, even when the provider reports an error), if it
    /// belongs to this browser.
    async fn take_state(
        &self,
        state: Option<&str>,
        browser: Option<&BrowserKey>,
    ) -> Result<Pending, ConnectError> {
        let state = state
            .filter(|s| !s.is_empty())
            .ok_or(ConnectError::MissingParameter("state"))?;
        Ok(self.states.consume(state, browser, self.now()).await?)
    }

    fn denied(provider: Provider, params: &CallbackParams) -> Option<ConnectError> {
        params.error.as_ref().map(|error| ConnectError::Denied {
            provider,
            error: error.clone(),
            description: params.error_description.clone(),
        })
    }

    fn code(params: &CallbackParams) -> Result<&str, ConnectError> {
        params
            .code
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or(ConnectError::MissingParameter("code"))
    }

    /// HubSpot sent the person back: learn the portal, check it is the expected one, then go on
    /// to QuickBooks (or finish a disconnect).
    pub async fn hubspot_callback(
        &self,
        params: &CallbackParams,
        browser: Option<&BrowserKey>,
    ) -> Result<Outcome, ConnectError> {
        let Pending::HubSpot { intent, base_url } =
            self.take_state(params.state.as_deref(), browser).await?
        else {
            return Err(ConnectError::WrongStep);
        };
        if let Some(denied) = Self::denied(Provider::HubSpot, params) {
            return Err(denied);
        }
        let code = Self::code(params)?;
        let redirect = format!("{base_url}{HUBSPOT_CALLBACK_PATH}");
        let grant = self
            .providers
            .exchange_code(Provider::HubSpot, code, &redirect)
            .await?;
        let portal = self.providers.hubspot_portal(&grant.access_token).await?;
        let allowed = &self.config.hubspot.allowed_portals;
        if !allowed.is_empty() && !allowed.contains(&portal) {
            return Err(ConnectError::PortalNotAllowed(portal));
        }
        // The state was bound to this browser, so from here on a browser is known.
        let browser = browser.ok_or(ConnectError::State(StateError::BrowserMismatch))?;
        let now = self.now();
        let expected = match &intent {
            Intent::Install { portal } => portal.clone(),
            Intent::Uninstall => None,
            Intent::Reconnect { connection } | Intent::Disconnect { connection } => Some(
                self.connections
                    .get(connection, now)
                    .await?
                    .ok_or_else(|| ConnectError::UnknownConnection(connection.clone()))?
                    .portal_id,
            ),
        };
        if let Some(expected) = expected.filter(|expected| *expected != portal) {
            return Err(ConnectError::PortalMismatch {
                expected,
                actual: portal,
            });
        }
        if let Intent::Disconnect { .. } | Intent::Uninstall = &intent {
            return self
                .ask_to_confirm(intent, portal, &grant, base_url, browser)
                .await;
        }
        let hubspot_grant = self.seal_grant(&grant, &portal).await?;
        let pending = Pending::Qbo {
            intent,
            base_url: base_url.clone(),
            portal,
            hubspot_grant,
        };
        let state = self.states.issue(&pending, browser, now).await?;
        let redirect = format!("{base_url}{QBO_CALLBACK_PATH}");
        Ok(Outcome::Redirect(self.providers.authorize_url(
            Provider::Qbo,
            &redirect,
            &state,
        )?))
    }

    /// A disconnect or uninstall acts only on a confirmed POST: the page shows what it will
    /// stop and carries a single-use token bound to this browser.
    async fn ask_to_confirm(
        &self,
        intent: Intent,
        portal: PortalId,
        grant: &TokenGrant,
        base_url: String,
        browser: &BrowserKey,
    ) -> Result<Outcome, ConnectError> {
        let now = self.now();
        let connections = match &intent {
            Intent::Disconnect { connection } => self
                .connections
                .get(connection, now)
                .await?
                .into_iter()
                .collect(),
            _ => {
                let mut live = Vec::new();
                for entry in self.connections.of_portal(&portal, now).await? {
                    if entry.status != ConnectionStatus::Disconnected {
                        live.extend(self.connections.get(&entry.connection_id, now).await?);
                    }
                }
                live
            }
        };
        let pending = Pending::Confirm {
            intent: intent.clone(),
            portal: portal.clone(),
            hubspot_grant: self.seal_grant(grant, &portal).await?,
        };
        let token = self.states.issue(&pending, browser, now).await?;
        Ok(Outcome::Confirm(Confirmation {
            intent,
            portal,
            token,
            connections,
            base_url,
        }))
    }

    /// The person confirmed a disconnect or uninstall (the POST of the confirmation page).
    pub async fn confirm(
        &self,
        token: Option<&str>,
        browser: Option<&BrowserKey>,
    ) -> Result<Outcome, ConnectError> {
        let Pending::Confirm {
            intent,
            portal,
            hubspot_grant,
        } = self.take_state(token, browser).await?
        else {
            return Err(ConnectError::WrongStep);
        };
        let grant = self.open_grant(&hubspot_grant, &portal).await?;
        match intent {
            Intent::Disconnect { connection } => Ok(Outcome::Disconnected(
                self.disconnect(&connection, Some(&grant)).await?,
            )),
            Intent::Uninstall => self.uninstall(portal, &grant).await,
            Intent::Install { .. } | Intent::Reconnect { .. } => Err(ConnectError::WrongStep),
        }
    }

    /// QuickBooks sent the person back with the company they chose: write the connection.
    pub async fn qbo_callback(
        &self,
        params: &CallbackParams,
        browser: Option<&BrowserKey>,
    ) -> Result<Outcome, ConnectError> {
        let Pending::Qbo {
            intent,
            base_url,
            portal,
            hubspot_grant,
        } = self.take_state(params.state.as_deref(), browser).await?
        else {
            return Err(ConnectError::WrongStep);
        };
        if let Some(denied) = Self::denied(Provider::Qbo, params) {
            return Err(denied);
        }
        let code = Self::code(params)?;
        let realm = params
            .realm_id
            .as_deref()
            .ok_or(ConnectError::MissingParameter("realmId"))
            .and_then(|raw| {
                RealmId::parse(raw).map_err(|e| ConnectError::InvalidParameter {
                    name: "realmId",
                    reason: e.to_string(),
                })
            })?;
        let now = self.now();
        let id = ConnectionId::for_pair(&portal, &realm);
        // The portal was checked at the HubSpot step, so a reconnect into the same company is
        // exactly a reconnect of connection `id`.
        if let Intent::Reconnect { connection } = &intent {
            if *connection != id {
                let expected = self
                    .connections
                    .get(connection, now)
                    .await?
                    .ok_or_else(|| ConnectError::UnknownConnection(connection.clone()))?;
                return Err(ConnectError::RealmMismatch {
                    expected: expected.realm_id,
                    actual: realm,
                });
            }
        }
        // Refuse a company held by another connection before anything is exchanged.
        self.refuse_if_held_elsewhere(&realm, &id, now).await?;
        let redirect = format!("{base_url}{QBO_CALLBACK_PATH}");
        let qbo_grant = self
            .providers
            .exchange_code(Provider::Qbo, code, &redirect)
            .await?;
        let (company_info, preferences) = self
            .providers
            .qbo_company(&realm, &qbo_grant.access_token)
            .await?;
        let company = read_profile(&company_info, &preferences)?;
        if is_sandbox_company(&company, self.config.qbo.sandbox_environment)
            && !self.config.qbo.allow_sandbox_companies
        {
            return Err(ConnectError::SandboxCompany);
        }
        let hubspot_grant = self.open_grant(&hubspot_grant, &portal).await?;
        let warnings = preflight_warnings(&company);
        let preflight = Preflight {
            checked_at: now,
            company: company.clone(),
            warnings: warnings.clone(),
        };
        let grants = Grants {
            portal: &portal,
            realm: &realm,
            hubspot: &hubspot_grant,
            qbo: &qbo_grant,
        };
        let (connection, created, request) = self
            .write_connection(
                &id,
                &grants,
                &company.company_name,
                &preflight,
                &base_url,
                now,
            )
            .await?;
        // Everything is stored. What follows may fail without undoing it: the schedule queues an
        // initial sync that could not be queued here.
        let initial_sync = match request {
            None => InitialSyncState::AlreadyRequested,
            Some(request) => {
                match initial_sync::queue(&*self.store, &*self.queue, &request, 1, now).await {
                    Ok(()) => InitialSyncState::Queued,
                    Err(error) => {
                        tracing::warn!(connection = %id, %error,
                            "initial sync not queued yet; the schedule queues it");
                        InitialSyncState::Scheduled
                    }
                }
            }
        };
        match self
            .connections
            .reactivate(&portal, Provider::HubSpot, now)
            .await
        {
            Ok(others) if !others.is_empty() => {
                tracing::info!(portal = %portal, reactivated = others.len(),
                    "connections blocked by the portal's refused tokens are active again");
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(portal = %portal, %error, "could not reactivate the portal's other connections")
            }
        }
        tracing::info!(connection = %id, created, "connection active");
        Ok(Outcome::Connected(Connected {
            connection,
            warnings,
            created,
            initial_sync,
            base_url,
        }))
    }

    async fn refuse_if_held_elsewhere(
        &self,
        realm: &RealmId,
        id: &ConnectionId,
        now: i64,
    ) -> Result<(), ConnectError> {
        let Some(holder) = self.connections.owner_of(realm, now).await? else {
            return Ok(());
        };
        if holder == *id {
            return Ok(());
        }
        let other = self.connections.get(&holder, now).await?;
        Err(ConnectError::RealmTaken(match other {
            Some(other) => format!(
                "this QuickBooks company is already connected to HubSpot portal {}",
                other.portal_id
            ),
            None => "this QuickBooks company is already connected elsewhere".into(),
        }))
    }

    /// Writes the whole connection in one transaction: the company claim, the record and its
    /// portal entry, both owners' tokens, the pre-flight record, default settings where there are
    /// none, and (the first time) the initial-sync request. A concurrent writer makes the
    /// transaction fail as a whole; it is then read and built again. Returns the connection,
    /// whether it is new, and the initial-sync request to queue (version 1) if one was made.
    async fn write_connection(
        &self,
        id: &ConnectionId,
        grants: &Grants<'_>,
        company_name: &str,
        preflight: &Preflight,
        install_url: &str,
        now: i64,
    ) -> Result<(Connection, bool, Option<InitialSyncRequest>), ConnectError> {
        for _ in 0..CONNECT_ATTEMPTS {
            let existing = self.connections.get_versioned(id, now).await?;
            let expected = existing.as_ref().map(|v| v.version);
            let created = existing.is_none();
            let mut connection = match existing {
                Some(existing) => existing.value,
                None => Connection {
                    id: id.clone(),
                    portal_id: grants.portal.clone(),
                    realm_id: grants.realm.clone(),
                    status: ConnectionStatus::Active,
                    reconnect_provider: None,
                    company_name: company_name.to_owned(),
                    connected_at: now,
                    updated_at: now,
                    disconnected_at: None,
                    initial_sync_requested_at: None,
                    install_url: None,
                },
            };
            connection.install_url = Some(install_url.to_owned());
            connection.status = ConnectionStatus::Active;
            connection.reconnect_provider = None;
            connection.company_name = company_name.to_owned();
            connection.updated_at = now;
            connection.disconnected_at = None;
            let setup_day = utc_date(connection.connected_at).ok_or_else(|| {
                StoreError::Encoding(format!(
                    "connection {id} has an impossible connected_at {}",
                    connection.connected_at
                ))
            })?;
            let (settings_writes, settings) = self
                .settings
                .default_writes(id, &default_settings(setup_day), now)
                .await?;
            let request =
                connection
                    .initial_sync_requested_at
                    .is_none()
                    .then(|| InitialSyncRequest {
                        connection_id: id.clone(),
                        objects: settings
                            .iter()
                            .filter(|s| s.enabled)
                            .map(|s| (s.object, s.direction))
                            .collect(),
                        requested_at: now,
                        queued_at: None,
                    });
            if request.is_some() {
                connection.initial_sync_requested_at = Some(now);
            }
            let mut writes = self
                .connections
                .connect_writes(&connection, expected, now)
                .await?;
            writes.push(
                self.tokens
                    .grant_write(&TokenOwner::Portal(grants.portal.clone()), grants.hubspot)
                    .await?,
            );
            writes.push(
                self.tokens
                    .grant_write(&TokenOwner::Realm(grants.realm.clone()), grants.qbo)
                    .await?,
            );
            writes.push(self.connections.preflight_write(id, preflight)?);
            writes.extend(settings_writes);
            if let Some(request) = &request {
                writes.push(request.write()?);
            }
            match self.store.transact(writes).await? {
                TransactOutcome::Written => return Ok((connection, created, request)),
                TransactOutcome::Conflict { .. } => {
                    // Someone else wrote one of these items: read again, and refuse if the
                    // company was claimed elsewhere meanwhile.
                    self.refuse_if_held_elsewhere(grants.realm, id, now).await?;
                }
            }
        }
        Err(ConnectError::Store(StoreError::Unavailable(
            "the connection kept changing while it was being written; try again".into(),
        )))
    }

    /// C4: stop the connection at once, then revoke its tokens at both providers and delete them.
    /// HubSpot's tokens belong to the portal, so they go only with its last connection. Safe to
    /// repeat: a second run revokes whatever the first could not.
    pub async fn disconnect(
        &self,
        id: &ConnectionId,
        fresh_hubspot_grant: Option<&TokenGrant>,
    ) -> Result<Connection, ConnectError> {
        let disconnector = self.disconnector();
        let connection = disconnector
            .stop(id, None)
            .await?
            .ok_or_else(|| ConnectError::UnknownConnection(id.clone()))?;
        disconnector
            .revoke(&connection, fresh_hubspot_grant.map(|g| &g.refresh_token))
            .await?;
        tracing::info!(connection = %id, "connection disconnected");
        Ok(connection)
    }

    pub fn disconnector(&self) -> Disconnector {
        Disconnector::new(
            self.store.clone(),
            self.tokens.clone(),
            self.providers.clone(),
            self.clock.clone(),
        )
    }

    /// C4 for the whole portal: the app is uninstalled at HubSpot first (that needs a live
    /// token), then every connection of the portal is disconnected.
    async fn uninstall(
        &self,
        portal: PortalId,
        grant: &TokenGrant,
    ) -> Result<Outcome, ConnectError> {
        self.providers
            .uninstall_hubspot_app(&grant.access_token)
            .await?;
        let now = self.now();
        let mut disconnected = Vec::new();
        for entry in self.connections.of_portal(&portal, now).await? {
            if entry.status != ConnectionStatus::Disconnected {
                disconnected.push(self.disconnect(&entry.connection_id, Some(grant)).await?);
            }
        }
        tracing::info!(portal = %portal, connections = disconnected.len(), "app uninstalled");
        Ok(Outcome::Uninstalled {
            portal,
            connections: disconnected,
        })
    }

    async fn seal_grant(
        &self,
        grant: &TokenGrant,
        portal: &PortalId,
    ) -> Result<String, ConnectError> {
        let secrets = GrantSecrets {
            access_token: grant.access_token.expose_secret().to_owned(),
            refresh_token: grant.refresh_token.expose_secret().to_owned(),
            expires_at: self.now() + grant.expires_in,
        };
        let plaintext = serde_json::to_vec(&secrets).map_err(|e| SealError(e.to_string()))?;
        Ok(self
            .sealer
            .seal(&plaintext, &waiting_grant_owner(portal))
            .await?)
    }

    async fn open_grant(
        &self,
        sealed: &str,
        portal: &PortalId,
    ) -> Result<TokenGrant, ConnectError> {
        let plaintext = self
            .sealer
            .open(sealed, &waiting_grant_owner(portal))
            .await?;
        let secrets: GrantSecrets = serde_json::from_slice(&plaintext)
            .map_err(|_| SealError("the sealed grant is unreadable".into()))?;
        Ok(TokenGrant {
            access_token: SecretString::from(secrets.access_token),
            refresh_token: SecretString::from(secrets.refresh_token),
            // What is left of its life now, not what it had when it was issued.
            expires_in: (secrets.expires_at - self.now()).max(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_a_category_a_status_and_a_class() {
        let portal = |p: &str| PortalId::parse(p).unwrap();
        let cases: Vec<(ConnectError, &str, u16, ErrorClass)> = vec![
            (
                ConnectError::MissingParameter("state"),
                "missing_parameter",
                400,
                ErrorClass::Terminal,
            ),
            (
                ConnectError::State(StateError::Tampered),
                "invalid_state",
                400,
                ErrorClass::Terminal,
            ),
            (
                ConnectError::State(StateError::UnknownOrUsed),
                "state_expired_or_used",
                410,
                ErrorClass::Terminal,
            ),
            (
                ConnectError::WrongStep,
                "invalid_state",
                400,
                ErrorClass::Terminal,
            ),
            (
                ConnectError::Denied {
                    provider: Provider::Qbo,
                    error: "access_denied".into(),
                    description: None,
                },
                "authorization_denied",
                400,
                ErrorClass::Terminal,
            ),
            (
                ConnectError::PortalMismatch {
                    expected: portal("1"),
                    actual: portal("2"),
                },
                "portal_mismatch",
                409,
                ErrorClass::Terminal,
            ),
            (
                ConnectError::RealmTaken("taken".into()),
                "company_already_connected",
                409,
                ErrorClass::Terminal,
            ),
            (
                ConnectError::SandboxCompany,
                "sandbox_company_refused",
                403,
                ErrorClass::Terminal,
            ),
            (
                ConnectError::Provider(ProviderError::Refused {
                    provider: Provider::Qbo,
                    reason: "invalid_grant".into(),
                }),
                "provider_refused",
                400,
                ErrorClass::Terminal,
            ),
            (
                ConnectError::Provider(ProviderError::Unavailable {
                    provider: Provider::HubSpot,
                    reason: "502".into(),
                }),
                "provider_unavailable",
                502,
                ErrorClass::Retryable,
            ),
            (
                ConnectError::Queue(QueueError::PartlyUnsent {
                    failed: 1,
                    total: 3,
                    report: Default::default(),
                }),
                "queue_unavailable",
                503,
                ErrorClass::Retryable,
            ),
        ];
        for (error, category, status, class) in cases {
            assert_eq!(
                (error.category(), error.http_status(), error.class()),
                (category, status, class),
                "{error}"
            );
        }
    }

    #[test]
    fn callback_parameters_never_print_the_code_or_state() {
        let params = CallbackParams {
            code: Some("AB11-secret-code".into()),
            state: Some("nonce.tag-secret".into()),
            realm_id: Some("9130350000000001".into()),
            error: None,
            error_description: None,
        };
        let printed = format!("{params:?}");
        assert!(!printed.contains("secret"), "{printed}");
        assert!(printed.contains("9130350000000001"), "{printed}");
    }

    #[test]
    fn a_denial_names_the_provider_and_its_reason() {
        let denied = ConnectError::Denied {
            provider: Provider::HubSpot,
            error: "access_denied".into(),
            description: Some("The user cancelled".into()),
        };
        assert_eq!(
            denied.to_string(),
            "HubSpot authorization was not given (access_denied: The user cancelled)"
        );
    }
}

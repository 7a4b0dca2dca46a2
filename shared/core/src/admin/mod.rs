//! The admin function (V1–V5, S1–S5): the connections, each object's counts, the records with
//! their status, reason and history, the CSV export, retries, the sync settings with their
//! preview, the workflow-action runs and the error categories explained — as a JSON API
//! (`api`) and as pages for people (`pages`), both over the same service methods here.
//!
//! Who may call it: an operator with the deployment's operator key (`Authorization: Bearer
//! <key>`, compared in constant time; without a configured key only people can sign in), or a
//! person signed in with HubSpot (`session`), who sees only the connections of the portals they
//! signed in to. Another portal's connection answers as if it did not exist.

pub mod api;
pub mod chart;
pub mod export;
pub mod pages;
pub mod preview;
pub mod records;
pub mod session;

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use crate::actions::settings::{ActionSettings, ActionSettingsStore};
use crate::clock::Clock;
use crate::connection::oauth_state::{self, OAuthStates};
use crate::connection::registry::{Connection, ConnectionStatus, Connections};
use crate::domain::{ConnectionId, ObjectKind, Provider};
use crate::http::{cookies, error_response};
use crate::ledger::{Ledger, LedgerError, LinkStatus, RetryOne};
use crate::oauth::HttpProviders;
use crate::runtime::Services;
use crate::settings::{ObjectSettings, SettingsError, SettingsStore};
use crate::status::categories::explain;
use crate::store::{keys, Query as StoreQuery, Store, StoreError, Table};
use crate::sync::engine::Engine;
use crate::sync::settings::SyncSettings;
use records::RecordFilter;
use session::{Session, SessionId, Sessions, SignIn, SESSION_COOKIE};

/// How many workflow-action runs the runs list shows.
const RECENT_RUNS: u32 = 100;

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Caller {
    /// Holds the operator key: every connection.
    Operator,
    /// Signed in with HubSpot: the connections of their portals.
    Person(Session),
}

impl Caller {
    fn may_see(&self, connection: &Connection) -> bool {
        match self {
            Caller::Operator => true,
            Caller::Person(session) => session.may_see(&connection.portal_id),
        }
    }
}

pub struct AdminService {
    operator_key: Option<SecretString>,
    action_settings: ActionSettingsStore,
    connections: Connections,
    ledger: Ledger,
    settings: SettingsStore,
    sync_settings: SyncSettings,
    store: Arc<dyn Store>,
    clock: Clock,
    pub(crate) sign_in: SignIn,
    /// The sync engine, for the preview's reads and decisions (it writes nothing there).
    engine: Option<Arc<Engine>>,
    /// The install function's address, for reconnect links (`None`: not configured).
    install_url: Option<String>,
}

/// An error answer: its status, category, a sentence, and each field's problem when settings
/// were refused. The API sends it as JSON; a page shows it in words.
#[derive(Debug, Clone)]
pub struct Failed {
    pub status: StatusCode,
    pub category: String,
    pub message: String,
    pub fields: Vec<(String, String)>,
}

impl IntoResponse for Failed {
    fn into_response(self) -> Response {
        if self.fields.is_empty() {
            return error_response(self.status, &self.category, self.message);
        }
        let fields: Vec<Value> = self
            .fields
            .iter()
            .map(|(field, message)| json!({"field": field, "message": message}))
            .collect();
        (
            self.status,
            Json(json!({
                "status": "error",
                "category": self.category,
                "message": self.message,
                "fields": fields,
            })),
        )
            .into_response()
    }
}

/// What a service method answers: the JSON the API sends and the page renders, or an error.
pub type Outcome = Result<Value, Failed>;

pub(crate) fn failed(status: StatusCode, category: &str, message: impl Into<String>) -> Failed {
    Failed {
        status,
        category: category.to_owned(),
        message: message.into(),
        fields: Vec::new(),
    }
}

pub(crate) fn store_error(error: StoreError) -> Failed {
    failed(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        error.to_string(),
    )
}

fn ledger_error(error: LedgerError) -> Failed {
    match error {
        LedgerError::Store(e) => store_error(e),
        LedgerError::Conflict => failed(
            StatusCode::CONFLICT,
            "changed",
            "the record changed meanwhile: read it again",
        ),
    }
}

pub(crate) fn object_of(text: &str) -> Result<ObjectKind, Failed> {
    ObjectKind::ALL
        .into_iter()
        .find(|o| o.as_str() == text)
        .ok_or_else(|| {
            failed(
                StatusCode::NOT_FOUND,
                "unknown_object",
                format!("{text:?} is not one of contact, product, invoice"),
            )
        })
}

pub(crate) fn side_of(text: &str) -> Result<Provider, Failed> {
    match text {
        "hubspot" => Ok(Provider::HubSpot),
        "qbo" | "quickbooks" => Ok(Provider::Qbo),
        other => Err(failed(
            StatusCode::NOT_FOUND,
            "unknown_side",
            format!("{other:?} is not hubspot or qbo"),
        )),
    }
}

/// `422 invalid_settings` with each field's problem.
pub(crate) fn invalid_fields<'a>(fields: impl Iterator<Item = (&'a str, &'a str)>) -> Failed {
    Failed {
        fields: fields.map(|(f, m)| (f.to_owned(), m.to_owned())).collect(),
        ..failed(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_settings",
            "some settings are not valid",
        )
    }
}

fn settings_error(object: ObjectKind) -> impl Fn(SettingsError) -> Failed {
    move |e| match e {
        SettingsError::Invalid(fields) => invalid_fields(
            fields
                .iter()
                .map(|f| (f.field.as_str(), f.message.as_str())),
        ),
        SettingsError::Changed => failed(
            StatusCode::CONFLICT,
            "changed",
            format!("the {object} settings were changed meanwhile: read them again"),
        ),
        SettingsError::Store(e) => store_error(e),
    }
}

pub(crate) fn no_settings(object: ObjectKind) -> Failed {
    failed(
        StatusCode::NOT_FOUND,
        "no_settings",
        format!("the connection has no {object} settings (add the recommended ones to sync it)"),
    )
}

/// What a retry asks for: one record, or every failing record of a category (`"*"`: all).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct RetryRequest {
    pub side: Option<String>,
    pub id: Option<String>,
    pub category: Option<String>,
}

impl AdminService {
    /// The admin function over the deployment's services, with the sync engine for the
    /// preview; one set of provider clients serves the sign-in and the engine.
    pub fn from_services(services: &Services) -> Result<Self, crate::Error> {
        let providers = Arc::new(HttpProviders::new(&services.config)?);
        let (engine, _) = Engine::with_providers(services, providers.clone())?;
        Ok(Self::new(services, providers, Some(Arc::new(engine))))
    }

    /// The admin function over these parts; without `engine` there is no preview.
    pub fn new(
        services: &Services,
        providers: Arc<HttpProviders>,
        engine: Option<Arc<Engine>>,
    ) -> Self {
        Self {
            operator_key: services.config.admin_operator_key.clone(),
            action_settings: ActionSettingsStore::new(services.store.clone()),
            connections: Connections::new(services.store.clone()),
            ledger: Ledger::new(services.store.clone()),
            settings: SettingsStore::new(services.store.clone()),
            sync_settings: SyncSettings::new(services.store.clone()),
            store: services.store.clone(),
            clock: services.clock.clone(),
            sign_in: SignIn {
                states: OAuthStates::new(
                    services.store.clone(),
                    oauth_state::installation_key(&services.config),
                    oauth_state::DEFAULT_TTL,
                ),
                providers,
                sessions: Sessions::new(services.store.clone()),
                allowed_portals: services.config.hubspot.allowed_portals.clone(),
            },
            engine,
            install_url: services.config.public_base_url.clone(),
        }
    }

    pub(crate) fn now(&self) -> i64 {
        self.clock.now_seconds()
    }

    /// The caller: the operator key when one is sent, else the browser's session.
    pub async fn caller(&self, headers: &HeaderMap) -> Result<Caller, Failed> {
        if let Some(given) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
            return self.operator(given);
        }
        match self.session(headers).await? {
            Some(session) => Ok(Caller::Person(session)),
            None => Err(failed(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "sign in with HubSpot (open the admin page), or send the operator key as `Authorization: Bearer <key>`",
            )),
        }
    }

    /// The caller of a change: as [`Self::caller`], and a person's request must carry their
    /// session's CSRF token (`X-CSRF-Token`, or the form's `csrf`).
    pub async fn changer(
        &self,
        headers: &HeaderMap,
        form_token: Option<&str>,
    ) -> Result<Caller, Failed> {
        let caller = self.caller(headers).await?;
        if let Caller::Person(session) = &caller {
            let given = headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .or(form_token)
                .unwrap_or_default();
            if !session.csrf_matches(given) {
                return Err(failed(
                    StatusCode::FORBIDDEN,
                    "csrf_failed",
                    "this change did not come from the admin page: reload the page and try again",
                ));
            }
        }
        Ok(caller)
    }

    fn operator(&self, authorization: &str) -> Result<Caller, Failed> {
        let Some(key) = &self.operator_key else {
            return Err(failed(
                StatusCode::UNAUTHORIZED,
                "admin_closed",
                "operator access is closed: set the deployment's operator key (AdminOperatorKey) to open it",
            ));
        };
        let given = authorization.strip_prefix("Bearer ").unwrap_or_default();
        let expected = key.expose_secret().as_bytes();
        if !expected.is_empty() && bool::from(given.as_bytes().ct_eq(expected)) {
            Ok(Caller::Operator)
        } else {
            Err(failed(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "send the operator key as `Authorization: Bearer <key>`",
            ))
        }
    }

    /// This function's public address, as the request reached it.
    pub(crate) fn base_url(headers: &HeaderMap) -> Result<String, Failed> {
        crate::http::request_origin(headers).ok_or_else(|| {
            failed(
                StatusCode::BAD_REQUEST,
                "missing_host",
                "the request names no Host",
            )
        })
    }

    pub(crate) fn session_id(headers: &HeaderMap) -> Option<SessionId> {
        let base = Self::base_url(headers).ok()?;
        cookies::read(headers, SESSION_COOKIE, &base).and_then(SessionId::parse)
    }

    async fn session(&self, headers: &HeaderMap) -> Result<Option<Session>, Failed> {
        let Some(id) = Self::session_id(headers) else {
            return Ok(None);
        };
        self.sign_in
            .sessions
            .get(&id, self.now())
            .await
            .map_err(store_error)
    }

    /// A connection the caller may see (any other answers as unknown).
    pub async fn connection(&self, caller: &Caller, id: &str) -> Result<Connection, Failed> {
        let not_found = || {
            failed(
                StatusCode::NOT_FOUND,
                "unknown_connection",
                format!("there is no connection {id:?}"),
            )
        };
        let id = ConnectionId::parse(id).map_err(|_| not_found())?;
        self.connections
            .get(&id, self.now())
            .await
            .map_err(store_error)?
            .filter(|c| caller.may_see(c))
            .ok_or_else(not_found)
    }

    fn connection_json(&self, c: &Connection) -> Value {
        // The configured public address, else the one the connection was made through.
        let reconnect = (c.status == ConnectionStatus::ReconnectRequired)
            .then(|| {
                self.install_url
                    .as_ref()
                    .or(c.install_url.as_ref())
                    .map(|base| {
                        format!(
                            "{}/reconnect?connection={}",
                            base.trim_end_matches('/'),
                            c.id
                        )
                    })
            })
            .flatten();
        json!({
            "connection_id": c.id,
            "portal_id": c.portal_id,
            "realm_id": c.realm_id,
            "company_name": c.company_name,
            "status": c.status.as_str(),
            "reconnect_provider": c.reconnect_provider.map(|p| p.as_str()),
            "reconnect_url": reconnect,
            "connected_at": c.connected_at,
        })
    }

    /// The connections the caller may see, with their status.
    pub async fn list_connections(&self, caller: &Caller) -> Outcome {
        let mut all = Vec::new();
        for status in [
            ConnectionStatus::Active,
            ConnectionStatus::ReconnectRequired,
            ConnectionStatus::Disconnected,
        ] {
            all.extend(
                self.connections
                    .with_status(status, self.now())
                    .await
                    .map_err(store_error)?
                    .into_iter()
                    .filter(|c| caller.may_see(c)),
            );
        }
        all.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        Ok(
            json!({ "connections": all.iter().map(|c| self.connection_json(c)).collect::<Vec<_>>() }),
        )
    }

    /// V1: each object's records by status, whether it syncs, and its last 24 hours.
    pub async fn overview(&self, caller: &Caller, id: &str) -> Outcome {
        let connection = self.connection(caller, id).await?;
        let now = self.now();
        let mut objects = Vec::new();
        for object in ObjectKind::ALL {
            let counts = self
                .ledger
                .counts(&connection.id, object, now)
                .await
                .map_err(store_error)?;
            let settings = self
                .settings
                .get(&connection.id, object, now)
                .await
                .map_err(store_error)?;
            let mut by_status = serde_json::Map::new();
            for status in LinkStatus::ALL {
                by_status.insert(
                    status.as_str().into(),
                    json!(counts.get(&status).copied().unwrap_or(0)),
                );
            }
            let changed = self
                .ledger
                .changed_since(&connection.id, object, now - chart::WINDOW_SECONDS, now)
                .await
                .map_err(store_error)?;
            objects.push(json!({
                "object": object.as_str(),
                "configured": settings.is_some(),
                "enabled": settings.as_ref().is_some_and(|s| s.enabled),
                "direction": settings.as_ref().map(|s| s.direction),
                "counts": by_status,
                "last_24h": chart::hourly(&changed, now),
            }));
        }
        Ok(json!({"connection": self.connection_json(&connection), "objects": objects}))
    }

    /// V1, V3: the records of one object, filtered and paged.
    pub async fn records(
        &self,
        caller: &Caller,
        id: &str,
        object: &str,
        filter: &RecordFilter,
    ) -> Outcome {
        let connection = self.connection(caller, id).await?;
        let object = object_of(object)?;
        let mut entries = Vec::new();
        for status in filter.statuses().map_err(invalid_filter)? {
            entries.extend(
                self.ledger
                    .with_status(&connection.id, object, status, self.now())
                    .await
                    .map_err(store_error)?,
            );
        }
        let (rows, next, total) = records::page(entries, filter).map_err(invalid_filter)?;
        Ok(json!({"records": rows, "next": next, "total": total}))
    }

    /// V2, V3: one record, its activity, and its failure explained.
    pub async fn record(
        &self,
        caller: &Caller,
        id: &str,
        object: &str,
        side: &str,
        record: &str,
    ) -> Outcome {
        let connection = self.connection(caller, id).await?;
        let object = object_of(object)?;
        let side = side_of(side)?;
        let stored = self
            .ledger
            .find(
                &connection.id,
                object,
                side,
                std::slice::from_ref(&record.to_owned()),
                self.now(),
            )
            .await
            .map_err(store_error)?
            .remove(record)
            .ok_or_else(|| unknown_record(side, record))?;
        let explanation = stored
            .entry
            .failure
            .as_ref()
            .and_then(|f| explain(&f.category));
        Ok(json!({
            "record": records::RecordRow::of(&stored.entry),
            "activity": stored.entry.activity,
            "failure": stored.entry.failure,
            "explanation": explanation,
        }))
    }

    /// V5: a failing record, or every failing record of a category, tried again now.
    pub async fn retry(
        &self,
        caller: &Caller,
        id: &str,
        object: &str,
        request: RetryRequest,
    ) -> Outcome {
        let connection = self.connection(caller, id).await?;
        let object = object_of(object)?;
        let now = self.now();
        match (request.side, request.id, request.category) {
            (Some(side), Some(record), None) => {
                let side = side_of(&side)?;
                match self
                    .ledger
                    .retry_one(&connection.id, object, side, &record, now)
                    .await
                    .map_err(ledger_error)?
                {
                    RetryOne::Retried => Ok(json!({"retried": 1})),
                    RetryOne::NotFailing(status) => Err(failed(
                        StatusCode::CONFLICT,
                        "not_failing",
                        format!(
                            "record {record} is {}, not failing: there is nothing to retry",
                            status.as_str()
                        ),
                    )),
                    RetryOne::Unknown => Err(unknown_record(side, &record)),
                }
            }
            (None, None, Some(category)) => {
                let only = (category != "*").then_some(category.as_str());
                let retried = self
                    .ledger
                    .retry_failures(&connection.id, object, only, now)
                    .await
                    .map_err(ledger_error)?;
                Ok(json!({ "retried": retried }))
            }
            _ => Err(failed(
                StatusCode::BAD_REQUEST,
                "invalid_retry",
                "send {\"side\": \"hubspot\"|\"qbo\", \"id\": \"…\"} for one record, or {\"category\": \"…\"} (\"*\": every category)",
            )),
        }
    }

    /// S1: one object's settings, with the version an edit names.
    pub async fn read_settings(&self, caller: &Caller, id: &str, object: &str) -> Outcome {
        let connection = self.connection(caller, id).await?;
        let object = object_of(object)?;
        let (settings, version) = self
            .settings
            .get_versioned(&connection.id, object, self.now())
            .await
            .map_err(store_error)?
            .ok_or_else(|| no_settings(object))?;
        Ok(json!({"settings": settings, "version": version}))
    }

    /// S1–S5: replaces one object's settings, checked field by field. With `expected` (the
    /// version read), a change made meanwhile by someone else is refused instead of lost.
    pub async fn write_settings(
        &self,
        caller: &Caller,
        id: &str,
        object: &str,
        mut wanted: ObjectSettings,
        expected: Option<u64>,
    ) -> Outcome {
        let connection = self.connection(caller, id).await?;
        let object = object_of(object)?;
        wanted.object = object;
        let (saved, version) = self
            .sync_settings
            .replace(&connection.id, wanted, expected, self.now())
            .await
            .map_err(settings_error(object))?
            .ok_or_else(|| no_settings(object))?;
        Ok(json!({ "settings": saved, "version": version }))
    }

    /// S1: forgets one object's settings and where its reading stood (the object stops
    /// syncing; its ledger stays, so adding it again links instead of duplicating).
    pub async fn delete_settings(&self, caller: &Caller, id: &str, object: &str) -> Outcome {
        let connection = self.connection(caller, id).await?;
        let object = object_of(object)?;
        self.sync_settings
            .delete(&connection.id, object, self.now())
            .await
            .map_err(store_error)?;
        Ok(json!({ "deleted": object.as_str() }))
    }

    /// S1: adds an object without settings back with the recommended ones.
    pub async fn add_recommended(&self, caller: &Caller, id: &str, object: &str) -> Outcome {
        let connection = self.connection(caller, id).await?;
        let object = object_of(object)?;
        let today = self.clock.today();
        let added = self
            .sync_settings
            .add_with_defaults(&connection.id, object, today, self.now())
            .await
            .map_err(settings_error(object))?;
        if !added {
            return Err(failed(
                StatusCode::CONFLICT,
                "has_settings",
                format!("the {object} sync already has settings: edit them instead"),
            ));
        }
        self.read_settings(caller, id, object.as_str()).await
    }

    /// The portal's recent workflow-action runs, with their outcome.
    pub async fn action_runs(&self, caller: &Caller, id: &str) -> Outcome {
        let connection = self.connection(caller, id).await?;
        let query = StoreQuery::partition(keys::action_runs::partition(&connection.portal_id))
            .limit(RECENT_RUNS);
        let page = self
            .store
            .query(Table::ActionRuns, query, self.now())
            .await
            .map_err(store_error)?;
        let runs: Vec<Value> = page
            .items
            .iter()
            .filter_map(|item| item.to_value::<Value>().ok())
            .collect();
        Ok(json!({ "runs": runs }))
    }

    /// The connection's workflow-action settings (defaults when none were saved).
    pub async fn read_action_settings(&self, caller: &Caller, id: &str) -> Outcome {
        let connection = self.connection(caller, id).await?;
        let settings = self
            .action_settings
            .get(&connection.id, self.now())
            .await
            .map_err(store_error)?;
        Ok(json!({ "settings": settings }))
    }

    /// Replaces the connection's workflow-action settings, checked field by field.
    pub async fn write_action_settings(
        &self,
        caller: &Caller,
        id: &str,
        settings: ActionSettings,
    ) -> Outcome {
        let connection = self.connection(caller, id).await?;
        let problems = settings.problems();
        if !problems.is_empty() {
            return Err(invalid_fields(
                problems.iter().map(|(f, m)| (f.as_str(), m.as_str())),
            ));
        }
        self.action_settings
            .put(&connection.id, &settings)
            .await
            .map_err(store_error)?;
        Ok(json!({ "settings": settings }))
    }
}

pub(crate) fn invalid_filter(e: records::FilterError) -> Failed {
    failed(StatusCode::BAD_REQUEST, "invalid_filter", e.to_string())
}

fn unknown_record(side: Provider, record: &str) -> Failed {
    failed(
        StatusCode::NOT_FOUND,
        "unknown_record",
        format!(
            "no {} record {record} is known to this connection",
            side.as_str()
        ),
    )
}

/// The admin function's routes: the pages, the sign-in and the JSON API.
pub fn router(service: Arc<AdminService>) -> Router {
    api::routes()
        .merge(pages::routes())
        .fallback(|| async { failed(StatusCode::NOT_FOUND, "not_found", "no such admin path") })
        .with_state(service)
}

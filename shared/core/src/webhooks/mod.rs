//! Change notifications from HubSpot (app webhooks, v3-signed) and QuickBooks (CloudEvents or
//! legacy, `intuit-signature`). A notification is verified over its raw body, read, and turned
//! into nudges (an early poll of its connection and object, coalesced per window) or, for an
//! uninstall, into a stopped connection whose tokens the poll queue revokes. It never calls a
//! provider and never writes data: the poll stays the one source of truth, so a lost,
//! repeated, reordered or forged notification cannot change a record.

pub mod notices;
pub mod nudge;
pub mod subscriptions;

use std::sync::Arc;
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::connection::lifecycle;
use crate::connection::registry::{ConnectionStatus, Connections};
use crate::connection::tokens::{self, TokenOwner};
use crate::domain::{ConnectionId, PortalId, Provider, RealmId};
use crate::error_class::ErrorClass;
use crate::hubspot::signature::{self, SignatureError, SignatureHeaders, SignedRequest};
use crate::queue::messages::{LifecycleTask, PollQueueTask};
use crate::queue::{OutgoingMessage, Queue, QueueError, QueueName};
use crate::runtime::Services;
use crate::store::keys::connections as keys;
use crate::store::{ClaimOutcome, Item, ItemKey, Store, StoreError, Table};
use notices::{MalformedNotification, Notice, Notices};
use nudge::{NudgeError, Nudged, Nudger};

/// The largest notification taken (HubSpot sends at most 100 events a request; QuickBooks a few
/// per entity changed).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// A taken HubSpot notification's signature is remembered past its timestamp window on both
/// sides: within it, the same signature again is a replay (HubSpot's own retries are signed
/// anew).
const HUBSPOT_SEEN_SECONDS: i64 = 2 * signature::MAX_TIMESTAMP_SKEW_MS / 1000 + 60;
/// QuickBooks signs only the body and sends the same body again on every retry, for days: a
/// body seen within this long is acknowledged and dropped, and events older than this are
/// acknowledged and ignored (stale).
pub const QBO_SEEN_SECONDS: i64 = 3 * 24 * 3600;
/// Answer well inside QuickBooks' 3 seconds (HubSpot waits longer): past this, the answer is
/// 503 and the provider sends the notification again.
const ANSWER_WITHIN: Duration = Duration::from_millis(2500);
/// An uninstall counts against tokens granted up to this long after it (clocks differ).
const UNINSTALL_CLOCK_SKEW_SECONDS: i64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("notifications of at most {MAX_BODY_BYTES} bytes are taken")]
    TooLarge,
    #[error("the request carries no {0} signature")]
    SignatureMissing(&'static str),
    #[error("the {0} signature does not match the request")]
    SignatureMismatch(&'static str),
    #[error("the request's timestamp is missing, unreadable or more than five minutes from now")]
    Stale,
    #[error("this notification was already taken (same signature): a replay")]
    Replayed,
    #[error(transparent)]
    Malformed(#[from] MalformedNotification),
    #[error("QuickBooks notifications are not configured: set the webhook verifier token")]
    NotConfigured,
    #[error("the notification could not be recorded in time; send it again")]
    TimedOut,
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
}

impl From<NudgeError> for WebhookError {
    fn from(error: NudgeError) -> Self {
        match error {
            NudgeError::Store(e) => WebhookError::Store(e),
            NudgeError::Queue(e) => WebhookError::Queue(e),
        }
    }
}

impl WebhookError {
    pub fn category(&self) -> &'static str {
        match self {
            WebhookError::TooLarge => "payload_too_large",
            WebhookError::SignatureMissing(_) => "signature_missing",
            WebhookError::SignatureMismatch(_) => "signature_mismatch",
            WebhookError::Stale => "stale_timestamp",
            WebhookError::Replayed => "replayed",
            WebhookError::Malformed(_) => "malformed_notification",
            WebhookError::NotConfigured => "not_configured",
            WebhookError::TimedOut | WebhookError::Store(_) | WebhookError::Queue(_) => {
                "temporarily_unavailable"
            }
        }
    }

    pub fn http_status(&self) -> StatusCode {
        match self {
            WebhookError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            WebhookError::SignatureMissing(_)
            | WebhookError::SignatureMismatch(_)
            | WebhookError::Stale
            | WebhookError::Replayed => StatusCode::UNAUTHORIZED,
            WebhookError::Malformed(_) => StatusCode::BAD_REQUEST,
            WebhookError::NotConfigured
            | WebhookError::TimedOut
            | WebhookError::Store(_)
            | WebhookError::Queue(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Whether the provider's retry of the same notification may succeed.
    pub fn class(&self) -> ErrorClass {
        match self {
            WebhookError::TimedOut => ErrorClass::Retryable,
            WebhookError::Store(e) => e.class(),
            WebhookError::Queue(e) => e.class(),
            _ => ErrorClass::Terminal,
        }
    }
}

/// What a taken notification did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Taken {
    pub events: usize,
    /// Polls queued.
    pub nudged: usize,
    /// Nudges already covered by a queued poll.
    pub coalesced: usize,
    /// Events about nothing synced, or about accounts no active connection holds.
    pub ignored: usize,
    /// Connections stopped by an uninstall.
    pub disconnected: usize,
    /// QuickBooks only: the same body was taken before (Intuit's retry, or a replay).
    pub duplicate: bool,
    /// QuickBooks only: every event is older than the integration remembers bodies for.
    pub stale: bool,
}

/// A HubSpot notification as it arrived.
pub struct HubSpotDelivery<'a> {
    /// The URLs HubSpot may have signed (the configured public URL, the address reached).
    pub urls: Vec<String>,
    pub headers: SignatureHeaders<'a>,
    pub body: &'a [u8],
}

pub struct WebhookService {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    connections: Connections,
    nudger: Nudger,
    hubspot_secret: SecretString,
    qbo_verifier: SecretString,
    public_url: Option<String>,
    clock: Clock,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The HMAC-SHA256 of `body` keyed by the verifier token (any key length is accepted).
fn intuit_mac(verifier: &str, body: &[u8]) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(verifier.as_bytes()).ok()?;
    mac.update(body);
    Some(mac)
}

/// Intuit's signature of a body: base64 of its HMAC-SHA256 keyed by the verifier token.
pub fn intuit_signature(verifier: &str, body: &[u8]) -> String {
    intuit_mac(verifier, body).map_or_else(String::new, |mac| {
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    })
}

/// Whether `given` (base64) is the HMAC-SHA256 of `body` keyed by `verifier`, in constant time.
pub fn intuit_signature_matches(verifier: &str, body: &[u8], given: &str) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(given.trim()) else {
        return false;
    };
    intuit_mac(verifier, body).is_some_and(|mac| mac.verify_slice(&given).is_ok())
}

impl WebhookService {
    pub fn new(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        hubspot_secret: SecretString,
        qbo_verifier: SecretString,
        window: Duration,
        public_url: Option<String>,
        clock: Clock,
    ) -> Self {
        Self {
            connections: Connections::new(store.clone()),
            nudger: Nudger::new(store.clone(), queue.clone(), window),
            store,
            queue,
            hubspot_secret,
            qbo_verifier,
            public_url,
            clock,
        }
    }

    pub fn from_services(services: &Services) -> Self {
        let config = &services.config;
        Self::new(
            services.store.clone(),
            services.queue.clone(),
            config.hubspot.oauth.client_secret.clone(),
            config.qbo.webhook_verifier_token.clone(),
            config.webhook_nudge_window,
            config.webhook_public_url.clone(),
            services.clock.clone(),
        )
    }

    pub fn public_url(&self) -> Option<&str> {
        self.public_url.as_deref()
    }

    /// Takes a read notification once: remembers it at `seen` for `for_seconds` (answering
    /// `repeat` when it was taken before), then acts on it. The work runs on its own task, so
    /// an answer cut short by the providers' time limit never leaves a claim without its poll
    /// or a stopped connection without its revoke; if the work fails, the notification is
    /// forgotten again, so the provider's retry is taken anew.
    async fn take(
        self: &Arc<Self>,
        seen: ItemKey,
        for_seconds: i64,
        read: Notices,
        repeat: Result<Taken, WebhookError>,
    ) -> Result<Taken, WebhookError> {
        let this = self.clone();
        let work = tokio::spawn(async move {
            let now = this.clock.now_seconds();
            let item = Item::from_value(seen.clone(), &serde_json::json!({ "taken_at": now }))?
                .expiring_at(now + for_seconds);
            if this.store.claim(Table::Connections, item, now).await?
                == ClaimOutcome::AlreadyClaimed
            {
                return repeat;
            }
            let taken = this.act(read).await;
            if taken.is_err() {
                if let Err(e) = this.store.delete(Table::Connections, &seen).await {
                    tracing::warn!(error = %e, "a failed notification stays remembered");
                }
            }
            taken
        });
        within(async { work.await.unwrap_or(Err(WebhookError::TimedOut)) }).await
    }

    /// A HubSpot app webhook: v3 signature (required) within its timestamp window, then the
    /// events.
    pub async fn hubspot(
        self: &Arc<Self>,
        delivery: HubSpotDelivery<'_>,
    ) -> Result<Taken, WebhookError> {
        if delivery.body.len() > MAX_BODY_BYTES {
            return Err(WebhookError::TooLarge);
        }
        let Some(v3) = delivery.headers.signature_v3 else {
            return Err(WebhookError::SignatureMissing("HubSpot v3"));
        };
        let now_ms = self.clock.now_ms();
        let mut outcome = Err(SignatureError::Mismatch);
        for uri in &delivery.urls {
            let request = SignedRequest {
                method: "POST",
                uri,
                body: delivery.body,
                headers: delivery.headers,
            };
            outcome = signature::verify(self.hubspot_secret.expose_secret(), &request, now_ms);
            if outcome.is_ok() {
                break;
            }
        }
        match outcome {
            Ok(()) => {}
            Err(SignatureError::Stale) => return Err(WebhookError::Stale),
            Err(SignatureError::Missing) => {
                return Err(WebhookError::SignatureMissing("HubSpot v3"))
            }
            Err(_) => return Err(WebhookError::SignatureMismatch("HubSpot v3")),
        }
        let read = notices::read_hubspot(delivery.body)?;
        let seen = keys::notification_seen(Provider::HubSpot, &sha256_hex(v3.trim().as_bytes()));
        self.take(
            seen,
            HUBSPOT_SEEN_SECONDS,
            read,
            Err(WebhookError::Replayed),
        )
        .await
    }

    /// A QuickBooks webhook: `intuit-signature` over the raw body, then the events. A body seen
    /// before is acknowledged and changes nothing.
    pub async fn qbo(
        self: &Arc<Self>,
        given: Option<&str>,
        body: &[u8],
    ) -> Result<Taken, WebhookError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(WebhookError::TooLarge);
        }
        let verifier = self.qbo_verifier.expose_secret();
        if verifier.trim().is_empty() {
            return Err(WebhookError::NotConfigured);
        }
        let given = given.ok_or(WebhookError::SignatureMissing("intuit-signature"))?;
        if !intuit_signature_matches(verifier, body, given) {
            return Err(WebhookError::SignatureMismatch("intuit-signature"));
        }
        let read = notices::read_qbo(body)?;
        let oldest_remembered_ms = (self.clock.now_seconds() - QBO_SEEN_SECONDS) * 1000;
        if read.newest_ms.is_some_and(|at| at < oldest_remembered_ms) {
            return Ok(Taken {
                events: read.events,
                ignored: read.events,
                stale: true,
                ..Taken::default()
            });
        }
        let repeat = Ok(Taken {
            events: read.events,
            duplicate: true,
            ..Taken::default()
        });
        let seen = keys::notification_seen(Provider::Qbo, &sha256_hex(body));
        self.take(seen, QBO_SEEN_SECONDS, read, repeat).await
    }

    /// Nudges every active connection a notice names; stops the connections of an uninstalled
    /// portal and queues the revoking of their tokens.
    async fn act(&self, read: Notices) -> Result<Taken, WebhookError> {
        let now = self.clock.now_seconds();
        let mut taken = Taken {
            events: read.events,
            ignored: read.ignored,
            ..Taken::default()
        };
        for notice in read.notices {
            let (targets, object) = match notice {
                Notice::PortalChange { portal, object } => (
                    self.connections
                        .of_portal(&portal, now)
                        .await?
                        .into_iter()
                        .filter(|c| c.status == ConnectionStatus::Active)
                        .map(|c| c.connection_id)
                        .collect::<Vec<_>>(),
                    object,
                ),
                Notice::CompanyChange { realm, object } => (
                    self.active_holder(&realm, now).await?.into_iter().collect(),
                    object,
                ),
                Notice::Uninstalled {
                    portal,
                    occurred_at_ms,
                } => {
                    match self.uninstall(&portal, occurred_at_ms, now).await? {
                        Some(stopped) => taken.disconnected += stopped,
                        None => taken.ignored += 1,
                    }
                    continue;
                }
            };
            if targets.is_empty() {
                taken.ignored += 1;
            }
            for connection in targets {
                match self
                    .nudger
                    .nudge(&connection, object, self.clock.now_ms())
                    .await?
                {
                    Nudged::Queued => taken.nudged += 1,
                    Nudged::Coalesced => taken.coalesced += 1,
                }
            }
        }
        Ok(taken)
    }

    async fn active_holder(
        &self,
        realm: &RealmId,
        now: i64,
    ) -> Result<Option<ConnectionId>, StoreError> {
        let Some(id) = self.connections.owner_of(realm, now).await? else {
            return Ok(None);
        };
        Ok(self
            .connections
            .get(&id, now)
            .await?
            .filter(|c| c.status == ConnectionStatus::Active)
            .map(|c| c.id))
    }

    /// Stops the portal's connections and leaves revoking their tokens to the poll queue; `None`
    /// when the notification is older than the portal's tokens (the app was installed again
    /// since: HubSpot retries notifications for hours). Every connection stopped by an uninstall
    /// gets its revoke queued again, so a retry of the notification completes one that was cut
    /// short.
    async fn uninstall(
        &self,
        portal: &PortalId,
        occurred_at_ms: Option<i64>,
        now: i64,
    ) -> Result<Option<usize>, WebhookError> {
        let at =
            occurred_at_ms.map_or(now, |ms| ms.div_euclid(1000)) + UNINSTALL_CLOCK_SKEW_SECONDS;
        let owner = TokenOwner::Portal(portal.clone());
        let Some(guard) = tokens::unchanged_since(&*self.store, &owner, at, now).await? else {
            tracing::info!(%portal, "an uninstall older than the portal's tokens: ignored");
            return Ok(None);
        };
        let mut stopped = 0;
        for entry in self.connections.of_portal(portal, now).await? {
            let Some(connection) = lifecycle::stop(
                &self.connections,
                &entry.connection_id,
                now,
                Some(guard.clone()),
            )
            .await?
            else {
                continue;
            };
            if connection.status != ConnectionStatus::Disconnected {
                // The guard failed: the portal connected again meanwhile.
                continue;
            }
            let task = OutgoingMessage::json(&PollQueueTask::Lifecycle(LifecycleTask::Revoke {
                connection_id: connection.id.clone(),
                disconnected_at: connection.disconnected_at,
            }))?;
            self.queue.send_all(QueueName::Poll, vec![task]).await?;
            if entry.status != ConnectionStatus::Disconnected {
                stopped += 1;
                tracing::info!(connection = %connection.id,
                    "the app was uninstalled from HubSpot: connection stopped");
            }
        }
        Ok(Some(stopped))
    }

    /// Intuit's disconnect page (a browser lands here after someone disconnects the app inside
    /// QuickBooks). Unsigned, so it only queues a check with Intuit, at most one a window.
    pub async fn qbo_disconnected(&self, realm: &RealmId) -> Result<Nudged, WebhookError> {
        within(async {
            Ok(self
                .nudger
                .check_company(realm, self.clock.now_ms())
                .await?)
        })
        .await
    }
}

async fn within<T>(
    work: impl std::future::Future<Output = Result<T, WebhookError>>,
) -> Result<T, WebhookError> {
    tokio::time::timeout(ANSWER_WITHIN, work)
        .await
        .unwrap_or(Err(WebhookError::TimedOut))
}

/// The function's routes: `POST /hubspot`, `POST /qbo`, and `GET /qbo/disconnected` (the
/// Disconnect URL of the Intuit app).
pub fn router(service: Arc<WebhookService>) -> Router {
    Router::new()
        .route("/hubspot", post(hubspot))
        .route("/qbo", post(qbo))
        .route("/qbo/disconnected", get(qbo_disconnected))
        .fallback(not_found)
        .layer(DefaultBodyLimit::disable())
        .with_state(service)
}

fn answer(result: Result<Taken, WebhookError>) -> Response {
    match result {
        Ok(taken) => (StatusCode::OK, Json(taken)).into_response(),
        Err(error) => {
            let status = error.http_status();
            if status.is_server_error() {
                tracing::warn!(%error, "notification not taken");
            } else {
                tracing::info!(%error, category = error.category(), "notification refused");
            }
            // The store's and queue's own words stay in the log.
            let message = match error.class() {
                ErrorClass::Retryable if status.is_server_error() => {
                    "the notification could not be recorded just now; send it again".to_owned()
                }
                _ => error.to_string(),
            };
            let mut response = crate::http::error_response(status, error.category(), message);
            if error.class() == ErrorClass::Retryable {
                response
                    .headers_mut()
                    .insert("retry-after", axum::http::HeaderValue::from_static("5"));
            }
            response
        }
    }
}

async fn read_body(body: Body) -> Result<axum::body::Bytes, WebhookError> {
    to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| WebhookError::TooLarge)
}

async fn hubspot(
    State(service): State<Arc<WebhookService>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(
        async {
            let body = read_body(body).await?;
            let delivery = HubSpotDelivery {
                urls: crate::http::request_urls(service.public_url(), &uri, &headers),
                headers: SignatureHeaders::from_headers(&headers),
                body: &body,
            };
            service.hubspot(delivery).await
        }
        .await,
    )
}

async fn qbo(
    State(service): State<Arc<WebhookService>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(
        async {
            let body = read_body(body).await?;
            let given = headers
                .get("intuit-signature")
                .and_then(|v| v.to_str().ok());
            service.qbo(given, &body).await
        }
        .await,
    )
}

#[derive(serde::Deserialize)]
struct DisconnectedParams {
    #[serde(rename = "realmId", alias = "realm_id")]
    realm_id: Option<String>,
}

async fn qbo_disconnected(
    State(service): State<Arc<WebhookService>>,
    Query(params): Query<DisconnectedParams>,
) -> Response {
    let page = |status: StatusCode, text: &str| {
        (
            status,
            Html(format!(
                "<!doctype html><meta charset=utf-8><title>QuickBooks disconnected</title><p>{text}</p>"
            )),
        )
            .into_response()
    };
    let Some(Ok(realm)) = params.realm_id.map(RealmId::parse) else {
        return page(
            StatusCode::BAD_REQUEST,
            "This page needs the QuickBooks company's realmId.",
        );
    };
    match service.qbo_disconnected(&realm).await {
        Ok(_) => page(
            StatusCode::OK,
            "QuickBooks disconnected the app. The integration checks with QuickBooks and, once \
             it confirms, stops syncing this company and revokes what is left of its access.",
        ),
        Err(error) => {
            tracing::warn!(%error, "disconnect check not queued");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The disconnect could not be recorded just now; reload this page in a minute.",
            )
        }
    }
}

async fn not_found(method: Method) -> Response {
    let status = if method == Method::POST || method == Method::GET {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::METHOD_NOT_ALLOWED
    };
    crate::http::error_response(
        status,
        "unknown_path",
        "notifications go to /hubspot (HubSpot) or /qbo (QuickBooks)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intuit_signatures_are_base64_hmac_sha256_checked_whole() {
        // RFC 4231, test case 2.
        let signed = intuit_signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(signed, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=");
        let matches =
            |given: &str| intuit_signature_matches("Jefe", b"what do ya want for nothing?", given);
        assert!(matches(&signed));
        assert!(matches(&format!(" {signed}\n")));
        assert!(!matches(&signed[..20]));
        assert!(!matches(""));
        assert!(!matches("not base64!"));
        assert!(!intuit_signature_matches(
            "other",
            b"what do ya want for nothing?",
            &signed
        ));
    }
}

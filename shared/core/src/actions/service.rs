//! One workflow-action call, from HubSpot's request to its answer: the body's size, HubSpot's
//! signature, the call's shape, then the execution's claim (exactly once), the connection of
//! the signed portal, the document, and the outcome recorded before the answer.
//!
//! How a call ends:
//! - a request that is not HubSpot's or not a call: 4xx with a JSON reason, nothing claimed;
//! - the document made: `SUCCESS` with its id, number and total;
//! - it cannot be made (no customer, unmatched items, a refused input, …): `FAIL_CONTINUE`
//!   with the reason and a stable `errorCode`, recorded, so a retry gets the same answer;
//! - a passing failure (QuickBooks down, the store unreachable): 503 with `Retry-After`, the
//!   claim released, so HubSpot's retry runs it again with the same `requestid`;
//! - a duplicate while the first runs: 429 with `Retry-After`; it later gets the first answer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::claims::{ActionClaims, Claim, ClaimError, Claimant};
use super::documents::failure_outputs;
use super::inputs::{runs_on, Enrolled, Inputs};
use super::request::{ActionOutcome, ActionRequest, ExecutionState};
use super::settings::ActionSettingsStore;
use super::signature::{self, SignatureError, SignatureHeaders, SignedRequest};
use super::ActionKind;
use crate::clock::Clock;
use crate::config::Config;
use crate::connection::registry::{Connection, ConnectionStatus, Connections};
use crate::connection::tokens::{KeeperBearer, TokenKeeper};
use crate::domain::{PortalId, QboRequestId};
use crate::error_class::ErrorClass;
use crate::hubspot::HubSpotError;
use crate::qbo::QboError;
use crate::queue::batch::{MessageError, Ordering, StoredFailures};
use crate::queue::{OutgoingMessage, Queue, QueueName};
use crate::runtime::Services;
use crate::settings::SettingsStore;
use crate::store::{Item, Store, StoreError, Table};
use crate::sync::engine::{Engine, SyncError};

/// The largest call body taken (HubSpot's calls are a few KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// How long a duplicate call is asked to wait while the first one runs.
const BUSY_RETRY_SECONDS: u64 = 10;
/// How long HubSpot is asked to wait after a passing failure, when nothing says otherwise.
const AGAIN_RETRY_SECONDS: u64 = 30;

/// A call as it arrived.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    pub method: &'a str,
    /// The URLs HubSpot may have signed (the configured public one, the one it reached).
    pub urls: Vec<String>,
    pub body: &'a [u8],
    pub headers: SignatureHeaders<'a>,
}

/// The HTTP answer to a call.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<u64>,
}

impl Answer {
    pub fn error(status: u16, category: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({"status": "error", "category": category, "message": message.into()}),
            retry_after: None,
        }
    }

    fn outcome(outcome: &ActionOutcome) -> Self {
        Self {
            status: 200,
            body: serde_json::to_value(outcome).unwrap_or(Value::Null),
            retry_after: None,
        }
    }

    fn wait(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The document cannot be made as asked; the workflow is told why (`FAIL_CONTINUE`).
    #[error("{message}")]
    Refused { category: String, message: String },
    #[error(transparent)]
    Qbo(#[from] QboError),
    #[error(transparent)]
    HubSpot(#[from] HubSpotError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The document was not made within the time HubSpot waits for an answer.
    #[error("the document was not made within {0:?}")]
    Slow(Duration),
    /// Another attempt runs the execution now.
    #[error("another attempt runs this execution now")]
    Busy,
    /// Deferred work put back to be tried again later.
    #[error("{reason}")]
    Later {
        reason: String,
        after: Option<Duration>,
    },
}

impl MessageError for ActionError {
    fn class(&self) -> ErrorClass {
        ActionError::class(self)
    }

    fn retry_after(&self) -> Option<Duration> {
        ActionError::retry_after(self)
    }
}

/// How a failed execution ends.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Settled {
    Refused {
        category: String,
        message: String,
    },
    /// Passing: to be tried again, after `after` when the provider said.
    Again {
        reason: String,
        after: Option<Duration>,
        /// Throttled or slow: worth finishing later (BLOCK) rather than answering 503.
        deferrable: bool,
    },
}

impl ActionError {
    pub fn refused(category: &str, message: impl Into<String>) -> Self {
        ActionError::Refused {
            category: category.to_owned(),
            message: message.into(),
        }
    }

    fn class(&self) -> ErrorClass {
        match self {
            ActionError::Refused { .. } => ErrorClass::Terminal,
            ActionError::Qbo(e) => e.class(),
            ActionError::HubSpot(e) => e.class(),
            ActionError::Store(e) => e.class(),
            ActionError::Sync(e) => MessageError::class(e),
            ActionError::Slow(_) | ActionError::Busy | ActionError::Later { .. } => {
                ErrorClass::Retryable
            }
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ActionError::Qbo(e) => e.retry_after(),
            ActionError::HubSpot(e) => e.retry_after(),
            ActionError::Sync(e) => MessageError::retry_after(e),
            ActionError::Busy => Some(Duration::from_secs(BUSY_RETRY_SECONDS)),
            ActionError::Later { after, .. } => *after,
            _ => None,
        }
    }

    /// Throttling (by QuickBooks, HubSpot or our own pacing) or slowness: it passes with time.
    fn deferrable(&self) -> bool {
        matches!(
            self,
            ActionError::Slow(_)
                | ActionError::Qbo(QboError::Throttled { .. } | QboError::Paced(_))
                | ActionError::Sync(SyncError::Qbo(
                    QboError::Throttled { .. } | QboError::Paced(_)
                ))
                | ActionError::HubSpot(HubSpotError::Throttled { .. } | HubSpotError::Paced(_))
        )
    }

    pub(super) fn settle(self) -> Settled {
        if let ActionError::Refused { category, message } = self {
            return Settled::Refused { category, message };
        }
        let reconnect = matches!(
            &self,
            ActionError::Qbo(QboError::ReconnectRequired(_))
                | ActionError::HubSpot(HubSpotError::ReconnectRequired(_))
                | ActionError::Sync(SyncError::Paused)
        );
        if reconnect {
            return Settled::Refused {
                category: "reconnect_required".into(),
                message: format!(
                    "{self}: reconnect the account on the install page and run the action again"
                ),
            };
        }
        if self.class() == ErrorClass::Retryable {
            return Settled::Again {
                after: self.retry_after(),
                deferrable: self.deferrable(),
                reason: self.to_string(),
            };
        }
        let category = match &self {
            ActionError::Qbo(e) => e.category(),
            ActionError::HubSpot(e) => e.category(),
            _ => "refused",
        };
        Settled::Refused {
            category: category.to_owned(),
            message: self.to_string(),
        }
    }
}

/// What a finished execution answers and records beside its outcome.
pub(super) struct Done {
    pub outputs: BTreeMap<String, String>,
    pub records: Vec<(Table, Item)>,
}

/// The actions' parts, built once per cold start.
pub struct ActionService {
    pub(super) config: Arc<Config>,
    pub(super) claims: ActionClaims,
    pub(super) connections: Connections,
    pub(super) action_settings: ActionSettingsStore,
    pub(super) object_settings: SettingsStore,
    pub(super) engine: Engine,
    pub(super) tokens: Arc<TokenKeeper>,
    pub(super) store: Arc<dyn Store>,
    pub(super) queue: Arc<dyn Queue>,
    pub(super) clock: Clock,
}

/// An execution answered BLOCK, as the deferred-work queue carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeferredAction {
    /// The action's document (`invoice`, …).
    pub action: String,
    pub request: ActionRequest,
}

/// How long HubSpot keeps a BLOCKed execution waiting for its callback.
pub const BLOCK_EXPIRATION: &str = "P1D";
/// How often deferred work is tried before it is parked (throttling can last a while).
pub const DEFERRED_ATTEMPTS: u32 = 100;

fn claim_error(error: ClaimError) -> ActionError {
    match error {
        ClaimError::Store(e) => ActionError::Store(e),
        ClaimError::Lost => ActionError::Busy,
        ClaimError::Invalid(reason) => ActionError::refused("invalid_request", reason),
    }
}

/// The answer of an execution finished later.
fn blocked() -> ActionOutcome {
    let mut outcome = ActionOutcome::new(ExecutionState::Block, BTreeMap::new());
    outcome
        .output_fields
        .insert("hs_expiration_duration".into(), BLOCK_EXPIRATION.into());
    outcome
}

impl ActionService {
    pub fn new(services: &Services) -> Result<Self, crate::Error> {
        let (engine, tokens) = Engine::from_services(services)?;
        Ok(Self {
            config: services.config.clone(),
            claims: ActionClaims::new(services.store.clone()),
            connections: Connections::new(services.store.clone()),
            action_settings: ActionSettingsStore::new(services.store.clone()),
            object_settings: SettingsStore::new(services.store.clone()),
            engine,
            tokens,
            store: services.store.clone(),
            queue: services.queue.clone(),
            clock: services.clock.clone(),
        })
    }

    /// Checks that a request is HubSpot's: its size, then its signature over one of the URLs
    /// it may have been sent to.
    pub fn authenticate(&self, call: &Call<'_>) -> Result<(), Answer> {
        if call.body.len() > MAX_BODY_BYTES {
            return Err(Answer::error(
                413,
                "payload_too_large",
                format!(
                    "the request body is {} bytes; calls of at most {MAX_BODY_BYTES} bytes are taken",
                    call.body.len()
                ),
            ));
        }
        let secret = secrecy::ExposeSecret::expose_secret(&self.config.hubspot.oauth.client_secret);
        let now_ms = self.clock.now_ms();
        let mut first_error = None;
        for url in &call.urls {
            let signed = SignedRequest {
                method: call.method,
                uri: url,
                body: call.body,
                headers: call.headers,
            };
            match signature::verify(secret, &signed, now_ms) {
                Ok(()) => return Ok(()),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        let error = first_error.unwrap_or(SignatureError::Missing);
        let category = match error {
            SignatureError::Missing => "missing_signature",
            SignatureError::Mismatch => "invalid_signature",
            SignatureError::Stale => "stale_timestamp",
            SignatureError::Version(_) => "unsupported_signature_version",
        };
        Err(Answer::error(401, category, error.to_string()))
    }

    /// Answers one call to `kind`'s endpoint.
    pub async fn call(&self, kind: ActionKind, call: Call<'_>) -> Answer {
        if let Err(answer) = self.authenticate(&call) {
            tracing::warn!(action = kind.document(), category = %answer.body["category"], "call refused");
            return answer;
        }
        let request = match ActionRequest::parse(call.body) {
            Ok(request) => request,
            Err(error) => return Answer::error(400, "malformed_request", error.to_string()),
        };
        let portal = match request.portal() {
            Ok(portal) => portal,
            Err(error) => return Answer::error(400, "malformed_request", error.to_string()),
        };
        let now = self.clock.now_seconds();
        let claim = self
            .claims
            .claim(&portal, &request.callback_id, kind, now)
            .await;
        match claim {
            Ok(Claim::Done(outcome)) => Answer::outcome(&outcome),
            Ok(Claim::Busy) => Answer::error(
                429,
                "in_progress",
                "this execution is being run by an earlier attempt; its answer comes on a retry",
            )
            .wait(BUSY_RETRY_SECONDS),
            Ok(Claim::Deferred) => {
                Answer::outcome(&ActionOutcome::new(ExecutionState::Block, BTreeMap::new()))
            }
            Ok(Claim::Run {
                version,
                requestid,
                taken_over,
            }) => {
                if taken_over {
                    tracing::info!(action = kind.document(), callback = %request.callback_id, "an execution whose attempt lapsed is run again with its requestid");
                }
                self.run_claimed(kind, &request, &portal, version, &requestid)
                    .await
            }
            Err(error) => {
                Answer::error(503, "store_unavailable", error.to_string()).wait(AGAIN_RETRY_SECONDS)
            }
        }
    }

    async fn run_claimed(
        &self,
        kind: ActionKind,
        request: &ActionRequest,
        portal: &PortalId,
        version: u64,
        requestid: &QboRequestId,
    ) -> Answer {
        let within = self.config.action_answer_within;
        let result = tokio::time::timeout(within, self.execute(kind, request, portal, requestid))
            .await
            .unwrap_or(Err(ActionError::Slow(within)));
        let now = self.clock.now_seconds();
        let callback = request.callback_id.as_str();
        let (outcome, records) = match Self::outcome_of(kind, result) {
            Ok(done) => done,
            Err((reason, after, deferrable)) => {
                if deferrable && !self.config.queues.actions.is_empty() {
                    match self.defer(kind, request, portal, version, now).await {
                        Ok(()) => {
                            tracing::info!(
                                action = kind.document(),
                                "answered BLOCK; finished later: {reason}"
                            );
                            return Answer::outcome(&blocked());
                        }
                        Err(error) => tracing::warn!(
                            action = kind.document(),
                            "the execution could not be deferred: {error}"
                        ),
                    }
                }
                tracing::warn!(
                    action = kind.document(),
                    "the action is to be tried again: {reason}"
                );
                if let Err(error) = self
                    .claims
                    .release(portal, callback, kind, version, now)
                    .await
                {
                    tracing::warn!(
                        action = kind.document(),
                        "the claim was not released: {error}"
                    );
                }
                let wait = after.map_or(AGAIN_RETRY_SECONDS, |d| d.as_secs().max(1));
                return Answer::error(503, "try_again", reason).wait(wait);
            }
        };
        match self
            .claims
            .finish(portal, callback, kind, version, &outcome, records, now)
            .await
        {
            Ok(()) => Answer::outcome(&outcome),
            Err(ClaimError::Lost) => Answer::error(
                429,
                "in_progress",
                "a later attempt took this execution over; its answer comes on a retry",
            )
            .wait(BUSY_RETRY_SECONDS),
            Err(error) => {
                Answer::error(503, "store_unavailable", error.to_string()).wait(AGAIN_RETRY_SECONDS)
            }
        }
    }

    /// The outcome to record, or why it is to be tried again (and whether later is better).
    #[allow(clippy::type_complexity)]
    fn outcome_of(
        kind: ActionKind,
        result: Result<Done, ActionError>,
    ) -> Result<(ActionOutcome, Vec<(Table, Item)>), (String, Option<Duration>, bool)> {
        match result.map_err(ActionError::settle) {
            Ok(done) => Ok((
                ActionOutcome::new(ExecutionState::Success, done.outputs),
                done.records,
            )),
            Err(Settled::Refused { category, message }) => {
                tracing::info!(action = kind.document(), %category, "the action made nothing: {message}");
                Ok((
                    ActionOutcome::new(
                        ExecutionState::FailContinue,
                        failure_outputs(&category, &message),
                    ),
                    Vec::new(),
                ))
            }
            Err(Settled::Again {
                reason,
                after,
                deferrable,
            }) => Err((reason, after, deferrable)),
        }
    }

    /// Hands the execution to the deferred-work queue, then records it deferred: a message
    /// sent for a claim that is then lost finds the execution done or running, and leaves it.
    async fn defer(
        &self,
        kind: ActionKind,
        request: &ActionRequest,
        portal: &PortalId,
        version: u64,
        now: i64,
    ) -> Result<(), ActionError> {
        let message = OutgoingMessage::json(&DeferredAction {
            action: kind.document().to_owned(),
            request: request.clone(),
        })
        .map_err(|e| ActionError::Later {
            reason: e.to_string(),
            after: None,
        })?;
        self.queue
            .send_all(QueueName::Actions, vec![message])
            .await
            .map_err(|e| ActionError::Later {
                reason: e.to_string(),
                after: None,
            })?;
        self.claims
            .defer(portal, &request.callback_id, kind, version, now)
            .await
            .map_err(|e| ActionError::Later {
                reason: e.to_string(),
                after: None,
            })
    }

    /// One batch of the deferred-work queue.
    pub async fn handle_deferred(
        &self,
        event: aws_lambda_events::event::sqs::SqsEvent,
    ) -> Result<aws_lambda_events::event::sqs::SqsBatchResponse, crate::Error> {
        let failures = StoredFailures::new(self.store.clone(), self.clock.clone(), "actions");
        let mut consumer = failures.consumer(
            Ordering::Standard { concurrency: 4 },
            &*self.queue,
            QueueName::Actions,
        );
        consumer.max_attempts = DEFERRED_ATTEMPTS;
        consumer
            .process(event, |deferred: DeferredAction, _| async move {
                self.finish_deferred(deferred).await
            })
            .await
            .map_err(crate::Error::from)
    }

    /// Runs a deferred execution to its outcome and completes it through HubSpot's callback
    /// API, once.
    pub async fn finish_deferred(&self, deferred: DeferredAction) -> Result<(), ActionError> {
        let kind = ActionKind::from_document(&deferred.action).ok_or_else(|| {
            ActionError::refused(
                "unknown_action",
                format!("no action makes {:?}", deferred.action),
            )
        })?;
        let request = &deferred.request;
        let portal = request
            .portal()
            .map_err(|e| ActionError::refused("malformed_request", e.to_string()))?;
        let callback = request.callback_id.as_str();
        let now = self.clock.now_seconds();
        let claim = self
            .claims
            .claim_as(Claimant::DeferredWork, &portal, callback, kind, now)
            .await
            .map_err(claim_error)?;
        let outcome = match claim {
            Claim::Done(outcome) => outcome,
            Claim::Busy | Claim::Deferred => return Err(ActionError::Busy),
            Claim::Run {
                version, requestid, ..
            } => {
                let result = self.execute(kind, request, &portal, &requestid).await;
                let now = self.clock.now_seconds();
                match Self::outcome_of(kind, result) {
                    Ok((outcome, records)) => {
                        self.claims
                            .finish(&portal, callback, kind, version, &outcome, records, now)
                            .await
                            .map_err(claim_error)?;
                        outcome
                    }
                    Err((reason, after, _)) => {
                        self.claims
                            .defer(&portal, callback, kind, version, now)
                            .await
                            .map_err(claim_error)?;
                        return Err(ActionError::Later { reason, after });
                    }
                }
            }
        };
        let run = self
            .claims
            .run(&portal, callback, now)
            .await
            .map_err(claim_error)?;
        if run.is_some_and(|r| r.deferred && !r.completed) {
            let bearer = crate::connection::tokens::KeeperBearer {
                keeper: self.tokens.clone(),
                owner: crate::connection::tokens::TokenOwner::Portal(portal.clone()),
            };
            let waiting = self
                .engine
                .hubspot()
                .portal(&portal, &bearer)
                .complete_action(callback, &outcome.output_fields)
                .await?;
            if !waiting {
                tracing::warn!(
                    action = kind.document(),
                    callback,
                    "HubSpot no longer waited for this execution's completion"
                );
            }
            self.claims
                .mark_completed(&portal, callback, self.clock.now_seconds())
                .await
                .map_err(claim_error)?;
        }
        Ok(())
    }

    async fn execute(
        &self,
        kind: ActionKind,
        request: &ActionRequest,
        portal: &PortalId,
        requestid: &QboRequestId,
    ) -> Result<Done, ActionError> {
        let inputs = Inputs::read(request)
            .map_err(|e| ActionError::refused("invalid_input", e.to_string()))?;
        let object = request.object.as_ref().ok_or_else(|| {
            ActionError::refused("no_record", "the call names no enrolled record")
        })?;
        let enrolled = Enrolled::read(&object.object_type, object.object_id);
        let now = self.clock.now_seconds();
        let connection = self
            .connection_for(portal, inputs.account.as_deref(), now)
            .await?;
        let settings = self.action_settings.get(&connection.id, now).await?;
        if !runs_on(kind, &enrolled) {
            let types = super::inputs::object_types(kind, &settings.payment_object_type);
            return Err(ActionError::refused(
                "wrong_object",
                format!(
                    "\"{}\" runs on {}; this workflow's record is a {}",
                    kind.label(),
                    types.join(" or "),
                    object.object_type
                ),
            ));
        }
        self.require_us(&connection, now).await?;
        let (qbo_bearer, hubspot_bearer) =
            KeeperBearer::both(&self.tokens, &connection.realm_id, &connection.portal_id);
        let execution = super::execution::Execution {
            service: self,
            kind,
            callback_id: &request.callback_id,
            portal,
            connection: &connection,
            settings: &settings,
            inputs: &inputs,
            enrolled: &enrolled,
            requestid,
            qbo: self.engine.qbo().company(&connection.realm_id, &qbo_bearer),
            hubspot: self
                .engine
                .hubspot()
                .portal(&connection.portal_id, &hubspot_bearer),
            now,
            payment_deal: tokio::sync::OnceCell::new(),
        };
        execution.run().await
    }

    /// The connection the call is for: of the signed portal only, the one its QuickBooks
    /// account input names, else the portal's only one.
    pub(super) async fn connection_for(
        &self,
        portal: &PortalId,
        account: Option<&str>,
        now: i64,
    ) -> Result<Connection, ActionError> {
        let entries = self.connections.of_portal(portal, now).await?;
        let chosen = match account {
            Some(account) => entries
                .iter()
                .find(|c| c.realm_id.as_str() == account || c.connection_id.as_str() == account)
                .ok_or_else(|| {
                    ActionError::refused(
                        "unknown_account",
                        format!("the QuickBooks account {account} is not connected to HubSpot portal {portal}: choose one of the portal's accounts in the action"),
                    )
                })?,
            None => {
                let live: Vec<_> = entries
                    .iter()
                    .filter(|c| c.status != ConnectionStatus::Disconnected)
                    .collect();
                match live.as_slice() {
                    [] => {
                        return Err(ActionError::refused(
                            "not_connected",
                            format!("no QuickBooks account is connected to HubSpot portal {portal}: connect one on the install page"),
                        ))
                    }
                    [only] => *only,
                    several => {
                        return Err(ActionError::refused(
                            "choose_account",
                            format!("HubSpot portal {portal} has {} QuickBooks accounts connected: choose one in the action's \"QuickBooks account\" field", several.len()),
                        ))
                    }
                }
            }
        };
        let connection = self
            .connections
            .get(&chosen.connection_id, now)
            .await?
            .filter(|c| &c.portal_id == portal)
            .ok_or_else(|| {
                ActionError::refused(
                    "not_connected",
                    format!(
                        "the QuickBooks account {} is no longer connected",
                        chosen.company_name
                    ),
                )
            })?;
        match connection.status {
            ConnectionStatus::Active => Ok(connection),
            ConnectionStatus::ReconnectRequired => Err(ActionError::refused(
                "reconnect_required",
                format!("the connection to {} needs a reconnect: reconnect it on the install page and run the action again", connection.company_name),
            )),
            ConnectionStatus::Disconnected => Err(ActionError::refused(
                "disconnected",
                format!("the QuickBooks account {} was disconnected: reconnect it to make documents there", connection.company_name),
            )),
        }
    }

    /// A10: the actions make documents in US companies only (elsewhere every line needs a tax
    /// code HubSpot does not give).
    async fn require_us(&self, connection: &Connection, now: i64) -> Result<(), ActionError> {
        let us = self
            .connections
            .preflight(&connection.id, now)
            .await?
            .is_none_or(|p| p.company.us_edition);
        if us {
            Ok(())
        } else {
            Err(ActionError::refused(
                "non_us_company",
                format!("{} is a QuickBooks company outside the US, where every line needs a tax code that HubSpot line items do not carry: the workflow actions make documents in US companies only", connection.company_name),
            ))
        }
    }

    /// The configured public address HubSpot calls the actions at, if any.
    pub fn public_base_url(&self) -> Option<&str> {
        self.config.public_base_url.as_deref()
    }

    /// For tests and tools: the store the service records in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn settings(&self) -> &ActionSettingsStore {
        &self.action_settings
    }
}

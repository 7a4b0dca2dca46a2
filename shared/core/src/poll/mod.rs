//! Scheduled polling: the schedule keeps tokens alive, queues initial syncs that connecting could
//! not queue, and fans out one poll task per active connection and synced object onto the poll
//! queue; the tasks, processed in parallel, read each object's changes (`reader`).

pub mod reader;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use serde::Serialize;
use serde_json::Value;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::connection::initial_sync::requeue_pending;
use crate::connection::lifecycle::Disconnector;
use crate::connection::registry::{ConnectionStatus, Connections};
use crate::connection::tokens::{TokenError, TokenKeeper, TokenOwner};
use crate::domain::ConnectionId;
use crate::error::Error;
use crate::oauth::HttpProviders;
use crate::queue::batch::{Ordering, StoredFailures};
use crate::queue::messages::{PollQueueTask, PollTask};
use crate::queue::{OutgoingMessage, Queue, QueueName};
use crate::runtime::Services;
use crate::settings::SettingsStore;
use crate::store::Store;
use reader::Reader;

/// The events that start a poll: the schedule's tick, or a batch of poll tasks from the poll
/// queue.
#[derive(Debug)]
pub enum PollTrigger {
    Schedule,
    Tasks(SqsEvent),
}

impl PollTrigger {
    /// SQS events carry `Records`; EventBridge schedule events carry `detail-type`.
    pub fn from_event(event: Value) -> Result<Self, Error> {
        if event.get("Records").is_some() {
            serde_json::from_value(event)
                .map(PollTrigger::Tasks)
                .map_err(|e| Error::InvalidInput(format!("SQS event: {e}")))
        } else if event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
            Ok(PollTrigger::Schedule)
        } else {
            Err(Error::InvalidInput(
                "neither a schedule event nor an SQS event".into(),
            ))
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum PollResponse {
    Schedule(ScheduleReport),
    Tasks(SqsBatchResponse),
}

/// Refresh tokens that have not been used for this long are refreshed on the schedule, so a quiet
/// connection never loses them to an idle timeout.
pub const KEEP_ALIVE_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What one scheduled round did for the connections' tokens.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct KeepAliveReport {
    /// Active connections looked at (disconnected and blocked ones are not polled).
    pub connections: usize,
    /// Connections that a provider refused and that now wait for a reconnect.
    pub reconnect_required: Vec<ConnectionId>,
    /// Connections whose check failed for a passing reason (tried again next round).
    pub failed: usize,
}

/// Keeps every active connection's tokens alive; a refused refresh token stops the connection
/// (`reconnect_required`) so that nothing polls it until someone reconnects.
pub async fn keep_alive(
    connections: &Connections,
    tokens: &TokenKeeper,
    now: i64,
    max_idle: Duration,
) -> Result<KeepAliveReport, Error> {
    let active = connections
        .with_status(ConnectionStatus::Active, now)
        .await?;
    let mut report = KeepAliveReport {
        connections: active.len(),
        ..KeepAliveReport::default()
    };
    // A portal's HubSpot tokens are shared by its connections: check them once per round.
    let mut portals_alive = HashSet::new();
    for connection in active {
        let owners = [
            TokenOwner::Realm(connection.realm_id.clone()),
            TokenOwner::Portal(connection.portal_id.clone()),
        ];
        for owner in owners {
            if matches!(&owner, TokenOwner::Portal(portal) if portals_alive.contains(portal)) {
                continue;
            }
            match tokens.keep_alive(&owner, max_idle).await {
                Ok(()) => {
                    if let TokenOwner::Portal(portal) = owner {
                        portals_alive.insert(portal);
                    }
                }
                Err(
                    TokenError::ReconnectRequired { provider }
                    | TokenError::NotConnected { provider },
                ) => {
                    // Block the connection only while the refused tokens are still the stored
                    // ones: a reconnect that landed meanwhile wins.
                    let Some(guard) = tokens.refusal_guard(&owner).await.map_err(token_error)?
                    else {
                        continue;
                    };
                    let now_standing = connections
                        .require_reconnect(&connection.id, provider, Some(guard), now)
                        .await?;
                    if now_standing.is_some_and(|c| c.status == ConnectionStatus::ReconnectRequired)
                    {
                        tracing::warn!(connection = %connection.id, provider = provider.as_str(),
                            "tokens refused: the connection waits for a reconnect");
                        report.reconnect_required.push(connection.id.clone());
                    }
                    break;
                }
                Err(error) => {
                    tracing::warn!(connection = %connection.id, %error, "token keep-alive failed");
                    report.failed += 1;
                    break;
                }
            }
        }
    }
    Ok(report)
}

fn token_error(error: TokenError) -> Error {
    match error {
        TokenError::Store(e) => Error::Store(e),
        other => Error::InvalidInput(other.to_string()),
    }
}

/// What one scheduled round did.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct ScheduleReport {
    #[serde(flatten)]
    pub keep_alive: KeepAliveReport,
    /// Initial syncs whose queuing at connect time failed, queued now.
    pub initial_syncs_queued: Vec<ConnectionId>,
    /// Poll tasks queued (one per active connection and enabled synced object).
    pub poll_tasks: usize,
}

/// Initial-sync requests younger than this are left to the connect that made them.
pub const INITIAL_SYNC_GRACE_SECONDS: i64 = 30;

/// The poll function's parts, built once per cold start.
pub struct Poller {
    connections: Connections,
    settings: SettingsStore,
    tokens: Arc<TokenKeeper>,
    reader: Reader,
    disconnector: Disconnector,
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    clock: Clock,
}

impl Poller {
    /// One poll task per active connection and enabled object the engine syncs.
    async fn fan_out(&self, now: i64) -> Result<usize, Error> {
        let mut tasks = Vec::new();
        for connection in self
            .connections
            .with_status(ConnectionStatus::Active, now)
            .await?
        {
            for settings in self.settings.list(&connection.id, now).await? {
                if settings.enabled && reader::polled_objects().any(|o| o == settings.object) {
                    tasks.push(OutgoingMessage::json(&PollTask {
                        connection_id: connection.id.clone(),
                        object: settings.object,
                    })?);
                }
            }
        }
        let count = tasks.len();
        self.queue.send_all(QueueName::Poll, tasks).await?;
        Ok(count)
    }

    pub fn new(services: &Services) -> Result<Self, Error> {
        let providers = Arc::new(HttpProviders::new(&services.config)?);
        let tokens = Arc::new(TokenKeeper::from_services(services, providers.clone()));
        let disconnector = Disconnector::new(
            services.store.clone(),
            tokens.clone(),
            providers,
            services.clock.clone(),
        );
        let pacer = services.pacer();
        let reader = Reader::new(
            services.store.clone(),
            tokens.clone(),
            services
                .qbo_client(pacer.clone())
                .map_err(|e| Error::Setup(e.to_string()))?,
            services
                .hubspot_client(pacer)
                .map_err(|e| Error::Setup(e.to_string()))?,
            services.queue.clone(),
            services.clock.clone(),
        );
        Ok(Self {
            connections: Connections::new(services.store.clone()),
            settings: SettingsStore::new(services.store.clone()),
            tokens,
            reader,
            disconnector,
            store: services.store.clone(),
            queue: services.queue.clone(),
            clock: services.clock.clone(),
        })
    }

    pub async fn handle(&self, event: Value) -> Result<PollResponse, Error> {
        match PollTrigger::from_event(event)? {
            // The schedule keeps tokens alive, queues initial syncs that connecting could not
            // queue, and fans out one poll task per connection and object.
            PollTrigger::Schedule => {
                let now = self.clock.now_seconds();
                let keep_alive =
                    keep_alive(&self.connections, &self.tokens, now, KEEP_ALIVE_AFTER).await?;
                let requeued =
                    requeue_pending(&*self.store, &*self.queue, now, INITIAL_SYNC_GRACE_SECONDS)
                        .await?;
                let poll_tasks = self.fan_out(now).await?;
                Ok(PollResponse::Schedule(ScheduleReport {
                    keep_alive,
                    initial_syncs_queued: requeued.queued,
                    poll_tasks,
                }))
            }
            PollTrigger::Tasks(event) => {
                let failures = StoredFailures::new(self.store.clone(), self.clock.clone(), "poll");
                let response = failures
                    .consumer(
                        Ordering::Standard { concurrency: 4 },
                        &*self.queue,
                        QueueName::Poll,
                    )
                    .process(event, |task: PollQueueTask, _| async move {
                        match task {
                            PollQueueTask::Read(task) => {
                                let report = self.reader.poll(&task).await?;
                                tracing::info!(connection = %task.connection_id, object = %task.object,
                                    records = report.records, messages = report.messages,
                                    retries = report.retries, continues = report.continues,
                                    "changes read");
                            }
                            PollQueueTask::Lifecycle(task) => {
                                let outcome = self.disconnector.handle(&task).await?;
                                tracing::info!(?task, ?outcome, "lifecycle task done");
                            }
                        }
                        Ok::<(), reader::PollError>(())
                    })
                    .await?;
                Ok(PollResponse::Tasks(response))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn triggers_are_told_apart() {
        let schedule = json!({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
        assert!(matches!(
            PollTrigger::from_event(schedule),
            Ok(PollTrigger::Schedule)
        ));
        let tasks = json!({"Records": [{"messageId": "m1", "body": "{}"}]});
        assert!(
            matches!(PollTrigger::from_event(tasks), Ok(PollTrigger::Tasks(e)) if e.records.len() == 1)
        );
        assert!(PollTrigger::from_event(json!({"hello": "world"})).is_err());
    }

    /// A provider that refuses every refresh token (revoked, or the app was uninstalled).
    struct Refusing(std::sync::atomic::AtomicUsize);

    #[async_trait::async_trait]
    impl crate::oauth::TokenEndpoint for Refusing {
        async fn refresh(
            &self,
            _: crate::domain::Provider,
            _: &secrecy::SecretString,
        ) -> Result<crate::oauth::TokenGrant, crate::oauth::RefreshError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(crate::oauth::RefreshError::InvalidGrant)
        }
    }

    #[tokio::test]
    async fn a_refused_refresh_token_stops_the_connection_from_being_polled() {
        use crate::connection::registry::Connection;
        use crate::connection::tokens::Policy;
        use crate::crypto::fakes::ReversingSealer;
        use crate::domain::{PortalId, RealmId};
        use crate::oauth::TokenGrant;
        use crate::store::memory::MemoryStore;
        use secrecy::SecretString;
        use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

        const START: i64 = 1_900_000_000;
        let store = Arc::new(MemoryStore::new());
        let clock = Arc::new(AtomicI64::new(START * 1000));
        let now = clock.clone();
        let provider = Arc::new(Refusing(AtomicUsize::new(0)));
        let tokens = TokenKeeper::new(
            store.clone(),
            Arc::new(ReversingSealer),
            provider.clone(),
            crate::clock::Clock::from_fn(move || now.load(Ordering::SeqCst)),
            Policy::default(),
        );
        let connections = Connections::new(store);
        let (portal, realm) = (
            PortalId::parse("62515").unwrap(),
            RealmId::parse("1").unwrap(),
        );
        let connection = Connection {
            id: ConnectionId::for_pair(&portal, &realm),
            portal_id: portal.clone(),
            realm_id: realm.clone(),
            status: ConnectionStatus::Active,
            reconnect_provider: None,
            company_name: "Acme".into(),
            connected_at: START,
            updated_at: START,
            disconnected_at: None,
            initial_sync_requested_at: Some(START),
            install_url: None,
        };
        connections.save(&connection, None).await.unwrap();
        let grant = || TokenGrant {
            access_token: SecretString::from("a".to_owned()),
            refresh_token: SecretString::from("r".to_owned()),
            expires_in: 3600,
        };
        tokens
            .store_grant(&TokenOwner::Portal(portal), &grant())
            .await
            .unwrap();
        tokens
            .store_grant(&TokenOwner::Realm(realm), &grant())
            .await
            .unwrap();

        let day = KEEP_ALIVE_AFTER;
        let fresh = keep_alive(&connections, &tokens, START, day).await.unwrap();
        assert_eq!(
            fresh,
            KeepAliveReport {
                connections: 1,
                ..KeepAliveReport::default()
            }
        );
        assert_eq!(
            provider.0.load(Ordering::SeqCst),
            0,
            "fresh tokens are left alone"
        );

        clock.fetch_add(2 * day.as_millis() as i64, Ordering::SeqCst);
        let later = START + 2 * day.as_secs() as i64;
        let refused = keep_alive(&connections, &tokens, later, day).await.unwrap();
        assert_eq!(refused.reconnect_required, vec![connection.id.clone()]);
        let stored = connections
            .get(&connection.id, later)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.status, ConnectionStatus::ReconnectRequired);
        assert_eq!(
            stored.reconnect_provider,
            Some(crate::domain::Provider::Qbo)
        );

        let calls = provider.0.load(Ordering::SeqCst);
        let next = keep_alive(&connections, &tokens, later + 60, day)
            .await
            .unwrap();
        assert_eq!(next.connections, 0, "no longer polled");
        assert_eq!(provider.0.load(Ordering::SeqCst), calls, "nor refreshed");
    }
}

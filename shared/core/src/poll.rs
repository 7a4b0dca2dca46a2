//! Scheduled polling: finds the connections and objects that are due, reads their changes since
//! each cursor and queues them for `object-sync`. Triggered by the schedule and by nudges.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use std::sync::Arc;
use std::time::Duration;

use crate::connection::registry::{ConnectionStatus, Connections};
use crate::connection::tokens::{TokenError, TokenKeeper, TokenOwner};
use crate::domain::ConnectionId;
use crate::error::Error;
use crate::runtime::sqs_batch::{self, LogTerminalFailures, Ordering};
use crate::runtime::Services;

/// The events that start a poll: the schedule's tick, or a batch of nudges from the poll-nudge
/// queue (change notifications asking to poll one connection now).
#[derive(Debug)]
pub enum PollTrigger {
    Schedule,
    Nudges(SqsEvent),
}

impl PollTrigger {
    /// SQS events carry `Records`; EventBridge schedule events carry `detail-type`.
    pub fn from_event(event: Value) -> Result<Self, Error> {
        if event.get("Records").is_some() {
            serde_json::from_value(event)
                .map(PollTrigger::Nudges)
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

#[derive(Debug, Deserialize)]
pub struct PollNudge {
    pub connection_id: String,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum PollResponse {
    Schedule(KeepAliveReport),
    Nudges(SqsBatchResponse),
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
    for connection in active {
        let owners = [
            TokenOwner::Realm(connection.realm_id.clone()),
            TokenOwner::Portal(connection.portal_id.clone()),
        ];
        for owner in owners {
            match tokens.keep_alive(&owner, max_idle).await {
                Ok(()) => {}
                Err(
                    TokenError::ReconnectRequired { provider }
                    | TokenError::NotConnected { provider },
                ) => {
                    connections
                        .require_reconnect(&connection.id, provider, now)
                        .await?;
                    tracing::warn!(connection = %connection.id, provider = provider.as_str(),
                        "tokens refused: the connection waits for a reconnect");
                    report.reconnect_required.push(connection.id.clone());
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

/// The poll function's parts, built once per cold start.
pub struct Poller {
    connections: Connections,
    tokens: Arc<TokenKeeper>,
}

impl Poller {
    pub fn new(services: &Services) -> Result<Self, Error> {
        Ok(Self {
            connections: Connections::new(services.store.clone()),
            tokens: services.token_keeper(services.providers()?),
        })
    }

    pub async fn handle(&self, event: Value) -> Result<PollResponse, Error> {
        match PollTrigger::from_event(event)? {
            // Reading changes arrives with the data sync; until then the schedule keeps tokens alive.
            PollTrigger::Schedule => Ok(PollResponse::Schedule(
                keep_alive(
                    &self.connections,
                    &self.tokens,
                    crate::runtime::now_seconds(),
                    KEEP_ALIVE_AFTER,
                )
                .await?,
            )),
            PollTrigger::Nudges(event) => {
                let response = sqs_batch::process_batch(
                    event,
                    Ordering::Standard { concurrency: 4 },
                    &LogTerminalFailures,
                    |_nudge: PollNudge, _| async {
                        Err(Error::NotImplemented {
                            capability: "polling on a nudge",
                        })
                    },
                )
                .await?;
                Ok(PollResponse::Nudges(response))
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
        let nudges = json!({"Records": [{"messageId": "m1", "body": "{}"}]});
        assert!(
            matches!(PollTrigger::from_event(nudges), Ok(PollTrigger::Nudges(e)) if e.records.len() == 1)
        );
        assert!(PollTrigger::from_event(json!({"hello": "world"})).is_err());
    }
}

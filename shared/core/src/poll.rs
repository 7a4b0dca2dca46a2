//! Scheduled polling: finds the connections and objects that are due, reads their changes since
//! each cursor and queues them for `object-sync`. Triggered by the schedule and by nudges.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    Nudges(SqsBatchResponse),
}

pub async fn handle(_services: &Services, event: Value) -> Result<PollResponse, Error> {
    match PollTrigger::from_event(event)? {
        PollTrigger::Schedule => Err(Error::NotImplemented {
            capability: "scheduled polling",
        }),
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

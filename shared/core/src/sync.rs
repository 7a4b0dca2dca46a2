//! Object sync: applies batches of changes for one connection and object (filter, match, map,
//! decide, write, record in the ledger). Fed by the FIFO sync queue.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use serde::{Deserialize, Serialize};

use crate::domain::{ConnectionId, ObjectKind};
use crate::error::Error;
use crate::queue::{OutgoingMessage, QueueError};
use crate::runtime::sqs_batch::{self, LogTerminalFailures, Ordering};
use crate::runtime::Services;
use crate::settings::{Direction, ObjectSettings};

/// Work for object sync, as queued on the sync queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SyncRequest {
    /// Backfill every record of one object that passes the filters (S6), in the settings'
    /// direction(s).
    InitialSync {
        connection_id: ConnectionId,
        object: ObjectKind,
        direction: Direction,
        /// Epoch seconds.
        requested_at: i64,
    },
}

/// FIFO message group: one per connection and object, so work for them is serialised while
/// other connections and objects proceed in parallel.
pub fn message_group(connection: &ConnectionId, object: ObjectKind) -> String {
    format!("{connection}:{object}")
}

/// One FIFO message per enabled object. The dedup id is fixed by the request time, so a retried
/// enqueue of the same install is dropped by SQS instead of starting a second backfill.
pub fn initial_sync_messages(
    connection: &ConnectionId,
    settings: &[ObjectSettings],
    requested_at: i64,
) -> Result<Vec<OutgoingMessage>, QueueError> {
    settings
        .iter()
        .filter(|s| s.enabled)
        .map(|s| {
            let request = SyncRequest::InitialSync {
                connection_id: connection.clone(),
                object: s.object,
                direction: s.direction,
                requested_at,
            };
            Ok(OutgoingMessage::json(&request)?.in_group(
                message_group(connection, s.object),
                format!("initial:{connection}:{}:{requested_at}", s.object),
            ))
        })
        .collect()
}

pub async fn handle_batch(
    _services: &Services,
    event: SqsEvent,
) -> Result<SqsBatchResponse, Error> {
    sqs_batch::process_batch(
        event,
        Ordering::Fifo,
        &LogTerminalFailures,
        |_request: SyncRequest, _| async {
            // Retryable: queued work stays queued (or rests in the DLQ) until sync exists.
            Err(Error::NotImplemented {
                capability: "object sync",
            })
        },
    )
    .await
    .map_err(Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::default_settings;
    use time::macros::date;

    #[test]
    fn initial_sync_is_queued_per_enabled_object() {
        let connection = ConnectionId::parse("c0ffee").unwrap();
        let mut settings = default_settings(date!(2025 - 03 - 14));
        let all = initial_sync_messages(&connection, &settings, 1_760_000_000).unwrap();
        settings[1].enabled = false;
        let some = initial_sync_messages(&connection, &settings, 1_760_000_000).unwrap();
        settings.iter_mut().for_each(|s| s.enabled = false);
        let none = initial_sync_messages(&connection, &settings, 1_760_000_000).unwrap();

        let cases = [
            (
                all,
                vec![
                    ("contact", Direction::TwoWay),
                    ("product", Direction::QboToHubSpot),
                    ("invoice", Direction::QboToHubSpot),
                ],
            ),
            (
                some,
                vec![
                    ("contact", Direction::TwoWay),
                    ("invoice", Direction::QboToHubSpot),
                ],
            ),
            (none, vec![]),
        ];
        for (messages, expected) in cases {
            assert_eq!(messages.len(), expected.len());
            for (message, (object, direction)) in messages.iter().zip(expected) {
                assert_eq!(
                    message.group_id.as_deref(),
                    Some(&*format!("c0ffee:{object}"))
                );
                assert_eq!(
                    message.dedup_id.as_deref(),
                    Some(&*format!("initial:c0ffee:{object}:1760000000"))
                );
                let request: SyncRequest = serde_json::from_str(&message.body).unwrap();
                assert_eq!(
                    request,
                    SyncRequest::InitialSync {
                        connection_id: connection.clone(),
                        object: object.parse().unwrap(),
                        direction,
                        requested_at: 1_760_000_000,
                    }
                );
            }
        }
    }

    #[test]
    fn requests_are_tagged_by_kind() {
        let request = SyncRequest::InitialSync {
            connection_id: ConnectionId::parse("c1").unwrap(),
            object: ObjectKind::Contact,
            direction: Direction::TwoWay,
            requested_at: 5,
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            serde_json::json!({"kind": "initial_sync", "connection_id": "c1", "object": "contact",
                "direction": "two_way", "requested_at": 5})
        );
    }

    #[test]
    fn groups_name_connection_and_object() {
        let connection = ConnectionId::parse("abc").unwrap();
        assert_eq!(
            message_group(&connection, ObjectKind::Invoice),
            "abc:invoice"
        );
    }
}

//! The queues' vocabulary: what one function asks of the next.

use serde::{Deserialize, Serialize};

use super::{OutgoingMessage, QueueError};
use crate::domain::{ConnectionId, Direction, ObjectKind};

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

/// Work for the poller, on the poll queue: read one connection's changes of one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollTask {
    pub connection_id: ConnectionId,
    pub object: ObjectKind,
}

/// FIFO message group: one per connection and object, so work for them is serialised while
/// other connections and objects proceed in parallel.
pub fn message_group(connection: &ConnectionId, object: ObjectKind) -> String {
    format!("{connection}:{object}")
}

/// One FIFO message per object to backfill. The dedup id is fixed by the request time, so a
/// retried enqueue of the same install is dropped by SQS instead of starting a second backfill.
pub fn initial_sync_messages(
    connection: &ConnectionId,
    objects: impl IntoIterator<Item = (ObjectKind, Direction)>,
    requested_at: i64,
) -> Result<Vec<OutgoingMessage>, QueueError> {
    objects
        .into_iter()
        .map(|(object, direction)| {
            let request = SyncRequest::InitialSync {
                connection_id: connection.clone(),
                object,
                direction,
                requested_at,
            };
            Ok(OutgoingMessage::json(&request)?.in_group(
                message_group(connection, object),
                format!("initial:{connection}:{object}:{requested_at}"),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_sync_is_queued_per_object_in_its_group() {
        let connection = ConnectionId::parse("c0ffee").unwrap();
        let objects = [
            (ObjectKind::Contact, Direction::TwoWay),
            (ObjectKind::Invoice, Direction::QboToHubSpot),
        ];
        let messages = initial_sync_messages(&connection, objects, 1_760_000_000).unwrap();
        assert_eq!(messages.len(), 2);
        for (message, (object, direction)) in messages.iter().zip(objects) {
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
                    object,
                    direction,
                    requested_at: 1_760_000_000,
                }
            );
        }
        assert!(initial_sync_messages(&connection, [], 1)
            .unwrap()
            .is_empty());
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

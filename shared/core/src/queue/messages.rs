//! The queues' vocabulary: what one function asks of the next.

use serde::{Deserialize, Serialize};

use super::{OutgoingMessage, QueueError};
use crate::domain::{ConnectionId, Direction, ObjectKind, Provider};

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
    /// Records of one object that changed on one side (read by the poller), to apply.
    Changes {
        connection_id: ConnectionId,
        object: ObjectKind,
        from: Provider,
        /// The records as their side answered them (HubSpot objects, QBO entities).
        records: Vec<serde_json::Value>,
    },
}

/// The most records one change message carries: what one HubSpot batch call takes (100) for
/// QBO records, which are written to HubSpot; for HubSpot records, which are written to QBO in
/// batches of 30, a multiple of 30 (90), so that no QBO batch call of a message goes half full.
pub fn max_records_per_message(from: Provider) -> usize {
    match from {
        Provider::Qbo => 100,
        Provider::HubSpot => 90,
    }
}
/// The most bytes of records one change message carries (SQS takes 256 KiB in all).
pub const MAX_RECORD_BYTES_PER_MESSAGE: usize = 200 * 1024;

/// Change messages for `records` (in order), each in the object's group, with a dedup id made
/// of the records' ids and versions: reading the same window again sends nothing twice.
pub fn change_messages(
    connection: &ConnectionId,
    object: ObjectKind,
    from: Provider,
    records: Vec<(String, serde_json::Value)>,
) -> Result<Vec<OutgoingMessage>, QueueError> {
    use sha2::{Digest, Sha256};
    let mut messages = Vec::new();
    let mut chunk: Vec<(String, serde_json::Value)> = Vec::new();
    let mut bytes = 0;
    let flush = |chunk: &mut Vec<(String, serde_json::Value)>,
                 messages: &mut Vec<OutgoingMessage>|
     -> Result<(), QueueError> {
        if chunk.is_empty() {
            return Ok(());
        }
        // FIFO deduplication spans the whole queue: the id names the connection and object
        // too, or two companies' records with equal ids and versions would drop each other.
        let mut hash = Sha256::new();
        hash.update(connection.to_string().as_bytes());
        hash.update([0]);
        hash.update(object.to_string().as_bytes());
        hash.update([0]);
        for (version_key, _) in chunk.iter() {
            hash.update(version_key.as_bytes());
            hash.update([0]);
        }
        let digest: String = hash.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let request = SyncRequest::Changes {
            connection_id: connection.clone(),
            object,
            from,
            records: chunk.drain(..).map(|(_, record)| record).collect(),
        };
        messages.push(OutgoingMessage::json(&request)?.in_group(
            message_group(connection, object),
            format!("changes:{}:{digest}", from.as_str()),
        ));
        Ok(())
    };
    let most = max_records_per_message(from);
    for (version_key, record) in records {
        let size = record.to_string().len();
        if chunk.len() == most || bytes + size > MAX_RECORD_BYTES_PER_MESSAGE {
            flush(&mut chunk, &mut messages)?;
            bytes = 0;
        }
        bytes += size;
        chunk.push((version_key, record));
    }
    flush(&mut chunk, &mut messages)?;
    Ok(messages)
}

/// Work for the poller, on the poll queue: read one connection's changes of one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollTask {
    pub connection_id: ConnectionId,
    pub object: ObjectKind,
}

/// What a provider's lifecycle notification leaves to do, on the poll queue (it needs provider
/// calls, which the notification's receiver never makes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "lifecycle", rename_all = "snake_case")]
pub enum LifecycleTask {
    /// The connection was stopped (the app was uninstalled from HubSpot): revoke and forget
    /// what tokens remain, unless it was connected again since (`disconnected_at`, epoch
    /// seconds, is no longer its disconnect).
    Revoke {
        connection_id: ConnectionId,
        #[serde(default)]
        disconnected_at: Option<i64>,
    },
    /// Intuit's disconnect page was opened for this company: ask Intuit whether its tokens
    /// still work, and end the connection if not.
    CheckCompany { realm_id: crate::domain::RealmId },
}

/// A message of the poll queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PollQueueTask {
    Lifecycle(LifecycleTask),
    Read(PollTask),
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
    fn the_poll_queue_tells_its_tasks_apart() {
        let connection = ConnectionId::parse("c0ffee").unwrap();
        let read = PollQueueTask::Read(PollTask {
            connection_id: connection.clone(),
            object: ObjectKind::Product,
        });
        let revoke = PollQueueTask::Lifecycle(LifecycleTask::Revoke {
            connection_id: connection,
            disconnected_at: Some(1_900_000_000),
        });
        let check = PollQueueTask::Lifecycle(LifecycleTask::CheckCompany {
            realm_id: crate::domain::RealmId::parse("9130").unwrap(),
        });
        for task in [read, revoke, check] {
            let text = serde_json::to_string(&task).unwrap();
            assert_eq!(
                serde_json::from_str::<PollQueueTask>(&text).unwrap(),
                task,
                "{text}"
            );
        }
        // What the schedule has always queued still reads as a read.
        assert!(matches!(
            serde_json::from_str::<PollQueueTask>(r#"{"connection_id":"c1","object":"contact"}"#),
            Ok(PollQueueTask::Read(_))
        ));
        assert!(serde_json::from_str::<PollQueueTask>(r#"{"lifecycle":"explode"}"#).is_err());
    }

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
    fn changes_are_chunked_and_deduplicated_by_their_versions() {
        let connection = ConnectionId::parse("c1").unwrap();
        let records: Vec<(String, serde_json::Value)> = (0..250)
            .map(|i| (format!("{i}@1"), serde_json::json!({"id": i.to_string()})))
            .collect();
        let messages = change_messages(
            &connection,
            ObjectKind::Contact,
            Provider::HubSpot,
            records.clone(),
        )
        .unwrap();
        assert_eq!(
            messages.len(),
            3,
            "90 + 90 + 70: three full QBO batches each"
        );
        let from_qbo = change_messages(
            &connection,
            ObjectKind::Contact,
            Provider::Qbo,
            records.clone(),
        )
        .unwrap();
        assert_eq!(from_qbo.len(), 3, "100 + 100 + 50: one HubSpot batch each");
        assert!(messages
            .iter()
            .all(|m| m.group_id.as_deref() == Some("c1:contact")));
        let again = change_messages(
            &connection,
            ObjectKind::Contact,
            Provider::HubSpot,
            records.clone(),
        )
        .unwrap();
        assert_eq!(
            messages.iter().map(|m| &m.dedup_id).collect::<Vec<_>>(),
            again.iter().map(|m| &m.dedup_id).collect::<Vec<_>>(),
            "the same window read again has the same dedup ids"
        );
        let mut newer = records;
        newer[0].0 = "0@2".into();
        let changed =
            change_messages(&connection, ObjectKind::Contact, Provider::HubSpot, newer).unwrap();
        assert_ne!(
            changed[0].dedup_id, messages[0].dedup_id,
            "a new version is a new message"
        );
        assert_eq!(changed[1].dedup_id, messages[1].dedup_id);
        // Equal ids and versions of another object or company are other records.
        let ids = |connection: &str, object| {
            change_messages(
                &ConnectionId::parse(connection).unwrap(),
                object,
                Provider::Qbo,
                vec![("1@0".into(), serde_json::json!({"Id": "1"}))],
            )
            .unwrap()
            .remove(0)
            .dedup_id
        };
        let customer = ids("c1", ObjectKind::Contact);
        assert_ne!(customer, ids("c1", ObjectKind::Product));
        assert_ne!(customer, ids("c2", ObjectKind::Contact));
        let big: Vec<(String, serde_json::Value)> = (0..3)
            .map(|i| {
                (
                    i.to_string(),
                    serde_json::json!({"x": "y".repeat(90 * 1024)}),
                )
            })
            .collect();
        let split = change_messages(&connection, ObjectKind::Product, Provider::Qbo, big).unwrap();
        assert_eq!(split.len(), 2, "bytes bound a message too");
        assert!(split
            .iter()
            .all(|m| m.body.len() < crate::queue::MAX_BODY_BYTES));
        let request: SyncRequest = serde_json::from_str(&split[1].body).unwrap();
        assert!(
            matches!(request, SyncRequest::Changes { from: Provider::Qbo, ref records, .. } if records.len() == 1)
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

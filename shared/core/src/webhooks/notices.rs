//! What a change notification says, read from its raw body (pure). A notification only names
//! which object of which account changed: the poll reads what changed, so nothing here is ever
//! written anywhere as data.
//!
//! - HubSpot: a JSON array of events (`portalId`, `subscriptionType`, `objectTypeId` for the
//!   generic `object.*` types, `occurredAt` in epoch ms). The app-uninstall event's shape is
//!   unconfirmed: any `subscriptionType` naming an uninstall (`app.uninstall`, `APP_UNINSTALL`, …)
//!   counts as one.
//! - QuickBooks: CloudEvents (a JSON array; `type` = `qbo.<entity>.<verb>.v1`, `intuitaccountid`
//!   = the company, `time`) or the legacy `{"eventNotifications": [{realmId, dataChangeEvent:
//!   {entities: [{name, operation, lastUpdated}]}}]}`.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::domain::{ObjectKind, PortalId, RealmId};

/// One thing a notification asks for, after events of the same account and object are merged.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Notice {
    /// Records of `object` changed in the HubSpot portal.
    PortalChange {
        portal: PortalId,
        object: ObjectKind,
    },
    /// Records of `object` changed in the QuickBooks company.
    CompanyChange { realm: RealmId, object: ObjectKind },
    /// The app was uninstalled from the portal (at this epoch ms, when the event says).
    Uninstalled {
        portal: PortalId,
        occurred_at_ms: Option<i64>,
    },
}

/// A notification, read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Notices {
    pub notices: BTreeSet<Notice>,
    /// Events in the body.
    pub events: usize,
    /// Events about nothing the integration syncs (deals, companies, accounts, …).
    pub ignored: usize,
    /// Epoch ms of the newest event that says when it happened.
    pub newest_ms: Option<i64>,
}

impl Notices {
    fn add(&mut self, notice: Option<Notice>, at_ms: Option<i64>) {
        self.events += 1;
        match notice {
            Some(notice) => {
                self.notices.insert(notice);
            }
            None => self.ignored += 1,
        }
        if let Some(at) = at_ms {
            self.newest_ms = Some(self.newest_ms.map_or(at, |n| n.max(at)));
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the notification body is not what {provider} sends: {reason}")]
pub struct MalformedNotification {
    pub provider: &'static str,
    pub reason: String,
}

fn malformed(provider: &'static str, reason: impl Into<String>) -> MalformedNotification {
    MalformedNotification {
        provider,
        reason: reason.into(),
    }
}

/// A HubSpot id sent as a number or a string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(u64),
    Text(String),
}

impl NumberOrText {
    fn text(&self) -> String {
        match self {
            NumberOrText::Number(n) => n.to_string(),
            NumberOrText::Text(t) => t.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HubSpotEvent {
    portal_id: NumberOrText,
    subscription_type: String,
    #[serde(default)]
    object_type_id: Option<String>,
    #[serde(default)]
    occurred_at: Option<i64>,
}

/// The synced object an event of `subscription_type` (with `object_type_id` for `object.*`)
/// is about; `None` for what is not synced.
pub fn hubspot_object(subscription_type: &str, object_type_id: Option<&str>) -> Option<ObjectKind> {
    let (prefix, _) = subscription_type.split_once('.')?;
    let by_type_id = |id: &str| match id {
        "0-1" => Some(ObjectKind::Contact),
        "0-7" => Some(ObjectKind::Product),
        // Invoices, their line items and the payments recorded against them.
        "0-53" | "0-8" | "0-101" => Some(ObjectKind::Invoice),
        _ => None,
    };
    match prefix {
        "contact" => Some(ObjectKind::Contact),
        "product" => Some(ObjectKind::Product),
        "line_item" | "invoice" | "commerce_payment" => Some(ObjectKind::Invoice),
        "object" => object_type_id.and_then(by_type_id),
        _ => None,
    }
}

fn is_uninstall(subscription_type: &str) -> bool {
    subscription_type.to_ascii_lowercase().contains("uninstall")
}

/// Reads a HubSpot webhook body.
pub fn read_hubspot(body: &[u8]) -> Result<Notices, MalformedNotification> {
    const WHO: &str = "HubSpot";
    let events: Vec<Value> = serde_json::from_slice(body)
        .map_err(|e| malformed(WHO, format!("expected a JSON array of events ({e})")))?;
    let mut read = Notices::default();
    for (index, value) in events.into_iter().enumerate() {
        let event: HubSpotEvent = serde_json::from_value(value)
            .map_err(|e| malformed(WHO, format!("event {index}: {e}")))?;
        let portal = PortalId::parse(event.portal_id.text())
            .map_err(|e| malformed(WHO, format!("event {index}: {e}")))?;
        let notice = if is_uninstall(&event.subscription_type) {
            Some(Notice::Uninstalled {
                portal,
                occurred_at_ms: event.occurred_at,
            })
        } else {
            hubspot_object(&event.subscription_type, event.object_type_id.as_deref())
                .map(|object| Notice::PortalChange { portal, object })
        };
        read.add(notice, event.occurred_at);
    }
    Ok(read)
}

/// The synced object a QuickBooks entity (any case: `Customer`, `customer`) belongs to.
pub fn qbo_object(entity: &str) -> Option<ObjectKind> {
    match entity.to_ascii_lowercase().as_str() {
        "customer" => Some(ObjectKind::Contact),
        "item" => Some(ObjectKind::Product),
        // A payment changes the balance of the invoices it is applied to.
        "invoice" | "payment" => Some(ObjectKind::Invoice),
        _ => None,
    }
}

#[derive(Debug, Deserialize)]
struct CloudEvent {
    #[serde(rename = "type")]
    kind: String,
    intuitaccountid: String,
    #[serde(default)]
    time: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyBody {
    event_notifications: Vec<LegacyNotification>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyNotification {
    realm_id: String,
    #[serde(default)]
    data_change_event: Option<LegacyChanges>,
}

#[derive(Debug, Deserialize)]
struct LegacyChanges {
    #[serde(default)]
    entities: Vec<LegacyEntity>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyEntity {
    name: String,
    #[serde(default)]
    last_updated: Option<String>,
}

fn epoch_ms(text: Option<&str>) -> Option<i64> {
    let at = OffsetDateTime::parse(text?, &Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Reads a QuickBooks webhook body, CloudEvents or legacy.
pub fn read_qbo(body: &[u8]) -> Result<Notices, MalformedNotification> {
    const WHO: &str = "QuickBooks";
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| malformed(WHO, format!("the body is not JSON ({e})")))?;
    let realm = |text: &str, at: &str| {
        RealmId::parse(text).map_err(|e| malformed(WHO, format!("{at}: {e}")))
    };
    let mut read = Notices::default();
    match value {
        Value::Array(events) => {
            for (index, event) in events.into_iter().enumerate() {
                let event: CloudEvent = serde_json::from_value(event)
                    .map_err(|e| malformed(WHO, format!("event {index}: {e}")))?;
                // `qbo.<entity>.<verb>.v1`
                let mut parts = event.kind.split('.');
                let entity = match (parts.next(), parts.next()) {
                    (Some("qbo"), Some(entity)) => entity,
                    _ => {
                        return Err(malformed(
                            WHO,
                            format!("event {index}: type {:?} is not qbo.<entity>.…", event.kind),
                        ))
                    }
                };
                let realm = realm(&event.intuitaccountid, &format!("event {index}"))?;
                let notice =
                    qbo_object(entity).map(|object| Notice::CompanyChange { realm, object });
                read.add(notice, epoch_ms(event.time.as_deref()));
            }
        }
        Value::Object(_) => {
            let legacy: LegacyBody = serde_json::from_value(value).map_err(|e| {
                malformed(
                    WHO,
                    format!("expected CloudEvents or eventNotifications ({e})"),
                )
            })?;
            for (index, notification) in legacy.event_notifications.into_iter().enumerate() {
                let realm = realm(&notification.realm_id, &format!("notification {index}"))?;
                for entity in notification
                    .data_change_event
                    .map(|c| c.entities)
                    .unwrap_or_default()
                {
                    let notice = qbo_object(&entity.name).map(|object| Notice::CompanyChange {
                        realm: realm.clone(),
                        object,
                    });
                    read.add(notice, epoch_ms(entity.last_updated.as_deref()));
                }
            }
        }
        _ => return Err(malformed(WHO, "expected CloudEvents or eventNotifications")),
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn portal(p: &str) -> PortalId {
        PortalId::parse(p).unwrap()
    }

    fn realm(r: &str) -> RealmId {
        RealmId::parse(r).unwrap()
    }

    #[test]
    fn hubspot_event_types_name_their_object() {
        let cases = [
            ("contact.creation", None, Some(ObjectKind::Contact)),
            ("contact.propertyChange", None, Some(ObjectKind::Contact)),
            ("contact.associationChange", None, Some(ObjectKind::Contact)),
            ("contact.privacyDeletion", None, Some(ObjectKind::Contact)),
            ("product.deletion", None, Some(ObjectKind::Product)),
            ("line_item.propertyChange", None, Some(ObjectKind::Invoice)),
            ("object.creation", Some("0-53"), Some(ObjectKind::Invoice)),
            (
                "object.propertyChange",
                Some("0-101"),
                Some(ObjectKind::Invoice),
            ),
            ("object.merge", Some("0-1"), Some(ObjectKind::Contact)),
            ("object.creation", Some("0-7"), Some(ObjectKind::Product)),
            ("object.creation", Some("0-3"), None),
            ("object.creation", None, None),
            ("deal.propertyChange", None, None),
            ("company.propertyChange", None, None),
            ("nonsense", None, None),
        ];
        for (kind, type_id, expected) in cases {
            assert_eq!(
                hubspot_object(kind, type_id),
                expected,
                "{kind} {type_id:?}"
            );
        }
    }

    #[test]
    fn a_hubspot_body_is_merged_per_portal_and_object() {
        let body = br#"[
            {"eventId":1,"subscriptionId":1,"portalId":62515,"appId":1,"occurredAt":1000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":1},
            {"eventId":2,"subscriptionId":2,"portalId":62515,"appId":1,"occurredAt":3000,"subscriptionType":"contact.propertyChange","propertyName":"email","propertyValue":"a@b.c","objectId":1},
            {"eventId":3,"subscriptionId":3,"portalId":"62516","appId":1,"occurredAt":2000,"subscriptionType":"object.creation","objectTypeId":"0-53","objectId":7},
            {"eventId":4,"subscriptionId":4,"portalId":62515,"appId":1,"occurredAt":2000,"subscriptionType":"deal.creation","objectId":9},
            {"eventId":5,"subscriptionId":5,"portalId":62517,"appId":1,"occurredAt":2500,"subscriptionType":"app.uninstall"}
        ]"#;
        let read = read_hubspot(body).unwrap();
        assert_eq!(read.events, 5);
        assert_eq!(read.ignored, 1);
        assert_eq!(read.newest_ms, Some(3000));
        assert_eq!(
            read.notices.into_iter().collect::<Vec<_>>(),
            vec![
                Notice::PortalChange {
                    portal: portal("62515"),
                    object: ObjectKind::Contact
                },
                Notice::PortalChange {
                    portal: portal("62516"),
                    object: ObjectKind::Invoice
                },
                Notice::Uninstalled {
                    portal: portal("62517"),
                    occurred_at_ms: Some(2500),
                },
            ]
        );
    }

    #[test]
    fn malformed_hubspot_bodies_are_refused_whole() {
        let cases: [&[u8]; 6] = [
            b"",
            b"{}",
            b"not json",
            br#"[{"subscriptionType":"contact.creation"}]"#,
            br#"[{"portalId":"abc","subscriptionType":"contact.creation"}]"#,
            br#"[{"portalId":1,"subscriptionType":"contact.creation"}, 5]"#,
        ];
        for body in cases {
            assert!(
                read_hubspot(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(read_hubspot(b"[]").unwrap(), Notices::default());
    }

    #[test]
    fn quickbooks_cloud_events_and_legacy_bodies_say_the_same() {
        let cloud = br#"[
            {"specversion":"1.0","id":"a","source":"intuit.x","type":"qbo.customer.updated.v1","time":"2026-01-01T00:00:01Z","intuitentityid":"1","intuitaccountid":"9130","data":{}},
            {"specversion":"1.0","id":"b","source":"intuit.x","type":"qbo.payment.created.v1","time":"2026-01-01T00:00:02.500Z","intuitentityid":"2","intuitaccountid":"9130"},
            {"specversion":"1.0","id":"c","source":"intuit.x","type":"qbo.account.created.v1","intuitentityid":"3","intuitaccountid":"9130"}
        ]"#;
        let legacy = br#"{"eventNotifications":[{"realmId":"9130","dataChangeEvent":{"entities":[
            {"name":"Customer","id":"1","operation":"Update","lastUpdated":"2026-01-01T00:00:01Z"},
            {"name":"Payment","id":"2","operation":"Create","lastUpdated":"2026-01-01T00:00:02.500Z"},
            {"name":"Account","id":"3","operation":"Create"}]}}]}"#;
        let expected = vec![
            Notice::CompanyChange {
                realm: realm("9130"),
                object: ObjectKind::Contact,
            },
            Notice::CompanyChange {
                realm: realm("9130"),
                object: ObjectKind::Invoice,
            },
        ];
        for body in [&cloud[..], &legacy[..]] {
            let read = read_qbo(body).unwrap();
            assert_eq!(read.events, 3);
            assert_eq!(read.ignored, 1);
            assert_eq!(read.newest_ms, Some(1_767_225_602_500));
            assert_eq!(read.notices.into_iter().collect::<Vec<_>>(), expected);
        }
    }

    #[test]
    fn malformed_quickbooks_bodies_are_refused_whole() {
        let cases: [&[u8]; 6] = [
            b"",
            b"42",
            br#"{"something":"else"}"#,
            br#"[{"type":"qbo.customer.updated.v1"}]"#,
            br#"[{"type":"crm.customer.updated.v1","intuitaccountid":"1"}]"#,
            br#"{"eventNotifications":[{"realmId":"abc"}]}"#,
        ];
        for body in cases {
            assert!(read_qbo(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }
}

//! App webhooks: subscriptions (set through the control API or HubSpot's management API in
//! `webhooks_api`, both on these settings), CRM changes and app uninstalls turned into events,
//! POSTed to the target URL as JSON arrays of at most 100 events with `X-HubSpot-Signature` (v1,
//! or v2) and `X-HubSpot-Signature-v3` + timestamp, re-signed on every attempt and retried on
//! failure except for 400/401/403/404/405.

use super::format::{epoch_ms, iso};
use super::signature;
use super::store::{Change, ChangeKind};
use crate::common::sync::lock;
use crate::common::webhook::{Delivery, RetryPolicy, WebhookSender};
use crate::common::SandboxClock;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::mpsc;

/// The event type of the app-uninstall notification. Not in HubSpot's legacy `eventType` enum:
/// the shape is UNCONFIRMED (legacy apps have no documented uninstall webhook; the new platform's
/// `APP_LIFECYCLE_EVENT`/`APP_UNINSTALL` lives in the Webhooks Journal). The sandbox sends it like
/// a CRM event so that an app's uninstall handling can be tested at all.
pub const APP_UNINSTALL: &str = "app.uninstall";

/// One subscription, in the shape of HubSpot's webhook subscriptions API.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    #[serde(default)]
    pub id: u64,
    /// `contact.creation`, `deal.propertyChange`, `object.creation` (with `objectTypeId`) …
    pub event_type: String,
    #[serde(default)]
    pub property_name: Option<String>,
    #[serde(default)]
    pub object_type_id: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
    /// ISO-8601; filled in when the subscription is stored (the management API returns them).
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct WebhookSettings {
    pub target_url: Option<String>,
    pub subscriptions: Vec<Subscription>,
    /// Events per POST (HubSpot: 100, unconfirmed).
    pub max_events_per_request: usize,
    /// Changes within this window go out together (0 = whatever is queued at once).
    pub aggregation_ms: u64,
    /// Waits before each retry (default: 10 retries spread over about 24 hours).
    pub retry_delays_ms: Vec<u64>,
    /// How long one attempt may take (HubSpot: believed 5 s).
    pub attempt_timeout_ms: u64,
    /// The legacy signature header: `v1` (webhooks API) or `v2`.
    pub signature_version: String,
    /// Also send `X-HubSpot-Signature-v3` and `X-HubSpot-Request-Timestamp`.
    pub send_v3: bool,
    /// `throttling.maxConcurrentRequests` of the management API: stored and returned, not
    /// enforced (deliveries to one URL go one at a time anyway).
    pub max_concurrent_requests: u32,
    /// `throttling.period` (`SECONDLY` or `ROLLING_MINUTE`), stored as sent.
    pub throttling_period: String,
    /// When the target URL was set (ISO-8601): the management API's settings `createdAt`.
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            target_url: None,
            subscriptions: Vec::new(),
            max_events_per_request: 100,
            aggregation_ms: 0,
            retry_delays_ms: [1, 2, 5, 10, 30, 60, 120, 240, 480, 480]
                .iter()
                .map(|m| m * 60_000)
                .collect(),
            attempt_timeout_ms: 5_000,
            signature_version: "v1".into(),
            send_v3: true,
            max_concurrent_requests: 10,
            throttling_period: "SECONDLY".into(),
            created_at: None,
            updated_at: None,
        }
    }
}

impl WebhookSettings {
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            delays: self
                .retry_delays_ms
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
            attempt_timeout: Duration::from_millis(self.attempt_timeout_ms),
            final_statuses: vec![400, 401, 403, 404, 405],
        }
    }
}

/// What the event loop turns into events, in the order it happened.
#[derive(Clone, Debug)]
enum Notice {
    Changes(Vec<Change>),
    /// The app's install in a portal ended (a user uninstalled it, or the developer did).
    Uninstall {
        portal_id: u64,
        at: OffsetDateTime,
    },
}

#[derive(Debug)]
pub struct HubWebhooks {
    settings: Arc<Mutex<WebhookSettings>>,
    tx: mpsc::UnboundedSender<Notice>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Notice>>>,
    pub sender: WebhookSender,
    client_secret: String,
    app_id: u64,
    next_subscription: AtomicU64,
    clock: SandboxClock,
}

impl HubWebhooks {
    pub fn new(
        settings: WebhookSettings,
        client_secret: String,
        app_id: u64,
        clock: SandboxClock,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let hooks = Self {
            sender: WebhookSender::new(clock.clone(), settings.retry_policy()),
            settings: Arc::new(Mutex::new(WebhookSettings::default())),
            tx,
            rx: Mutex::new(Some(rx)),
            client_secret,
            app_id,
            next_subscription: AtomicU64::new(1),
            clock,
        };
        hooks.set_settings(settings);
        hooks
    }

    pub fn settings(&self) -> WebhookSettings {
        lock(&self.settings).clone()
    }

    /// Now, as the management API writes timestamps.
    pub fn now_iso(&self) -> String {
        iso(self.clock.now())
    }

    /// A fresh subscription id.
    pub fn next_subscription_id(&self) -> u64 {
        self.next_subscription.fetch_add(1, Ordering::SeqCst)
    }

    /// Replaces the settings; subscriptions without an id get one, missing timestamps are now.
    pub fn set_settings(&self, mut settings: WebhookSettings) -> WebhookSettings {
        let now = self.now_iso();
        for s in &mut settings.subscriptions {
            if s.id == 0 {
                s.id = self.next_subscription_id();
            }
            stamp(s, &now);
        }
        if settings.target_url.is_some() {
            let created = settings
                .created_at
                .get_or_insert_with(|| now.clone())
                .clone();
            settings.updated_at.get_or_insert(created);
        }
        self.sender.set_policy(settings.retry_policy());
        *lock(&self.settings) = settings.clone();
        settings
    }

    /// Changes the settings in place under the lock (the management API's edits).
    pub fn update<R>(&self, f: impl FnOnce(&mut WebhookSettings) -> R) -> R {
        let mut settings = lock(&self.settings);
        let out = f(&mut settings);
        self.sender.set_policy(settings.retry_policy());
        out
    }

    pub fn add_subscription(&self, mut sub: Subscription) -> Subscription {
        sub.id = self.next_subscription_id();
        stamp(&mut sub, &self.now_iso());
        lock(&self.settings).subscriptions.push(sub.clone());
        sub
    }

    pub fn remove_subscription(&self, id: u64) -> bool {
        let mut s = lock(&self.settings);
        let before = s.subscriptions.len();
        s.subscriptions.retain(|x| x.id != id);
        s.subscriptions.len() != before
    }

    pub fn notify(&self, changes: Vec<Change>) {
        if !changes.is_empty() {
            let _ = self.tx.send(Notice::Changes(changes));
        }
    }

    /// The app's install in `portal_id` ended: active `app.uninstall` subscriptions get an event
    /// (through the same queue, so it follows the portal's earlier CRM events).
    pub fn notify_uninstall(&self, portal_id: u64) {
        let _ = self.tx.send(Notice::Uninstall {
            portal_id,
            at: self.clock.now(),
        });
    }

    /// Starts the event loop (once; needs a Tokio runtime).
    pub fn start(&self) {
        let Some(mut rx) = lock(&self.rx).take() else {
            return;
        };
        let settings = self.settings.clone();
        let sender = self.sender.clone();
        let secret = self.client_secret.clone();
        let app_id = self.app_id;
        let clock = self.clock.clone();
        let event_ids = Arc::new(AtomicU64::new(1));
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let window = lock(&settings).aggregation_ms;
                let mut batch = vec![first];
                if window > 0 {
                    let deadline = tokio::time::Instant::now() + Duration::from_millis(window);
                    while let Ok(Some(more)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                        batch.push(more);
                    }
                } else {
                    while let Ok(more) = rx.try_recv() {
                        batch.push(more);
                    }
                }
                let current = lock(&settings).clone();
                let Some(url) = current.target_url.clone() else {
                    continue;
                };
                let mut events = Vec::new();
                for notice in &batch {
                    match notice {
                        Notice::Changes(changes) => events.extend(events_for(
                            changes,
                            &current.subscriptions,
                            app_id,
                            &event_ids,
                        )),
                        Notice::Uninstall { portal_id, at } => events.extend(uninstall_events(
                            *portal_id,
                            *at,
                            &current.subscriptions,
                            app_id,
                            &event_ids,
                        )),
                    }
                }
                for chunk in events.chunks(current.max_events_per_request.max(1)) {
                    let chunk: Vec<Value> = chunk.to_vec();
                    let secret = secret.clone();
                    let target = url.clone();
                    let version = current.signature_version.clone();
                    let with_v3 = current.send_v3;
                    let clock = clock.clone();
                    let render = Arc::new(move |attempt: u32| {
                        let attempt_events: Vec<Value> = chunk
                            .iter()
                            .cloned()
                            .map(|mut e| {
                                if let Some(m) = e.as_object_mut() {
                                    m.insert(
                                        "attemptNumber".into(),
                                        json!(attempt.saturating_sub(1)),
                                    );
                                }
                                e
                            })
                            .collect();
                        let body = Value::Array(attempt_events).to_string();
                        let ts = epoch_ms(clock.now());
                        let headers =
                            signature::headers(&secret, &version, with_v3, &target, &body, ts);
                        (body, headers)
                    });
                    let (body, headers) = render(1);
                    sender.send(Delivery {
                        url: url.clone(),
                        body,
                        headers,
                        render: Some(render),
                    });
                }
            }
        });
    }
}

fn stamp(sub: &mut Subscription, now: &str) {
    let created = sub
        .created_at
        .get_or_insert_with(|| now.to_string())
        .clone();
    sub.updated_at.get_or_insert(created);
}

/// One event per active `app.uninstall` subscription: the fields every HubSpot event carries,
/// nothing object-specific (UNCONFIRMED shape, see [`APP_UNINSTALL`]).
pub fn uninstall_events(
    portal_id: u64,
    at: OffsetDateTime,
    subs: &[Subscription],
    app_id: u64,
    ids: &AtomicU64,
) -> Vec<Value> {
    subs.iter()
        .filter(|s| s.active && s.event_type == APP_UNINSTALL)
        .map(|s| {
            json!({
                "eventId": ids.fetch_add(1, Ordering::SeqCst),
                "subscriptionId": s.id,
                "portalId": portal_id,
                "appId": app_id,
                "occurredAt": epoch_ms(at),
                "subscriptionType": APP_UNINSTALL,
                "attemptNumber": 0,
            })
        })
        .collect()
}

fn matches(sub: &Subscription, change: &Change, suffix: &str) -> bool {
    if !sub.active {
        return false;
    }
    let t = change.object_type;
    let type_ok = match sub.event_type.split_once('.') {
        Some(("object", s)) => s == suffix && sub.object_type_id.as_deref() == Some(t.type_id()),
        Some((prefix, s)) => Some(prefix) == t.webhook_prefix() && s == suffix,
        None => false,
    };
    if !type_ok {
        return false;
    }
    match (&change.kind, &sub.property_name) {
        (ChangeKind::PropertyChange { name, .. }, Some(wanted)) => name == wanted,
        (ChangeKind::PropertyChange { .. }, None) => false,
        _ => true,
    }
}

/// The events a batch of changes produces for the active subscriptions.
pub fn events_for(
    changes: &[Change],
    subs: &[Subscription],
    app_id: u64,
    ids: &AtomicU64,
) -> Vec<Value> {
    let mut out = Vec::new();
    for change in changes {
        let suffix = match &change.kind {
            ChangeKind::Creation => "creation",
            ChangeKind::Deletion => "deletion",
            ChangeKind::PropertyChange { .. } => "propertyChange",
            ChangeKind::Merge { .. } => "merge",
            ChangeKind::AssociationChange { .. } => "associationChange",
        };
        for sub in subs.iter().filter(|s| matches(s, change, suffix)) {
            let mut e = Map::new();
            e.insert("eventId".into(), json!(ids.fetch_add(1, Ordering::SeqCst)));
            e.insert("subscriptionId".into(), json!(sub.id));
            e.insert("portalId".into(), json!(change.portal_id));
            e.insert("appId".into(), json!(app_id));
            e.insert("occurredAt".into(), json!(epoch_ms(change.at)));
            e.insert("subscriptionType".into(), json!(sub.event_type));
            e.insert("attemptNumber".into(), json!(0));
            e.insert("objectId".into(), json!(change.object_id));
            if sub.event_type.starts_with("object.") {
                e.insert("objectTypeId".into(), json!(change.object_type.type_id()));
            }
            e.insert("changeSource".into(), json!(change.source.change_source));
            if let Some(s) = &change.source.source_id {
                e.insert("sourceId".into(), json!(s));
            }
            match &change.kind {
                ChangeKind::Creation => {
                    e.insert("changeFlag".into(), json!("NEW"));
                }
                ChangeKind::Deletion => {
                    e.insert("changeFlag".into(), json!("DELETED"));
                }
                ChangeKind::PropertyChange { name, value } => {
                    e.insert("propertyName".into(), json!(name));
                    e.insert("propertyValue".into(), json!(value));
                }
                ChangeKind::Merge { primary, merged } => {
                    e.insert("primaryObjectId".into(), json!(primary));
                    e.insert("mergedObjectIds".into(), json!(merged));
                    e.insert("newObjectId".into(), json!(change.object_id));
                    e.insert("numberOfPropertiesMoved".into(), json!(0));
                }
                ChangeKind::AssociationChange {
                    to_type,
                    to_id,
                    type_id,
                    removed,
                    primary,
                } => {
                    e.remove("objectId");
                    e.insert(
                        "associationType".into(),
                        json!(format!(
                            "{}_TO_{}",
                            change.object_type.upper(),
                            to_type.upper()
                        )),
                    );
                    e.insert("associationTypeId".into(), json!(type_id));
                    e.insert("fromObjectId".into(), json!(change.object_id));
                    e.insert("toObjectId".into(), json!(to_id));
                    e.insert("associationRemoved".into(), json!(removed));
                    e.insert("isPrimaryAssociation".into(), json!(primary));
                }
            }
            out.push(Value::Object(e));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hubspot::objects::ObjectType;
    use crate::hubspot::store::Source;

    fn sub(id: u64, event_type: &str, object_type_id: Option<&str>, active: bool) -> Subscription {
        Subscription {
            id,
            event_type: event_type.into(),
            property_name: None,
            object_type_id: object_type_id.map(str::to_string),
            active,
            created_at: None,
            updated_at: None,
        }
    }

    fn creation(object_type: ObjectType, object_id: u64) -> Change {
        Change {
            portal_id: 62515,
            object_type,
            object_id,
            kind: ChangeKind::Creation,
            at: OffsetDateTime::UNIX_EPOCH,
            source: Source::integration(54321),
        }
    }

    #[test]
    fn uninstall_events_go_to_active_uninstall_subscriptions_only() {
        let subs = [
            sub(1, APP_UNINSTALL, None, true),
            sub(2, APP_UNINSTALL, None, false),
            sub(3, "contact.creation", None, true),
        ];
        let ids = AtomicU64::new(7);
        let at = OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(1_700_000_000_123);
        let events = uninstall_events(62515, at, &subs, 54321, &ids);
        assert_eq!(
            events,
            vec![
                json!({"eventId": 7, "subscriptionId": 1, "portalId": 62515, "appId": 54321,
                        "occurredAt": 1_700_000_000_123i64, "subscriptionType": "app.uninstall",
                        "attemptNumber": 0})
            ]
        );
        // CRM changes never match the lifecycle subscription.
        let crm = events_for(&[creation(ObjectType::Contacts, 5)], &subs, 54321, &ids);
        assert_eq!(crm.len(), 1);
        assert_eq!(crm[0]["subscriptionId"], 3);
    }

    #[test]
    fn generic_and_legacy_subscriptions_match_their_object_types() {
        let subs = [
            sub(1, "object.creation", Some("0-53"), true),
            sub(2, "object.creation", Some("0-101"), true),
            sub(3, "product.creation", None, true),
            sub(4, "line_item.creation", None, true),
            sub(5, "contact.creation", None, true),
        ];
        let ids = AtomicU64::new(1);
        let changes = [
            creation(ObjectType::Invoices, 10),
            creation(ObjectType::CommercePayments, 11),
            creation(ObjectType::Products, 12),
            creation(ObjectType::LineItems, 13),
            creation(ObjectType::Contacts, 14),
            creation(ObjectType::Quotes, 15),
        ];
        let events = events_for(&changes, &subs, 54321, &ids);
        let got: Vec<(u64, u64)> = events
            .iter()
            .map(|e| {
                (
                    e["subscriptionId"].as_u64().unwrap_or(0),
                    e["objectId"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        assert_eq!(got, vec![(1, 10), (2, 11), (3, 12), (4, 13), (5, 14)]);
        assert_eq!(events[0]["objectTypeId"], "0-53");
        assert_eq!(events[1]["objectTypeId"], "0-101");
        assert!(events[2].get("objectTypeId").is_none());
    }

    #[tokio::test]
    async fn an_uninstall_is_delivered_signed_through_the_webhook_queue() {
        use axum::body::Bytes;
        use axum::http::HeaderMap;
        use axum::routing::post;

        type Got = Arc<Mutex<Vec<(HeaderMap, String)>>>;
        let got: Got = Arc::default();
        let sink = got.clone();
        let router = axum::Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: Bytes| {
                let sink = sink.clone();
                async move {
                    lock(&sink).push((headers, String::from_utf8_lossy(&body).into_owned()));
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let Ok(server) = crate::common::server::serve(([127, 0, 0, 1], 0).into(), router).await
        else {
            panic!("receiver did not start");
        };
        let url = format!("http://{}/hook", server.addr);
        let secret = "secret";
        let hooks = HubWebhooks::new(
            WebhookSettings {
                target_url: None,
                subscriptions: vec![sub(0, APP_UNINSTALL, None, true)],
                ..WebhookSettings::default()
            },
            secret.into(),
            54321,
            SandboxClock::new(),
        );
        hooks.start();
        // No target URL: nothing goes out (deliveries are paused, not queued).
        hooks.notify_uninstall(62516);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(hooks.sender.attempts(0).is_empty());
        hooks.update(|s| s.target_url = Some(url.clone()));
        hooks.notify_uninstall(62515);
        for _ in 0..200 {
            if !lock(&got).is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let received = lock(&got).clone();
        assert_eq!(received.len(), 1);
        let (headers, body) = &received[0];
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(header("x-hubspot-signature"), signature::v1(secret, body));
        let ts = header("x-hubspot-request-timestamp");
        let ts_ms = ts.parse::<i64>().unwrap_or_default();
        assert_eq!(
            header("x-hubspot-signature-v3"),
            signature::v3(secret, "POST", &url, body, ts_ms)
        );
        let events: Vec<Value> = serde_json::from_str(body).unwrap_or_default();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["subscriptionType"], APP_UNINSTALL);
        assert_eq!(events[0]["portalId"], 62515);
        assert_eq!(events[0]["appId"], 54321);
        assert_eq!(events[0]["subscriptionId"], 1);
        assert!(events[0]["eventId"].is_u64() && events[0]["occurredAt"].is_i64());
        assert_eq!(events[0]["attemptNumber"], 0);
        server.shutdown().await;
    }
}

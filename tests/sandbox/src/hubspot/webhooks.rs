//! App webhooks: subscriptions (set through the control API, as the app's settings would be),
//! CRM changes turned into events, POSTed to the target URL as JSON arrays of at most 100 events
//! with `X-HubSpot-Signature` (v1, or v2) and `X-HubSpot-Signature-v3` + timestamp, re-signed on
//! every attempt and retried on failure except for 400/401/403/404/405.

use super::format::epoch_ms;
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
use tokio::sync::mpsc;

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

#[derive(Debug)]
pub struct HubWebhooks {
    settings: Arc<Mutex<WebhookSettings>>,
    tx: mpsc::UnboundedSender<Vec<Change>>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Vec<Change>>>>,
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

    /// Replaces the settings; subscriptions without an id get one.
    pub fn set_settings(&self, mut settings: WebhookSettings) -> WebhookSettings {
        for s in &mut settings.subscriptions {
            if s.id == 0 {
                s.id = self.next_subscription.fetch_add(1, Ordering::SeqCst);
            }
        }
        self.sender.set_policy(settings.retry_policy());
        *lock(&self.settings) = settings.clone();
        settings
    }

    pub fn add_subscription(&self, mut sub: Subscription) -> Subscription {
        sub.id = self.next_subscription.fetch_add(1, Ordering::SeqCst);
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
            let _ = self.tx.send(changes);
        }
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
                let mut batch = first;
                if window > 0 {
                    let deadline = tokio::time::Instant::now() + Duration::from_millis(window);
                    while let Ok(Some(more)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                        batch.extend(more);
                    }
                } else {
                    while let Ok(more) = rx.try_recv() {
                        batch.extend(more);
                    }
                }
                let current = lock(&settings).clone();
                let Some(url) = current.target_url.clone() else {
                    continue;
                };
                let events = events_for(&batch, &current.subscriptions, app_id, &event_ids);
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

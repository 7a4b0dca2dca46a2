//! QBO webhooks: every change becomes a notification (CloudEvents by default, legacy
//! `eventNotifications` behind a flag), aggregated for a configurable delay, signed with
//! `intuit-signature` = base64(HMAC-SHA256(verifier token, raw body)), delivered with retries.

use super::entity::EntityKind;
use super::store::Change;
use crate::common::sync::lock;
use crate::common::webhook::{Delivery, RetryPolicy, WebhookSender};
use crate::common::SandboxClock;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use tokio::sync::mpsc;

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    #[default]
    CloudEvents,
    Legacy,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct WebhookSettings {
    #[serde(default)]
    pub urls: Vec<String>,
    #[serde(default)]
    pub format: WebhookFormat,
    /// Changes within this window go out in one notification (0 = send each write at once).
    #[serde(default)]
    pub aggregation_ms: u64,
    /// Waits before each retry; the delivery is dropped after the last.
    #[serde(default = "default_retry_delays")]
    pub retry_delays_ms: Vec<u64>,
    /// How long each attempt may take before counting as failed.
    #[serde(default = "default_attempt_timeout")]
    pub attempt_timeout_ms: u64,
    /// The app's Disconnect URL (set in Intuit's developer portal): where the user's browser goes
    /// after disconnecting the app inside QuickBooks. `POST /_sandbox/realms/{realm}/disconnect`
    /// GETs it; none = the disconnect only kills the tokens.
    #[serde(default)]
    pub disconnect_url: Option<String>,
}

fn default_retry_delays() -> Vec<u64> {
    vec![10_000, 20_000, 30_000, 300_000, 1_200_000]
}

fn default_attempt_timeout() -> u64 {
    3_000
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            format: WebhookFormat::CloudEvents,
            aggregation_ms: 0,
            retry_delays_ms: default_retry_delays(),
            attempt_timeout_ms: default_attempt_timeout(),
            disconnect_url: None,
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
            final_statuses: Vec::new(),
        }
    }
}

/// Signs a body the way Intuit does.
pub fn signature(verifier_token: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(verifier_token.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[derive(Debug)]
pub struct QboWebhooks {
    settings: Arc<Mutex<WebhookSettings>>,
    tx: mpsc::UnboundedSender<Change>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Change>>>,
    pub sender: WebhookSender,
    verifier_token: String,
}

impl QboWebhooks {
    pub fn new(settings: WebhookSettings, verifier_token: String, clock: SandboxClock) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            sender: WebhookSender::new(clock, settings.retry_policy()),
            settings: Arc::new(Mutex::new(settings)),
            tx,
            rx: Mutex::new(Some(rx)),
            verifier_token,
        }
    }

    pub fn settings(&self) -> WebhookSettings {
        lock(&self.settings).clone()
    }

    pub fn set_settings(&self, settings: WebhookSettings) {
        self.sender.set_policy(settings.retry_policy());
        *lock(&self.settings) = settings;
    }

    pub fn notify(&self, change: Change) {
        // Only the entities Intuit sends webhooks for.
        if matches!(change.kind, EntityKind::TaxCode | EntityKind::CompanyInfo) {
            return;
        }
        let _ = self.tx.send(change);
    }

    /// Starts the aggregation loop (once; needs a Tokio runtime).
    pub fn start(&self) {
        let Some(mut rx) = lock(&self.rx).take() else {
            return;
        };
        let settings = self.settings.clone();
        let sender = self.sender.clone();
        let verifier = self.verifier_token.clone();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let window = lock(&settings).aggregation_ms;
                let mut batch = vec![first];
                if window > 0 {
                    let deadline = tokio::time::Instant::now() + Duration::from_millis(window);
                    while let Ok(Some(change)) = tokio::time::timeout_at(deadline, rx.recv()).await
                    {
                        batch.push(change);
                    }
                } else {
                    while let Ok(change) = rx.try_recv() {
                        batch.push(change);
                    }
                }
                let current = lock(&settings).clone();
                if current.urls.is_empty() {
                    continue;
                }
                let body = match current.format {
                    WebhookFormat::CloudEvents => cloud_events(&batch),
                    WebhookFormat::Legacy => legacy(&batch),
                }
                .to_string();
                let signed = signature(&verifier, body.as_bytes());
                for url in &current.urls {
                    sender.send(Delivery::fixed(
                        url.clone(),
                        body.clone(),
                        vec![
                            ("content-type".into(), "application/json".into()),
                            ("intuit-signature".into(), signed.clone()),
                        ],
                    ));
                }
            }
        });
    }
}

fn utc_text(at: time::OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// The CloudEvents array (one event per change).
pub fn cloud_events(changes: &[Change]) -> Value {
    Value::Array(
        changes
            .iter()
            .map(|c| {
                json!({
                    "specversion": "1.0",
                    "id": uuid::Uuid::new_v4().to_string(),
                    "source": "intuit.qbo-sandbox",
                    "type": format!("qbo.{}.{}.v1", c.kind.name().to_lowercase(), c.op.event_verb()),
                    "datacontenttype": "application/json",
                    "time": utc_text(c.at),
                    "intuitentityid": c.id,
                    "intuitaccountid": c.realm_id,
                    "data": {}
                })
            })
            .collect(),
    )
}

/// The legacy `eventNotifications` body, grouped by realm.
pub fn legacy(changes: &[Change]) -> Value {
    let mut by_realm: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for c in changes {
        by_realm
            .entry(c.realm_id.as_str())
            .or_default()
            .push(json!({
                "name": c.kind.name(),
                "id": c.id,
                "operation": c.op.legacy_name(),
                "lastUpdated": utc_text(c.at),
            }));
    }
    json!({
        "eventNotifications": by_realm
            .into_iter()
            .map(|(realm, entities)| json!({"realmId": realm, "dataChangeEvent": {"entities": entities}}))
            .collect::<Vec<_>>()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_base64_hmac_sha256() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let sig = signature("Jefe", b"what do ya want for nothing?");
        let expected = base64::engine::general_purpose::STANDARD.encode([
            0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95,
            0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9,
            0x64, 0xec, 0x38, 0x43,
        ]);
        assert_eq!(sig, expected);
    }
}

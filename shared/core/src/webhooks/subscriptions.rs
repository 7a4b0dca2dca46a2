//! The HubSpot app's webhook subscriptions: made from the code (what the sync reads), kept in
//! `infra/hubspot/webhooks.json`, and registered with HubSpot's webhooks API (settings: the
//! target URL; one subscription per event type, and per property for property changes, which
//! HubSpot's legacy subscriptions require).

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::domain::ObjectKind;
use crate::hubspot::developer::{DeveloperApi, RegistrationError};
use crate::mapping::{contacts, invoices, products};
use crate::settings::default_settings;
use crate::sync::objects::Synced;

/// One subscription, as HubSpot's webhooks API takes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_type_id: Option<String>,
}

/// The app's webhook configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookConfig {
    /// Where the target URL goes: the webhooks function's URL followed by this path.
    pub target_path: String,
    pub max_concurrent_requests: u32,
    pub subscriptions: Vec<Subscription>,
}

/// Properties whose change means nothing to the sync: timestamps, and what the integration
/// writes itself (its own writes would only come back as notifications).
fn worth_a_notification(property: &str) -> bool {
    !property.ends_with("lastmodifieddate")
        && ![
            contacts::QBO_ID_PROPERTY,
            contacts::MERGED_IDS,
            products::QBO_ID_PROPERTY,
            invoices::QBO_ID_PROPERTY,
            invoices::QBO_TOTAL_PROPERTY,
        ]
        .contains(&property)
}

fn event(event_type: &str, property: Option<&str>, object_type_id: Option<&str>) -> Subscription {
    Subscription {
        event_type: event_type.to_owned(),
        property_name: property.map(str::to_owned),
        object_type_id: object_type_id.map(str::to_owned),
    }
}

/// Every subscription the sync needs: creation, deletion, merge and restore of contacts and
/// products, contacts' association changes (their primary company names the customer), a
/// property change per property the sync reads with the recommended settings, invoices (the
/// generic `object.*` types with type `0-53`) and their line items, and the app's uninstall.
pub fn subscriptions() -> Vec<Subscription> {
    let mut all = Vec::new();
    // The date only moves filters, which notifications do not depend on.
    for settings in default_settings(time::macros::date!(2026 - 01 - 01)) {
        let object = settings.object;
        let Some(synced) = Synced::of(object) else {
            continue;
        };
        let properties: Vec<String> = synced
            .hubspot_properties(&synced.fields(&settings))
            .into_iter()
            .filter(|p| worth_a_notification(p))
            .collect();
        match object {
            ObjectKind::Contact | ObjectKind::Product => {
                let prefix = if object == ObjectKind::Contact {
                    "contact"
                } else {
                    "product"
                };
                for verb in ["creation", "deletion", "merge", "restore"] {
                    all.push(event(&format!("{prefix}.{verb}"), None, None));
                }
                if object == ObjectKind::Contact {
                    all.push(event("contact.associationChange", None, None));
                }
                for property in &properties {
                    all.push(event(
                        &format!("{prefix}.propertyChange"),
                        Some(property),
                        None,
                    ));
                }
            }
            ObjectKind::Invoice => {
                const INVOICES: &str = "0-53";
                for verb in ["creation", "deletion", "restore", "associationChange"] {
                    all.push(event(&format!("object.{verb}"), None, Some(INVOICES)));
                }
                for property in &properties {
                    all.push(event(
                        "object.propertyChange",
                        Some(property),
                        Some(INVOICES),
                    ));
                }
                for verb in ["creation", "deletion"] {
                    all.push(event(&format!("line_item.{verb}"), None, None));
                }
                for property in ["quantity", "price", "amount", "name", "hs_sku"] {
                    all.push(event("line_item.propertyChange", Some(property), None));
                }
            }
        }
    }
    all.push(event("app.uninstall", None, None));
    all
}

/// The configuration file's content, from the code.
pub fn config() -> WebhookConfig {
    WebhookConfig {
        target_path: "hubspot".into(),
        max_concurrent_requests: 10,
        subscriptions: subscriptions(),
    }
}

fn key(subscription: &Value) -> Subscription {
    Subscription {
        event_type: subscription["eventType"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        property_name: subscription["propertyName"].as_str().map(str::to_owned),
        object_type_id: subscription["objectTypeId"].as_str().map(str::to_owned),
    }
}

/// What registering did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Registered {
    pub target_url: String,
    pub created: usize,
    pub activated: usize,
    pub unchanged: usize,
    /// Subscriptions of the app that the configuration no longer has, switched off.
    pub deactivated: usize,
    /// The app's subscriptions as HubSpot lists them afterwards.
    pub subscriptions: Vec<Value>,
}

async fn list_subscriptions(
    api: &DeveloperApi,
    base: &str,
) -> Result<Vec<Value>, RegistrationError> {
    api.send(
        "the subscriptions list",
        reqwest::Method::GET,
        &format!("{base}/subscriptions"),
        None,
    )
    .await
    .map(|page| page["results"].as_array().cloned().unwrap_or_default())
}

/// Sets the app's target URL and makes its active subscriptions exactly the configuration's.
pub async fn register(
    api_base: &str,
    app_id: &str,
    developer_key: SecretString,
    webhooks_url: &str,
    config: &WebhookConfig,
) -> Result<Registered, RegistrationError> {
    let api = DeveloperApi::new(api_base, app_id, developer_key);
    let base = format!("/webhooks/v3/{app_id}");
    let target_url = format!(
        "{}/{}",
        webhooks_url.trim_end_matches('/'),
        config.target_path.trim_start_matches('/')
    );
    api.send(
        "the webhook settings",
        reqwest::Method::PUT,
        &format!("{base}/settings"),
        Some(&json!({
            "targetUrl": target_url,
            "throttling": {"maxConcurrentRequests": config.max_concurrent_requests, "period": "SECONDLY"},
        })),
    )
    .await?;
    let existing = list_subscriptions(&api, &base).await?;
    let mut done = Registered {
        target_url,
        ..Registered::default()
    };
    for wanted in &config.subscriptions {
        match existing.iter().find(|s| &key(s) == wanted) {
            Some(found) if found["active"].as_bool() == Some(true) => done.unchanged += 1,
            Some(found) => {
                let id = found["id"].to_string();
                api.send(
                    &wanted.event_type,
                    reqwest::Method::PATCH,
                    &format!("{base}/subscriptions/{id}"),
                    Some(&json!({"active": true})),
                )
                .await?;
                done.activated += 1;
            }
            None => {
                let mut body = serde_json::to_value(wanted)
                    .map_err(|_| RegistrationError::Unreadable(wanted.event_type.clone()))?;
                body["active"] = json!(true);
                api.send(
                    &wanted.event_type,
                    reqwest::Method::POST,
                    &format!("{base}/subscriptions"),
                    Some(&body),
                )
                .await?;
                done.created += 1;
            }
        }
    }
    for stale in existing
        .iter()
        .filter(|s| s["active"].as_bool() == Some(true) && !config.subscriptions.contains(&key(s)))
    {
        api.send(
            "a subscription no longer configured",
            reqwest::Method::PATCH,
            &format!("{base}/subscriptions/{}", stale["id"]),
            Some(&json!({"active": false})),
        )
        .await?;
        done.deactivated += 1;
    }
    done.subscriptions = list_subscriptions(&api, &base).await?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::notices::hubspot_object;

    #[test]
    fn every_subscription_reaches_a_synced_object_or_the_uninstall() {
        let all = subscriptions();
        let mut unique = all.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), all.len(), "no subscription twice");
        for s in &all {
            let reaches = hubspot_object(&s.event_type, s.object_type_id.as_deref()).is_some()
                || s.event_type == "app.uninstall";
            assert!(reaches, "{s:?}");
            assert_eq!(
                s.event_type.ends_with("propertyChange"),
                s.property_name.is_some(),
                "HubSpot needs a property for property changes, and only for them: {s:?}"
            );
        }
        let has = |event: &str, property: &str| {
            all.iter()
                .any(|s| s.event_type == event && s.property_name.as_deref() == Some(property))
        };
        assert!(has("contact.propertyChange", "email"));
        assert!(has("product.propertyChange", "price"));
        assert!(has("object.propertyChange", "hs_invoice_status"));
        assert!(!has("contact.propertyChange", contacts::QBO_ID_PROPERTY));
        assert!(!has("contact.propertyChange", "lastmodifieddate"));
        // HubSpot's limit is 1,000 per app.
        assert!(all.len() < 200, "{}", all.len());
    }

    #[test]
    fn the_configuration_file_is_what_the_code_makes() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../infra/hubspot/webhooks.json"
        );
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let file: Option<WebhookConfig> = serde_json::from_str(&text).ok();
        assert_eq!(
            file,
            Some(config()),
            "regenerate it: target/debug/local-stack webhook-subscriptions"
        );
    }
}

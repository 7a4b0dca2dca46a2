//! Change notifications: the HubSpot app's webhook configuration, written from the code into
//! `infra/hubspot/webhooks.json` and registered — with a real app, or with a local stack's
//! HubSpot sandbox — and the QuickBooks sandbox pointed at the webhooks function (an Intuit
//! app's webhook endpoint and Disconnect URL are set in Intuit's developer portal).

use anyhow::Context;
use hubspot_qbo_core::webhooks::subscriptions::{self, Registered, WebhookConfig};
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::paths::repo_root;
use crate::stack::LocalStack;

pub const FUNCTION: &str = "WebhooksFunction";

fn file() -> std::path::PathBuf {
    repo_root().join("infra/hubspot/webhooks.json")
}

/// Writes the configuration file from the code.
pub fn write_config() -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(&subscriptions::config())?;
    std::fs::write(file(), format!("{text}\n"))?;
    println!("wrote {}", file().display());
    Ok(())
}

pub fn read_config() -> anyhow::Result<WebhookConfig> {
    let text =
        std::fs::read_to_string(file()).with_context(|| format!("reading {}", file().display()))?;
    serde_json::from_str(&text).with_context(|| format!("reading {}", file().display()))
}

/// Registers with a real HubSpot app when `HUBSPOT_DEVELOPER_API_KEY`, `HUBSPOT_APP_ID` and
/// `WEBHOOKS_URL` (the webhooks function's URL, the stack's `WebhooksUrl` output) are set;
/// `None` when the key is not set.
pub async fn register_from_env() -> anyhow::Result<Option<Registered>> {
    let Some(key) = std::env::var("HUBSPOT_DEVELOPER_API_KEY")
        .ok()
        .filter(|k| !k.is_empty())
    else {
        return Ok(None);
    };
    let app_id = std::env::var("HUBSPOT_APP_ID").context("HUBSPOT_APP_ID must be set")?;
    let url = std::env::var("WEBHOOKS_URL")
        .context("WEBHOOKS_URL must be the webhooks function's URL (the WebhooksUrl output)")?;
    let api_base =
        std::env::var("HUBSPOT_API_BASE_URL").unwrap_or_else(|_| "https://api.hubapi.com".into());
    let registered = subscriptions::register(
        &api_base,
        &app_id,
        SecretString::from(key),
        &url,
        &read_config()?,
    )
    .await?;
    Ok(Some(registered))
}

/// Points both sandboxes' notifications at the stack's webhooks function: HubSpot's through
/// its webhooks API (as `make register-webhooks` does), QuickBooks' through its control API.
pub async fn point_sandboxes(stack: &LocalStack) -> anyhow::Result<Registered> {
    let sandboxes = stack
        .sandboxes
        .as_ref()
        .context("the stack has no sandboxes")?;
    let url = stack.url(FUNCTION)?.to_owned();
    let app_id = stack
        .manifest
        .function(FUNCTION)?
        .environment
        .get("HUBSPOT_APP_ID")
        .cloned()
        .context("no HUBSPOT_APP_ID")?;
    let registered = subscriptions::register(
        &sandboxes.hubspot,
        &app_id,
        SecretString::from(crate::sandboxes::HUBSPOT_DEVELOPER_API_KEY.to_owned()),
        &url,
        &read_config()?,
    )
    .await?;
    set_qbo_webhooks(&sandboxes.qbo, Some(&url)).await?;
    Ok(registered)
}

/// Sets (or, with `None`, clears) the QuickBooks sandbox's webhook endpoint and Disconnect URL,
/// keeping its other webhook settings.
pub async fn set_qbo_webhooks(qbo: &str, webhooks_url: Option<&str>) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let mut settings: Value = http
        .get(format!("{qbo}/_sandbox/webhooks"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let base = webhooks_url.map(|u| u.trim_end_matches('/').to_owned());
    settings["urls"] = match &base {
        Some(base) => json!([format!("{base}/qbo")]),
        None => json!([]),
    };
    settings["disconnect_url"] = match &base {
        Some(base) => json!(format!("{base}/qbo/disconnected")),
        None => Value::Null,
    };
    http.post(format!("{qbo}/_sandbox/webhooks"))
        .json(&settings)
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

pub fn print_registered(registered: &Registered) {
    println!(
        "webhooks -> {}: {} subscriptions ({} created, {} switched on, {} as they were, {} switched off)",
        registered.target_url,
        registered
            .subscriptions
            .iter()
            .filter(|s| s["active"].as_bool() == Some(true))
            .count(),
        registered.created,
        registered.activated,
        registered.unchanged,
        registered.deactivated
    );
}

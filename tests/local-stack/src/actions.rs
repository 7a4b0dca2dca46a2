//! The HubSpot app's workflow-action definitions: written from the code into
//! `infra/hubspot/actions/`, and published — to a real app, or to a local stack's HubSpot
//! sandbox and read back.

use anyhow::Context;
use hubspot_qbo_core::actions::definitions::{self, file_name};
use hubspot_qbo_core::actions::registration::Registrar;
use hubspot_qbo_core::actions::ActionKind;
use secrecy::SecretString;
use serde_json::Value;

use crate::paths::repo_root;
use crate::stack::LocalStack;

/// The template's function of each action.
pub fn function_of(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::CreateInvoice => "ActionCreateInvoiceFunction",
        ActionKind::CreateEstimate => "ActionCreateEstimateFunction",
        ActionKind::CreateSalesReceipt => "ActionCreateSalesReceiptFunction",
        ActionKind::CreatePaidInvoice => "ActionCreatePaidInvoiceFunction",
        ActionKind::CreateExpense => "ActionCreateExpenseFunction",
        ActionKind::CreateRefundReceipt => "ActionCreateRefundReceiptFunction",
    }
}

fn folder() -> std::path::PathBuf {
    repo_root().join("infra/hubspot/actions")
}

/// Writes every definition file from the code.
pub fn write_definitions() -> anyhow::Result<()> {
    std::fs::create_dir_all(folder())?;
    for kind in ActionKind::ALL {
        let path = folder().join(file_name(kind));
        let text =
            serde_json::to_string_pretty(&definitions::definition(kind, "COMMERCE_PAYMENT"))?;
        std::fs::write(&path, format!("{text}\n"))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// The definition files with each action's URL filled in; `PAYMENT_OBJECT_TYPE`, when set,
/// names payments in their object types instead of `COMMERCE_PAYMENT` (HubSpot's accepted
/// spelling is unconfirmed).
pub fn rendered(
    url_of: impl Fn(ActionKind) -> anyhow::Result<String>,
) -> anyhow::Result<Vec<Value>> {
    let payment_type = std::env::var("PAYMENT_OBJECT_TYPE")
        .ok()
        .filter(|t| !t.trim().is_empty());
    ActionKind::ALL
        .into_iter()
        .map(|kind| {
            let path = folder().join(file_name(kind));
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let mut definition = definitions::render(&text, &url_of(kind)?)?;
            if let (Some(payment_type), Some(types)) =
                (&payment_type, definition["objectTypes"].as_array_mut())
            {
                for t in types.iter_mut().filter(|t| *t == "COMMERCE_PAYMENT") {
                    *t = Value::String(payment_type.trim().to_owned());
                }
            }
            Ok(definition)
        })
        .collect()
}

/// A real HubSpot app to publish to.
pub struct Target {
    pub api_base: String,
    pub app_id: String,
    pub developer_key: SecretString,
    /// `invoice=https://…/,estimate=…` (each action's function URL, by its document).
    pub urls: Vec<(String, String)>,
}

impl Target {
    /// From `HUBSPOT_DEVELOPER_API_KEY`, `HUBSPOT_APP_ID`, `ACTION_URLS` and optionally
    /// `HUBSPOT_API_BASE_URL`; `None` when the key is not set.
    pub fn from_env() -> anyhow::Result<Option<Self>> {
        let Some(key) = std::env::var("HUBSPOT_DEVELOPER_API_KEY")
            .ok()
            .filter(|k| !k.is_empty())
        else {
            return Ok(None);
        };
        let urls = std::env::var("ACTION_URLS")
            .context("ACTION_URLS must list each action's URL: invoice=https://…,estimate=…")?
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Ok(Some(Self {
            api_base: std::env::var("HUBSPOT_API_BASE_URL")
                .unwrap_or_else(|_| "https://api.hubapi.com".into()),
            app_id: std::env::var("HUBSPOT_APP_ID").context("HUBSPOT_APP_ID must be set")?,
            developer_key: SecretString::from(key),
            urls,
        }))
    }
}

/// Publishes the definitions to a real app.
pub async fn register(target: &Target) -> anyhow::Result<()> {
    let definitions = rendered(|kind| {
        target
            .urls
            .iter()
            .find(|(document, _)| document == kind.document())
            .map(|(_, url)| url.clone())
            .with_context(|| format!("ACTION_URLS has no {}=<url>", kind.document()))
    })?;
    let registrar = Registrar::new(
        &target.api_base,
        &target.app_id,
        target.developer_key.clone(),
    );
    for saved in registrar.publish(&definitions).await? {
        print_definition(&saved);
    }
    Ok(())
}

/// Publishes the definitions to the local stack's HubSpot sandbox with its function URLs and
/// reads them back.
pub async fn register_locally(stack: &LocalStack) -> anyhow::Result<()> {
    let published = publish_to_sandbox(stack).await?;
    for saved in &published {
        print_definition(saved);
    }
    Ok(())
}

/// Publishes to the sandbox and answers the definitions as it lists them afterwards.
pub async fn publish_to_sandbox(stack: &LocalStack) -> anyhow::Result<Vec<Value>> {
    let sandboxes = stack
        .sandboxes
        .as_ref()
        .context("the stack has no sandboxes")?;
    let definitions = rendered(|kind| Ok(stack.url(function_of(kind))?.to_owned()))?;
    let app_id = stack
        .manifest
        .function("ActionCreateInvoiceFunction")?
        .environment
        .get("HUBSPOT_APP_ID")
        .cloned()
        .context("no HUBSPOT_APP_ID")?;
    let registrar = Registrar::new(
        &sandboxes.hubspot,
        &app_id,
        SecretString::from(crate::sandboxes::HUBSPOT_DEVELOPER_API_KEY.to_owned()),
    );
    registrar.publish(&definitions).await?;
    Ok(registrar.list().await?)
}

fn print_definition(saved: &Value) {
    println!(
        "action {:<8} {:<36} {}",
        saved["id"].as_str().unwrap_or("?"),
        saved["labels"]["en"]["actionName"].as_str().unwrap_or("?"),
        saved["actionUrl"].as_str().unwrap_or("?")
    );
}

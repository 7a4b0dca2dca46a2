//! `local-stack`: runs the integration on this machine (what `make run` starts).
//!
//! Subcommands: `demo` (one demo round, then stop), `action-definitions` (writes
//! `infra/hubspot/actions/*.json` from the code), `register-actions` (publishes them: to the
//! HubSpot app `HUBSPOT_APP_ID` with `HUBSPOT_DEVELOPER_API_KEY` and the functions' URLs in
//! `ACTION_URLS` when those are set, else to a local stack's HubSpot sandbox, read back),
//! `webhook-subscriptions` (writes `infra/hubspot/webhooks.json` from the code),
//! `register-webhooks` (registers it: with the HubSpot app `HUBSPOT_APP_ID` with
//! `HUBSPOT_DEVELOPER_API_KEY` and the webhooks function's URL in `WEBHOOKS_URL` when those are
//! set, else with a local stack's HubSpot sandbox, read back).
//!
//! Flags: `--no-webhooks` (the sandboxes send no change notifications; the schedule polls as
//! without them), `--stack NAME`, `--schedule-every SECONDS`, `--log-dir DIR`, `--exit-after-ready`
//! (start, print, stop: a smoke check). App credentials come from the same environment variables
//! the deployed functions read, with local defaults.

use std::time::Duration;

use anyhow::Context;
use local_stack::manifest::Parameters;
use local_stack::stack::{LocalStack, Options};

/// Template parameter <- environment variable, with the local default.
const CREDENTIALS: [(&str, &str, &str); 7] = [
    ("HubSpotAppId", "HUBSPOT_APP_ID", "1000001"),
    (
        "HubSpotClientId",
        "HUBSPOT_CLIENT_ID",
        "local-hubspot-client-id",
    ),
    (
        "HubSpotClientSecret",
        "HUBSPOT_CLIENT_SECRET",
        "local-hubspot-client-secret",
    ),
    ("QboClientId", "QBO_CLIENT_ID", "local-qbo-client-id"),
    (
        "QboClientSecret",
        "QBO_CLIENT_SECRET",
        "local-qbo-client-secret",
    ),
    (
        "QboWebhookVerifierToken",
        "QBO_WEBHOOK_VERIFIER_TOKEN",
        "local-qbo-verifier-token",
    ),
    (
        "AdminOperatorKey",
        "ADMIN_OPERATOR_KEY",
        "local-operator-key",
    ),
];

/// Optional overrides of the provider endpoints.
const ENDPOINTS: [(&str, &str); 7] = [
    ("HubSpotApiBaseUrl", "HUBSPOT_API_BASE_URL"),
    ("HubSpotAuthorizeUrl", "HUBSPOT_AUTHORIZE_URL"),
    ("HubSpotTokenUrl", "HUBSPOT_TOKEN_URL"),
    ("QboApiBaseUrl", "QBO_API_BASE_URL"),
    ("QboAuthorizeUrl", "QBO_AUTHORIZE_URL"),
    ("QboTokenUrl", "QBO_TOKEN_URL"),
    ("QboRevokeUrl", "QBO_REVOKE_URL"),
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let mut options = Options::default();
    let mut exit_after_ready = false;
    let mut demo_connection = true;
    let mut demo_only = false;
    let mut register = false;
    let mut register_webhooks = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "demo" => demo_only = true,
            "action-definitions" => return local_stack::actions::write_definitions(),
            "register-actions" => register = true,
            "webhook-subscriptions" => return local_stack::webhooks::write_config(),
            "register-webhooks" => register_webhooks = true,
            "--no-webhooks" => options.webhooks = false,
            "--no-demo" => demo_connection = false,
            "--stack" => options.stack_name = args.next().context("--stack needs a name")?,
            "--schedule-every" => {
                let seconds: u64 = args
                    .next()
                    .context("--schedule-every needs seconds")?
                    .parse()?;
                options.schedule_period = Some(Duration::from_secs(seconds.max(1)));
            }
            "--log-dir" => {
                let dir =
                    std::path::PathBuf::from(args.next().context("--log-dir needs a folder")?);
                std::fs::create_dir_all(&dir)?;
                options.log_dir = Some(dir);
            }
            "--exit-after-ready" => exit_after_ready = true,
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    options.parameters = parameters();
    if demo_only {
        options.run_schedules = false;
        options
            .log_dir
            .get_or_insert_with(|| std::env::temp_dir().join("hubspot-qbo-demo-logs"));
        if let Some(dir) = &options.log_dir {
            std::fs::create_dir_all(dir)?;
        }
    }
    if register {
        if let Some(target) = local_stack::actions::Target::from_env()? {
            return local_stack::actions::register(&target).await;
        }
        options.run_schedules = false;
        options.run_queues = false;
        let stack = LocalStack::start(options).await?;
        let outcome = local_stack::actions::register_locally(&stack).await;
        stack.shutdown().await?;
        return outcome;
    }
    if register_webhooks {
        if let Some(registered) = local_stack::webhooks::register_from_env().await? {
            local_stack::webhooks::print_registered(&registered);
            return Ok(());
        }
        options.run_schedules = false;
        options.run_queues = false;
        options.webhooks = false;
        let stack = LocalStack::start(options).await?;
        let outcome = local_stack::webhooks::point_sandboxes(&stack).await;
        stack.shutdown().await?;
        local_stack::webhooks::print_registered(&outcome?);
        return Ok(());
    }
    let stack = LocalStack::start(options).await?;
    if demo_only {
        let outcome = local_stack::demo::run(&stack).await;
        stack.shutdown().await?;
        let counts = outcome?;
        println!("{counts}");
        return Ok(());
    }
    print_summary(&stack);
    if demo_connection && !exit_after_ready {
        let demo = local_stack::demo::Demo::start(&stack, local_stack::demo::DemoSize::default())
            .await
            .context("connecting the demo company")?;
        println!(
            "demo connection {} (HubSpot portal {}, QuickBooks company {})",
            demo.connection,
            local_stack::demo::PORTAL,
            local_stack::demo::REALM
        );
    }
    if !exit_after_ready {
        println!("Ready. Press Ctrl-C to stop.");
        wait_for_stop_signal().await?;
    }
    println!("Stopping …");
    stack.shutdown().await?;
    println!("Stopped.");
    Ok(())
}

fn parameters() -> Parameters {
    let mut parameters = Parameters::new();
    for (parameter, variable, default) in CREDENTIALS {
        let value = std::env::var(variable)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_owned());
        parameters.insert(parameter.to_owned(), value);
    }
    for (parameter, variable) in ENDPOINTS {
        if let Some(value) = std::env::var(variable).ok().filter(|v| !v.is_empty()) {
            parameters.insert(parameter.to_owned(), value);
        }
    }
    parameters
}

fn print_summary(stack: &LocalStack) {
    if let Some(sandboxes) = &stack.sandboxes {
        println!(
            "HubSpot sandbox     {}   (API {}/crm/v3/…, control API {}/_sandbox/)",
            sandboxes.hubspot, sandboxes.hubspot, sandboxes.hubspot
        );
        println!(
            "QuickBooks sandbox  {}   (API {}/v3/company/<realm>/…, control API {}/_sandbox/)",
            sandboxes.qbo, sandboxes.qbo, sandboxes.qbo
        );
    }
    println!(
        "local AWS endpoint  {}   (e.g. aws --endpoint-url {} dynamodb list-tables)",
        stack.aws.endpoint, stack.aws.endpoint
    );
    for (logical_id, url) in &stack.urls {
        let binary = stack
            .manifest
            .functions
            .get(logical_id)
            .map(|f| f.binary.as_str())
            .unwrap_or_default();
        println!("function URL        {binary:<30} {url}");
    }
    for (logical_id, function) in &stack.manifest.functions {
        for schedule in &function.schedules {
            println!(
                "schedule            {:<30} {schedule} ({logical_id})",
                function.binary
            );
        }
        for trigger in &function.queues {
            println!(
                "queue trigger       {:<30} {} (batch {}{})",
                function.binary,
                trigger.queue,
                trigger.batch_size,
                if trigger.report_batch_item_failures {
                    ", partial batch responses"
                } else {
                    ""
                }
            );
        }
    }
    for (logical_id, queue) in &stack.manifest.queues {
        println!("queue               {logical_id:<30} {}", queue.url);
    }
    for (logical_id, table) in &stack.manifest.tables {
        println!("table               {logical_id:<30} {}", table.name);
    }
    if let Some(url) = stack.urls.get("AdminFunction") {
        let key = stack
            .manifest
            .functions
            .get("AdminFunction")
            .and_then(|f| f.environment.get("ADMIN_OPERATOR_KEY"))
            .map_or("", String::as_str);
        println!("admin API           curl -H 'Authorization: Bearer {key}' {url}api/connections");
        println!(
            "admin page          open {url} and sign in with HubSpot, or straight {url}signin?portal={} (the sandbox consents at once)",
            local_stack::demo::PORTAL
        );
        println!("admin CLI           HUBSPOT_QBO_ADMIN_URL={url} HUBSPOT_QBO_OPERATOR_KEY={key} $CARGO_TARGET_DIR/debug/hubspot-qbo connections");
    }
    if let Some(url) = stack.urls.get(local_stack::webhooks::FUNCTION) {
        println!(
            "webhooks            HubSpot {url}hubspot, QuickBooks {url}qbo (Disconnect URL {url}qbo/disconnected){}",
            if stack.webhooks_pointed { ": both sandboxes notify it" } else { "" }
        );
    }
    if let Some(url) = stack.urls.get("OAuthInstallFunction") {
        println!(
            "connect             open {url}install in a browser (both consents are automatic)"
        );
    }
}

async fn wait_for_stop_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    Ok(())
}

//! `sandbox`: serves the QuickBooks Online API and the HubSpot API on loopback (one port each,
//! sharing one sandbox clock), or generates seed files.

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use sandbox::common::latency::LatencySettings;
use sandbox::common::SandboxClock;
use sandbox::hubspot::{self, HubSeed, HubSpotConfig};
use sandbox::qbo::{
    self, GenerateOptions, QboConfig, Seed, ThrottleLimits, WebhookFormat, WebhookSettings,
};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "sandbox",
    version,
    about = "Local simulators of the QuickBooks Online and HubSpot APIs"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a generated seed file (deterministic from --seed-number).
    GenerateSeed(GenerateArgs),
    /// Write a generated HubSpot seed file (deterministic from --seed-number).
    GenerateHubspotSeed(HubGenerateArgs),
}

#[derive(Args, Debug)]
struct HubGenerateArgs {
    #[arg(long, default_value_t = 1)]
    seed_number: u64,
    #[arg(long, default_value_t = hubspot::seed::DEFAULT_PORTAL)]
    portal_id: u64,
    #[arg(long, default_value_t = 30)]
    contacts: usize,
    #[arg(long, default_value_t = 10)]
    companies: usize,
    #[arg(long, default_value_t = 8)]
    products: usize,
    #[arg(long, default_value_t = 20)]
    deals: usize,
    /// Output file (default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address of the QBO API (port 0 picks a free port; the chosen URL is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    qbo_addr: SocketAddr,
    /// JSON seed file (see tests/sandbox/README.md); default: one US and one UK company.
    #[arg(long)]
    seed: Option<PathBuf>,
    #[arg(long, default_value = qbo::app::DEFAULT_CLIENT_ID)]
    qbo_client_id: String,
    #[arg(long, default_value = qbo::app::DEFAULT_CLIENT_SECRET)]
    qbo_client_secret: String,
    #[arg(long, default_value = qbo::app::DEFAULT_VERIFIER_TOKEN)]
    qbo_verifier_token: String,
    /// Webhook endpoint (repeatable).
    #[arg(long = "qbo-webhook-url")]
    qbo_webhook_urls: Vec<String>,
    #[arg(long, value_enum, default_value = "cloud-events")]
    qbo_webhook_format: Format,
    /// Aggregate changes for this long before notifying (0 = immediately).
    #[arg(long, default_value_t = 0)]
    qbo_webhook_delay_ms: u64,
    /// Seconds a superseded refresh token keeps working.
    #[arg(long, default_value_t = 0)]
    qbo_refresh_grace_seconds: i64,
    /// Multiply every rate limit by this factor (benchmarks).
    #[arg(long, default_value_t = 1.0)]
    qbo_rate_limit_scale: f64,
    /// Turn throttling off.
    #[arg(long)]
    qbo_no_throttle: bool,
    /// Company offset from UTC for timestamps and default dates.
    #[arg(long, default_value = "-07:00", allow_hyphen_values = true)]
    qbo_utc_offset: String,
    /// Add a realistic 50–300 ms latency to every API request.
    #[arg(long)]
    latency_profile: bool,
    /// Address of the HubSpot API (port 0 picks a free port; the chosen URL is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    hubspot_addr: SocketAddr,
    #[arg(long, default_value = hubspot::app::DEFAULT_CLIENT_ID)]
    hubspot_client_id: String,
    #[arg(long, default_value = hubspot::app::DEFAULT_CLIENT_SECRET)]
    hubspot_client_secret: String,
    #[arg(long, default_value_t = hubspot::app::DEFAULT_APP_ID)]
    hubspot_app_id: u64,
    /// Accepted as `?hapikey=` on developer endpoints (workflow action definitions).
    #[arg(long, default_value = hubspot::app::DEFAULT_DEVELOPER_API_KEY)]
    hubspot_developer_api_key: String,
    /// JSON HubSpot seed file; default: two empty portals 62515 and 62516.
    #[arg(long)]
    hubspot_seed: Option<PathBuf>,
    /// Webhook target URL of the app (subscriptions: the control API or `/webhooks/v3/{appId}`).
    #[arg(long)]
    hubspot_webhook_url: Option<String>,
    /// Requests per 10-second window per portal.
    #[arg(long, default_value_t = 110)]
    hubspot_rate_limit: u32,
    /// Turn HubSpot rate limiting off.
    #[arg(long)]
    hubspot_no_throttle: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    CloudEvents,
    Legacy,
}

#[derive(Args, Debug)]
struct GenerateArgs {
    #[arg(long, default_value_t = 1)]
    seed_number: u64,
    #[arg(long, default_value = qbo::seed::DEFAULT_US_REALM)]
    realm_id: String,
    #[arg(long, default_value = "US")]
    country: String,
    #[arg(long, default_value_t = 25)]
    customers: usize,
    #[arg(long, default_value_t = 10)]
    items: usize,
    #[arg(long, default_value_t = 40)]
    invoices: usize,
    #[arg(long, default_value_t = 10)]
    estimates: usize,
    #[arg(long, default_value_t = 10)]
    sales_receipts: usize,
    #[arg(long)]
    custom_txn_numbers: bool,
    /// Output file (default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn generate_hubspot(args: HubGenerateArgs) -> anyhow::Result<()> {
    let seed = hubspot::generate(&hubspot::GenerateOptions {
        seed: args.seed_number,
        portal_id: args.portal_id,
        contacts: args.contacts,
        companies: args.companies,
        products: args.products,
        deals: args.deals,
        ..hubspot::GenerateOptions::default()
    });
    let text = serde_json::to_string_pretty(&seed)?;
    match args.out {
        Some(path) => std::fs::write(&path, text + "\n")
            .with_context(|| format!("writing {}", path.display()))?,
        None => println!("{text}"),
    }
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Option<PathBuf>) -> anyhow::Result<Option<T>> {
    match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Ok(Some(
                serde_json::from_str::<T>(&text)
                    .with_context(|| format!("parsing {}", path.display()))?,
            ))
        }
        None => Ok(None),
    }
}

fn parse_offset(text: &str) -> anyhow::Result<time::UtcOffset> {
    let format = time::macros::format_description!("[offset_hour sign:mandatory]:[offset_minute]");
    time::UtcOffset::parse(text, format)
        .with_context(|| format!("bad --qbo-utc-offset {text:?}, expected like -07:00"))
}

fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    let seed = qbo::generate(&GenerateOptions {
        seed: args.seed_number,
        realm_id: args.realm_id,
        country: args.country,
        customers: args.customers,
        items: args.items,
        invoices: args.invoices,
        estimates: args.estimates,
        sales_receipts: args.sales_receipts,
        custom_txn_numbers: args.custom_txn_numbers,
        ..GenerateOptions::default()
    });
    let text = serde_json::to_string_pretty(&seed)?;
    match args.out {
        Some(path) => std::fs::write(&path, text + "\n")
            .with_context(|| format!("writing {}", path.display()))?,
        None => println!("{text}"),
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let seed: Option<Seed> = read_json(&args.seed)?;
    let hub_seed: Option<HubSeed> = read_json(&args.hubspot_seed)?;
    let clock = SandboxClock::new();
    let latency = LatencySettings {
        enabled: args.latency_profile,
        ..LatencySettings::default()
    };
    let config = QboConfig {
        addr: args.qbo_addr,
        client_id: args.qbo_client_id,
        client_secret: args.qbo_client_secret,
        verifier_token: args.qbo_verifier_token,
        seed,
        utc_offset: parse_offset(&args.qbo_utc_offset)?,
        limits: ThrottleLimits {
            enabled: !args.qbo_no_throttle,
            scale: args.qbo_rate_limit_scale,
            ..ThrottleLimits::default()
        },
        webhooks: WebhookSettings {
            urls: args.qbo_webhook_urls,
            format: match args.qbo_webhook_format {
                Format::CloudEvents => WebhookFormat::CloudEvents,
                Format::Legacy => WebhookFormat::Legacy,
            },
            aggregation_ms: args.qbo_webhook_delay_ms,
            ..WebhookSettings::default()
        },
        latency,
        tokens: qbo::oauth::TokenPolicy {
            refresh_grace_seconds: args.qbo_refresh_grace_seconds,
            ..qbo::oauth::TokenPolicy::default()
        },
        clock: Some(clock.clone()),
    };
    let hub_config = HubSpotConfig {
        addr: args.hubspot_addr,
        client_id: args.hubspot_client_id,
        client_secret: args.hubspot_client_secret,
        app_id: args.hubspot_app_id,
        developer_api_key: args.hubspot_developer_api_key,
        seed: hub_seed,
        limits: hubspot::RateLimits {
            enabled: !args.hubspot_no_throttle,
            burst_max: args.hubspot_rate_limit,
            ..hubspot::RateLimits::default()
        },
        webhooks: hubspot::WebhookSettings {
            target_url: args.hubspot_webhook_url,
            ..hubspot::WebhookSettings::default()
        },
        latency,
        clock: Some(clock),
        ..HubSpotConfig::default()
    };
    let spawned = qbo::spawn(config).await?;
    let hub = hubspot::spawn(hub_config).await?;
    // One line per API: parsed by test harnesses.
    println!("qbo {}", spawned.base_url);
    println!("hubspot {}", hub.base_url);
    std::io::stdout().flush()?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate() => {}
    }
    spawned.shutdown().await;
    hub.shutdown().await;
    Ok(())
}

#[cfg(unix)]
async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending::<()>().await,
    }
}

#[cfg(not(unix))]
async fn terminate() {
    std::future::pending::<()>().await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::GenerateSeed(args)) => generate(args),
        Some(Command::GenerateHubspotSeed(args)) => generate_hubspot(args),
        None => serve(cli.serve).await,
    }
}

//! Typed configuration, read once at cold start from the environment variables that the
//! infrastructure template (or the local stack) sets. Secrets are wrapped so that they cannot be
//! printed by accident: `Debug` of [`Config`] shows `[REDACTED]` for them.

use secrecy::SecretString;

use crate::domain::PortalId;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Where the integration keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    /// Connections, tokens, settings, cursors, OAuth states and leases.
    pub connections: String,
    /// The sync ledger: links between records, fingerprints, status, activity.
    pub ledger: String,
    /// Workflow action runs, keyed by HubSpot callback id (idempotency).
    pub action_runs: String,
}

/// The queues that hand work between functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queues {
    /// FIFO queue of change batches, one message group per connection and object.
    pub sync: String,
    /// Standard queue of poll tasks (one connection and object each).
    pub poll: String,
    /// Standard queue of workflow-action executions answered BLOCK, finished later; empty: no
    /// deferral (a throttled call is answered 503 and HubSpot retries it).
    pub actions: String,
}

/// One OAuth provider's endpoints and the app's credentials there.
#[derive(Debug, Clone)]
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: SecretString,
    pub authorize_url: String,
    pub token_url: String,
}

#[derive(Debug, Clone)]
pub struct HubSpotConfig {
    pub api_base_url: String,
    pub app_id: String,
    pub oauth: OAuthApp,
    /// Scopes the install asks for; the sync and the workflow actions need them.
    pub scopes: Vec<String>,
    /// Scopes granted only when the portal has the product (HubSpot drops the others).
    pub optional_scopes: Vec<String>,
    /// The only portals that may connect (a self-hosted deployment for one business); empty:
    /// any portal.
    pub allowed_portals: Vec<PortalId>,
}

/// The scopes the sync (contacts, products, invoices, deals) and the workflow actions need.
/// `e-commerce` lets the integration create its own id property on products (HubSpot names no
/// `crm.schemas.products.write`).
pub const DEFAULT_HUBSPOT_SCOPES: &str = "oauth crm.objects.contacts.read \
    crm.objects.contacts.write crm.objects.companies.read crm.objects.deals.read \
    crm.objects.deals.write crm.objects.products.read crm.objects.products.write \
    crm.objects.line_items.read crm.objects.line_items.write crm.objects.invoices.read \
    crm.objects.invoices.write crm.schemas.contacts.write crm.schemas.invoices.write e-commerce \
    automation timeline";
/// Commerce payments exist only in portals with payments: where they do, QBO payments are
/// recorded as payments on the invoice, so HubSpot's own balance and status follow them.
pub const DEFAULT_HUBSPOT_OPTIONAL_SCOPES: &str =
    "crm.objects.commercepayments.read crm.objects.commercepayments.write";
pub const QBO_ACCOUNTING_SCOPE: &str = "com.intuit.quickbooks.accounting";

#[derive(Debug, Clone)]
pub struct QboConfig {
    pub api_base_url: String,
    pub revoke_url: String,
    pub webhook_verifier_token: SecretString,
    pub oauth: OAuthApp,
    /// QBO sandbox companies may be connected only when an operator enables this (C2).
    pub allow_sandbox_companies: bool,
    /// The app talks to Intuit's sandbox environment (development keys): every company there is a
    /// sandbox company.
    pub sandbox_environment: bool,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub tables: Tables,
    pub queues: Queues,
    /// The KMS key that seals OAuth tokens at rest (envelope encryption).
    pub token_key_id: String,
    pub hubspot: HubSpotConfig,
    pub qbo: QboConfig,
    /// The public address of the install function (redirect URIs are built on it). `None`: taken
    /// from each request's host, which for a Lambda function URL is the URL itself.
    pub public_base_url: Option<String>,
    /// The providers' rate limits the integration paces itself by.
    pub limits: Limits,
    /// The operator key of the admin API (`Authorization: Bearer <key>`); `None`: closed.
    pub admin_operator_key: Option<SecretString>,
    /// How long a workflow action works before it answers BLOCK and finishes later (HubSpot
    /// waits about 30 seconds for an answer).
    pub action_answer_within: std::time::Duration,
    /// How long one AWS call (DynamoDB, SQS, KMS) may take.
    pub aws_timeouts: AwsTimeouts,
    /// Change notifications for one object of a connection within this long share one poll,
    /// which starts a second after the window.
    pub webhook_nudge_window: std::time::Duration,
    /// The public base address in front of the webhooks function, when it is not its function
    /// URL (a custom domain; the request's path is appended): HubSpot signs the URL it called.
    pub webhook_public_url: Option<String>,
}

/// Bounds of one AWS SDK operation (all its retries) and of one attempt of it. The operation
/// stays well inside the token-refresh lease (30 s), so work under a lease cannot outlive it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwsTimeouts {
    pub operation: std::time::Duration,
    pub attempt: std::time::Duration,
}

impl AwsTimeouts {
    /// The most an operation may be given.
    pub const MAX_OPERATION_SECONDS: u32 = 9;
}

impl Default for AwsTimeouts {
    fn default() -> Self {
        Self {
            operation: std::time::Duration::from_secs(5),
            attempt: std::time::Duration::from_secs(2),
        }
    }
}

/// The providers' limits, per company and per portal (configurable: HubSpot's values are
/// unconfirmed, and a sandbox may scale its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub qbo_requests_per_minute: u32,
    pub qbo_batches_per_minute: u32,
    pub hubspot_requests_per_10s: u32,
    pub hubspot_searches_per_second: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            qbo_requests_per_minute: 500,
            qbo_batches_per_minute: 40,
            hubspot_requests_per_10s: 110,
            hubspot_searches_per_second: 5,
        }
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let qbo_api_base_url = env.url("QBO_API_BASE_URL", "https://quickbooks.api.intuit.com")?;
        Ok(Config {
            tables: Tables {
                connections: env.required("CONNECTIONS_TABLE")?,
                ledger: env.required("LEDGER_TABLE")?,
                action_runs: env.required("ACTION_RUNS_TABLE")?,
            },
            queues: Queues {
                sync: env.required("SYNC_QUEUE_URL")?,
                poll: env.required("POLL_QUEUE_URL")?,
                actions: env.get("ACTION_QUEUE_URL").unwrap_or_default(),
            },
            token_key_id: env.required("TOKEN_KEY_ID")?,
            hubspot: HubSpotConfig {
                api_base_url: env.url("HUBSPOT_API_BASE_URL", "https://api.hubapi.com")?,
                app_id: env.required("HUBSPOT_APP_ID")?,
                oauth: OAuthApp {
                    client_id: env.required("HUBSPOT_CLIENT_ID")?,
                    client_secret: env.secret("HUBSPOT_CLIENT_SECRET")?,
                    authorize_url: env.url(
                        "HUBSPOT_AUTHORIZE_URL",
                        "https://app.hubspot.com/oauth/authorize",
                    )?,
                    token_url: env
                        .url("HUBSPOT_TOKEN_URL", "https://api.hubapi.com/oauth/v1/token")?,
                },
                scopes: env.words("HUBSPOT_SCOPES", DEFAULT_HUBSPOT_SCOPES),
                optional_scopes: env
                    .words("HUBSPOT_OPTIONAL_SCOPES", DEFAULT_HUBSPOT_OPTIONAL_SCOPES),
                allowed_portals: env
                    .words("ALLOWED_HUBSPOT_PORTALS", "")
                    .into_iter()
                    .map(|portal| {
                        PortalId::parse(portal).map_err(|e| ConfigError::Invalid {
                            name: "ALLOWED_HUBSPOT_PORTALS",
                            reason: e.to_string(),
                        })
                    })
                    .collect::<Result<_, _>>()?,
            },
            qbo: QboConfig {
                revoke_url: env.url(
                    "QBO_REVOKE_URL",
                    "https://developer.api.intuit.com/v2/oauth2/tokens/revoke",
                )?,
                webhook_verifier_token: env.secret("QBO_WEBHOOK_VERIFIER_TOKEN")?,
                oauth: OAuthApp {
                    client_id: env.required("QBO_CLIENT_ID")?,
                    client_secret: env.secret("QBO_CLIENT_SECRET")?,
                    authorize_url: env.url(
                        "QBO_AUTHORIZE_URL",
                        "https://appcenter.intuit.com/connect/oauth2",
                    )?,
                    token_url: env.url(
                        "QBO_TOKEN_URL",
                        "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
                    )?,
                },
                allow_sandbox_companies: env.flag("QBO_ALLOW_SANDBOX_COMPANIES")?,
                sandbox_environment: qbo_environment_is_sandbox(&env, &qbo_api_base_url)?,
                api_base_url: qbo_api_base_url,
            },
            public_base_url: match env.get("PUBLIC_BASE_URL") {
                Some(_) => Some(env.url("PUBLIC_BASE_URL", "")?),
                None => None,
            },
            limits: {
                let defaults = Limits::default();
                Limits {
                    qbo_requests_per_minute: env
                        .limit("QBO_REQUESTS_PER_MINUTE", defaults.qbo_requests_per_minute)?,
                    qbo_batches_per_minute: env
                        .limit("QBO_BATCHES_PER_MINUTE", defaults.qbo_batches_per_minute)?,
                    hubspot_requests_per_10s: env.limit(
                        "HUBSPOT_REQUESTS_PER_10S",
                        defaults.hubspot_requests_per_10s,
                    )?,
                    hubspot_searches_per_second: env.limit(
                        "HUBSPOT_SEARCHES_PER_SECOND",
                        defaults.hubspot_searches_per_second,
                    )?,
                }
            },
            aws_timeouts: aws_timeouts(&env)?,
            admin_operator_key: env
                .get("ADMIN_OPERATOR_KEY")
                .filter(|k| !k.trim().is_empty())
                .map(SecretString::from),
            action_answer_within: std::time::Duration::from_secs(u64::from(
                env.count("ACTION_ANSWER_WITHIN_SECONDS", 20)?,
            )),
            webhook_nudge_window: std::time::Duration::from_secs(u64::from(
                env.count("WEBHOOK_NUDGE_SECONDS", 3)?.clamp(1, 900),
            )),
            webhook_public_url: match env.get("WEBHOOK_PUBLIC_URL") {
                Some(_) => Some(env.url("WEBHOOK_PUBLIC_URL", "")?),
                None => None,
            },
        })
    }
}

/// `AWS_OPERATION_TIMEOUT_SECONDS` (at most 9) and `AWS_ATTEMPT_TIMEOUT_SECONDS` (at most the
/// operation's).
fn aws_timeouts(env: &Env<'_>) -> Result<AwsTimeouts, ConfigError> {
    let defaults = AwsTimeouts::default();
    let operation = env.count(
        "AWS_OPERATION_TIMEOUT_SECONDS",
        defaults.operation.as_secs() as u32,
    )?;
    if operation > AwsTimeouts::MAX_OPERATION_SECONDS {
        return Err(ConfigError::Invalid {
            name: "AWS_OPERATION_TIMEOUT_SECONDS",
            reason: format!(
                "must be at most {} (a token refresh holds its lease for 30 seconds)",
                AwsTimeouts::MAX_OPERATION_SECONDS
            ),
        });
    }
    let attempt = env.count(
        "AWS_ATTEMPT_TIMEOUT_SECONDS",
        (defaults.attempt.as_secs() as u32).min(operation),
    )?;
    if attempt > operation {
        return Err(ConfigError::Invalid {
            name: "AWS_ATTEMPT_TIMEOUT_SECONDS",
            reason: "must be at most AWS_OPERATION_TIMEOUT_SECONDS".into(),
        });
    }
    Ok(AwsTimeouts {
        operation: std::time::Duration::from_secs(operation.into()),
        attempt: std::time::Duration::from_secs(attempt.into()),
    })
}

/// `QBO_ENVIRONMENT` is `production` or `sandbox`; unset, Intuit's sandbox API host means sandbox.
fn qbo_environment_is_sandbox(env: &Env<'_>, api_base_url: &str) -> Result<bool, ConfigError> {
    match env.get("QBO_ENVIRONMENT").as_deref() {
        Some("sandbox") => Ok(true),
        Some("production") => Ok(false),
        Some(_) => Err(ConfigError::Invalid {
            name: "QBO_ENVIRONMENT",
            reason: "must be production or sandbox".into(),
        }),
        None => Ok(api_base_url.contains("sandbox-quickbooks.api.intuit.com")),
    }
}

struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    fn get(&self, name: &'static str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.get(name).ok_or(ConfigError::Missing(name))
    }

    fn secret(&self, name: &'static str) -> Result<SecretString, ConfigError> {
        self.required(name).map(SecretString::from)
    }

    fn url(&self, name: &'static str, default: &str) -> Result<String, ConfigError> {
        let value = self.get(name).unwrap_or_else(|| default.to_owned());
        if value.starts_with("https://") || value.starts_with("http://") {
            Ok(value.trim_end_matches('/').to_owned())
        } else {
            Err(ConfigError::Invalid {
                name,
                reason: "must be an http(s) URL".into(),
            })
        }
    }

    /// A space- or comma-separated list.
    fn words(&self, name: &'static str, default: &str) -> Vec<String> {
        self.get(name)
            .unwrap_or_else(|| default.to_owned())
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// A positive whole number.
    fn count(&self, name: &'static str, default: u32) -> Result<u32, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or(ConfigError::Invalid {
                    name,
                    reason: "must be a positive whole number".into(),
                }),
        }
    }

    /// A provider limit: at least 2 calls per window (pacing by time slots cannot keep one).
    fn limit(&self, name: &'static str, default: u32) -> Result<u32, ConfigError> {
        match self.count(name, default)? {
            n if n >= 2 => Ok(n),
            _ => Err(ConfigError::Invalid {
                name,
                reason: "must be at least 2".into(),
            }),
        }
    }

    fn flag(&self, name: &'static str) -> Result<bool, ConfigError> {
        match self
            .get(name)
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("false") | Some("0") | Some("no") => Ok(false),
            Some("true") | Some("1") | Some("yes") => Ok(true),
            Some(_) => Err(ConfigError::Invalid {
                name,
                reason: "must be true or false".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn full_env() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("CONNECTIONS_TABLE", "connections"),
            ("LEDGER_TABLE", "ledger"),
            ("ACTION_RUNS_TABLE", "action-runs"),
            (
                "SYNC_QUEUE_URL",
                "http://127.0.0.1:1/000000000000/sync.fifo",
            ),
            ("POLL_QUEUE_URL", "http://127.0.0.1:1/000000000000/poll"),
            ("TOKEN_KEY_ID", "11111111-2222-3333-4444-555555555555"),
            ("HUBSPOT_APP_ID", "42"),
            ("HUBSPOT_CLIENT_ID", "hs-client"),
            ("HUBSPOT_CLIENT_SECRET", "hs-very-secret"),
            ("QBO_CLIENT_ID", "qbo-client"),
            ("QBO_CLIENT_SECRET", "qbo-very-secret"),
            ("QBO_WEBHOOK_VERIFIER_TOKEN", "verifier-very-secret"),
        ])
    }

    fn load(env: &HashMap<&'static str, &'static str>) -> Result<Config, ConfigError> {
        Config::from_lookup(|k| env.get(k).map(|v| v.to_string()))
    }

    #[test]
    fn defaults_point_at_the_real_services() {
        let config = load(&full_env()).expect("complete environment");
        assert_eq!(config.hubspot.api_base_url, "https://api.hubapi.com");
        assert_eq!(config.qbo.api_base_url, "https://quickbooks.api.intuit.com");
        assert!(!config.qbo.allow_sandbox_companies);
        assert!(!config.qbo.sandbox_environment);
        assert_eq!(config.public_base_url, None);
        assert!(config.hubspot.scopes.contains(&"oauth".to_owned()));
        assert!(config
            .hubspot
            .scopes
            .contains(&"crm.objects.invoices.write".to_owned()));
        assert_eq!(
            config.qbo.oauth.client_secret.expose_secret(),
            "qbo-very-secret"
        );
    }

    #[test]
    fn missing_and_invalid_values_are_named() {
        let mut env = full_env();
        env.remove("LEDGER_TABLE");
        assert_eq!(
            load(&env).unwrap_err(),
            ConfigError::Missing("LEDGER_TABLE")
        );

        let mut env = full_env();
        env.insert("QBO_API_BASE_URL", "ftp://nope");
        assert!(matches!(
            load(&env),
            Err(ConfigError::Invalid {
                name: "QBO_API_BASE_URL",
                ..
            })
        ));

        let mut env = full_env();
        env.insert("HUBSPOT_SEARCHES_PER_SECOND", "1");
        assert!(matches!(
            load(&env),
            Err(ConfigError::Invalid {
                name: "HUBSPOT_SEARCHES_PER_SECOND",
                ..
            })
        ));

        let mut env = full_env();
        env.insert("QBO_ALLOW_SANDBOX_COMPANIES", "maybe");
        assert!(matches!(load(&env), Err(ConfigError::Invalid { .. })));
    }

    #[test]
    fn aws_timeouts_default_and_are_bounded_by_the_token_lease() {
        let env = full_env();
        assert_eq!(load(&env).unwrap().aws_timeouts, AwsTimeouts::default());
        type Case = (&'static str, &'static str, Result<(u64, u64), &'static str>);
        let cases: &[Case] = &[
            ("9", "6", Ok((9, 6))),
            ("1", "", Ok((1, 1))),
            ("10", "2", Err("AWS_OPERATION_TIMEOUT_SECONDS")),
            ("4", "5", Err("AWS_ATTEMPT_TIMEOUT_SECONDS")),
            ("0", "", Err("AWS_OPERATION_TIMEOUT_SECONDS")),
        ];
        for (operation, attempt, expected) in cases {
            let mut env = full_env();
            env.insert("AWS_OPERATION_TIMEOUT_SECONDS", operation);
            env.insert("AWS_ATTEMPT_TIMEOUT_SECONDS", attempt);
            let got = match load(&env) {
                Ok(c) => Ok((
                    c.aws_timeouts.operation.as_secs(),
                    c.aws_timeouts.attempt.as_secs(),
                )),
                Err(ConfigError::Invalid { name, .. }) => Err(name),
                Err(other) => panic!("{other:?}"),
            };
            assert_eq!(&got, expected, "{operation}/{attempt}");
        }
    }

    #[test]
    fn the_qbo_environment_is_explicit_or_follows_the_api_host() {
        type Case = (Option<&'static str>, Option<&'static str>, Result<bool, ()>);
        let cases: &[Case] = &[
            (None, None, Ok(false)),
            (
                None,
                Some("https://sandbox-quickbooks.api.intuit.com"),
                Ok(true),
            ),
            (Some("sandbox"), None, Ok(true)),
            (
                Some("production"),
                Some("https://sandbox-quickbooks.api.intuit.com"),
                Ok(false),
            ),
            (Some("staging"), None, Err(())),
        ];
        for (environment, api, expected) in cases {
            let mut env = full_env();
            if let Some(value) = environment {
                env.insert("QBO_ENVIRONMENT", value);
            }
            if let Some(value) = api {
                env.insert("QBO_API_BASE_URL", value);
            }
            let got = load(&env).map(|c| c.qbo.sandbox_environment).map_err(drop);
            assert_eq!(&got, expected, "{environment:?} {api:?}");
        }
    }

    #[test]
    fn scopes_and_public_url_can_be_set() {
        let mut env = full_env();
        env.insert("HUBSPOT_SCOPES", "oauth, crm.objects.contacts.read");
        env.insert("HUBSPOT_OPTIONAL_SCOPES", "");
        env.insert(
            "PUBLIC_BASE_URL",
            "https://abc.lambda-url.eu-west-1.on.aws/",
        );
        let config = load(&env).unwrap();
        assert_eq!(
            config.hubspot.scopes,
            ["oauth", "crm.objects.contacts.read"]
        );
        assert_eq!(
            config.hubspot.optional_scopes,
            [
                "crm.objects.commercepayments.read",
                "crm.objects.commercepayments.write"
            ],
            "an empty value means the default"
        );
        assert_eq!(
            config.public_base_url.as_deref(),
            Some("https://abc.lambda-url.eu-west-1.on.aws")
        );
        env.insert("PUBLIC_BASE_URL", "abc.example");
        assert!(load(&env).is_err());
    }

    #[test]
    fn the_portal_allow_list_is_a_list_of_portal_ids() {
        type Case = (Option<&'static str>, Result<Vec<&'static str>, ()>);
        let cases: &[Case] = &[
            (None, Ok(vec![])),
            (Some(""), Ok(vec![])),
            (Some("62515"), Ok(vec!["62515"])),
            (Some("62515, 62516 7"), Ok(vec!["62515", "62516", "7"])),
            (Some("62515,acme"), Err(())),
        ];
        for (value, expected) in cases {
            let mut env = full_env();
            if let Some(value) = value {
                env.insert("ALLOWED_HUBSPOT_PORTALS", value);
            }
            let got = load(&env)
                .map(|c| {
                    c.hubspot
                        .allowed_portals
                        .iter()
                        .map(|p| p.as_str().to_owned())
                        .collect::<Vec<_>>()
                })
                .map_err(drop);
            let expected = expected
                .clone()
                .map(|v| v.into_iter().map(str::to_owned).collect::<Vec<_>>());
            assert_eq!(got, expected, "{value:?}");
        }
    }

    #[test]
    fn overrides_lose_their_trailing_slash() {
        let mut env = full_env();
        env.insert("QBO_API_BASE_URL", "http://127.0.0.1:9000/");
        assert_eq!(
            load(&env).unwrap().qbo.api_base_url,
            "http://127.0.0.1:9000"
        );
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let config = load(&full_env()).unwrap();
        let printed = format!("{config:?}");
        for secret in ["hs-very-secret", "qbo-very-secret", "verifier-very-secret"] {
            assert!(
                !printed.contains(secret),
                "{secret} leaked into Debug output"
            );
        }
    }
}

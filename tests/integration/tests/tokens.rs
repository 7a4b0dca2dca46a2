//! Tokens that never break, end to end: the token keeper on the template's DynamoDB table,
//! refreshing through the real HTTP token endpoint of the QuickBooks sandbox, tokens sealed with
//! the template's KMS key.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hubspot_qbo_core::clock::Clock;
use hubspot_qbo_core::connection::tokens::{Policy, TokenError, TokenKeeper, TokenOwner};
use hubspot_qbo_core::domain::{Provider, RealmId};
use hubspot_qbo_core::oauth::{HttpProviders, TokenGrant};
use hubspot_qbo_core::runtime::Services;
use integration_tests::Deployed;
use sandbox::qbo::oauth::TokenPolicy;
use sandbox::qbo::{QboConfig, SpawnedQbo};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

struct Harness {
    qbo: SpawnedQbo,
    deployed: Deployed,
    keeper: Arc<TokenKeeper>,
    clock: Arc<AtomicI64>,
    owner: TokenOwner,
    http: reqwest::Client,
}

impl Harness {
    async fn start(grace_seconds: i64) -> anyhow::Result<Self> {
        let deployed = Deployed::start().await?;
        let mut config = deployed.config_of("ScheduledPollFunction")?;
        let qbo = sandbox::qbo::spawn(QboConfig {
            client_id: config.qbo.oauth.client_id.clone(),
            client_secret: config.qbo.oauth.client_secret.expose_secret().to_owned(),
            tokens: TokenPolicy {
                rotate_refresh_tokens: true,
                refresh_grace_seconds: grace_seconds,
                ..TokenPolicy::default()
            },
            ..QboConfig::default()
        })
        .await?;
        config.qbo.oauth.token_url = format!("{}/oauth2/v1/tokens/bearer", qbo.base_url);
        let endpoint = HttpProviders::new(&config)?;
        let services = Services::new(config, &deployed.sdk);
        let clock = Arc::new(AtomicI64::new(Clock::system().now_ms()));
        let now = clock.clone();
        let keeper = Arc::new(TokenKeeper::new(
            services.store.clone(),
            services.sealer.clone(),
            Arc::new(endpoint),
            Clock::from_fn(move || now.load(Ordering::SeqCst)),
            Policy {
                poll: Duration::from_millis(20),
                ..Policy::default()
            },
        ));
        let http = reqwest::Client::new();
        let pair: Value = http
            .post(format!("{}/_sandbox/tokens", qbo.base_url))
            .json(&json!({}))
            .send()
            .await?
            .json()
            .await?;
        let owner = TokenOwner::Realm(RealmId::parse("9130350000000001")?);
        let grant = TokenGrant {
            access_token: SecretString::from(
                pair["access_token"].as_str().unwrap_or_default().to_owned(),
            ),
            refresh_token: SecretString::from(
                pair["refresh_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ),
            expires_in: 3600,
        };
        keeper.store_grant(&owner, &grant).await?;
        Ok(Self {
            qbo,
            deployed,
            keeper,
            clock,
            owner,
            http,
        })
    }

    /// Moves the keeper's clock past the access token's expiry.
    fn expire(&self) {
        self.clock.fetch_add(3600 * 1000, Ordering::SeqCst);
    }

    /// Refreshes the provider answered (a dropped answer is not counted).
    async fn token_refreshes(&self) -> anyhow::Result<u64> {
        let counters: Value = self
            .http
            .get(format!("{}/_sandbox/counters", self.qbo.base_url))
            .send()
            .await?
            .json()
            .await?;
        let endpoint = &counters["endpoints"]["POST /oauth2/v1/tokens/bearer"];
        Ok(endpoint["by_status"]["200"].as_u64().unwrap_or(0))
    }

    /// The token works against the QuickBooks API.
    async fn works(&self, token: &SecretString) -> anyhow::Result<bool> {
        let url = format!(
            "{}/v3/company/9130350000000001/companyinfo/9130350000000001",
            self.qbo.base_url
        );
        Ok(self
            .http
            .get(url)
            .bearer_auth(token.expose_secret())
            .send()
            .await?
            .status()
            .is_success())
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.qbo.shutdown().await;
        self.deployed.stop().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_callers_at_expiry_cause_exactly_one_refresh() -> anyhow::Result<()> {
    let h = Harness::start(0).await?;
    h.expire();
    let callers: Vec<_> = (0..20)
        .map(|_| {
            let keeper = h.keeper.clone();
            let owner = h.owner.clone();
            tokio::spawn(async move { keeper.access_token(&owner).await })
        })
        .collect();
    let mut tokens = Vec::new();
    for caller in callers {
        tokens.push(caller.await??.expose_secret().to_owned());
    }
    assert_eq!(h.token_refreshes().await?, 1, "one refresh at the provider");
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "everyone got the same new token"
    );
    assert!(h.works(&SecretString::from(tokens[0].clone())).await?);
    h.stop().await
}

#[tokio::test]
async fn two_hundred_rotation_cycles_never_end_in_invalid_grant() -> anyhow::Result<()> {
    let h = Harness::start(0).await?;
    for _ in 0..200 {
        h.expire();
        h.keeper.access_token(&h.owner).await?;
    }
    assert_eq!(h.token_refreshes().await?, 200);
    let token = h.keeper.access_token(&h.owner).await?;
    assert!(h.works(&token).await?);
    h.stop().await
}

#[tokio::test]
async fn a_refresh_answer_lost_in_flight_is_recovered_within_the_grace_period() -> anyhow::Result<()>
{
    let h = Harness::start(24 * 3600).await?;
    let rule = json!({"method": "POST", "path": "/oauth2/v1/tokens/bearer", "action": "drop_response", "times": 1});
    h.http
        .post(format!("{}/_sandbox/faults", h.qbo.base_url))
        .json(&rule)
        .send()
        .await?
        .error_for_status()?;
    h.expire();
    // The provider rotated, but its answer never arrived: a retryable failure, nothing stored.
    let lost = h.keeper.access_token(&h.owner).await.unwrap_err();
    assert!(matches!(lost, TokenError::Provider(_)), "{lost}");
    assert!(
        lost.to_string().len() < 200 && !lost.to_string().contains("RT1-"),
        "no token in the error: {lost}"
    );
    // The stored (superseded) refresh token still works within the grace period.
    let token = h.keeper.access_token(&h.owner).await?;
    assert!(h.works(&token).await?);
    h.expire();
    let next = h.keeper.access_token(&h.owner).await?;
    assert!(
        h.works(&next).await?,
        "the chain continues from the newly stored refresh token"
    );
    assert_eq!(
        h.token_refreshes().await?,
        2,
        "two answered refreshes after the lost one"
    );
    h.stop().await
}

#[tokio::test]
async fn without_a_grace_period_the_same_loss_needs_a_reconnect() -> anyhow::Result<()> {
    // Proves the lost call really rotated the token at the provider: with no grace period the
    // stored refresh token is dead, and the keeper says so instead of looping.
    let h = Harness::start(0).await?;
    let rule = json!({"method": "POST", "path": "/oauth2/v1/tokens/bearer", "action": "drop_response", "times": 1});
    h.http
        .post(format!("{}/_sandbox/faults", h.qbo.base_url))
        .json(&rule)
        .send()
        .await?
        .error_for_status()?;
    h.expire();
    assert!(matches!(
        h.keeper.access_token(&h.owner).await,
        Err(TokenError::Provider(_))
    ));
    let refused = h.keeper.access_token(&h.owner).await.unwrap_err();
    assert!(
        matches!(
            refused,
            TokenError::ReconnectRequired {
                provider: Provider::Qbo
            }
        ),
        "{refused}"
    );
    h.stop().await
}

#[tokio::test]
async fn a_revoked_connection_must_be_reconnected_and_stops_calling_the_provider(
) -> anyhow::Result<()> {
    let h = Harness::start(0).await?;
    // Revoking at the provider kills every token of the company.
    let pair: Value = h
        .http
        .post(format!("{}/_sandbox/tokens", h.qbo.base_url))
        .json(&json!({}))
        .send()
        .await?
        .json()
        .await?;
    h.http
        .post(format!("{}/v2/oauth2/tokens/revoke", h.qbo.base_url))
        .basic_auth("test-qbo-client", Some("test-qbo-secret"))
        .json(&json!({"token": pair["refresh_token"]}))
        .send()
        .await?
        .error_for_status()?;
    h.expire();
    let refused = h.keeper.access_token(&h.owner).await.unwrap_err();
    assert!(
        matches!(
            refused,
            TokenError::ReconnectRequired {
                provider: Provider::Qbo
            }
        ),
        "{refused}"
    );
    let calls = h.token_refreshes().await?;
    assert!(matches!(
        h.keeper.access_token(&h.owner).await,
        Err(TokenError::ReconnectRequired { .. })
    ));
    assert_eq!(h.token_refreshes().await?, calls);
    h.stop().await
}

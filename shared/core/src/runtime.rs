//! Service wiring: the AWS clients and the clock a handler may use, built once per cold start.
//! Features assemble themselves from [`Services`]; this module knows none of them.

use std::sync::Arc;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;

use crate::clock::Clock;
use crate::config::{Config, Limits};
use crate::crypto::{KmsSealer, Sealer};
use crate::http::pacing::{
    Pacer, StorePacer, HUBSPOT_REQUESTS, HUBSPOT_SEARCHES, QBO_BATCHES, QBO_REQUESTS,
};
use crate::hubspot::{HubSpotClient, HubSpotError, HubSpotLimits};
use crate::qbo::{QboClient, QboError, QboLimits};
use crate::queue::{sqs::SqsQueue, Queue};
use crate::store::{dynamodb::DynamoStore, Store};

/// How long a call waits for a free slot of its company's or portal's budget.
pub const PACING_MAX_WAIT: Duration = Duration::from_secs(15);

/// What a handler may use, built once per cold start.
#[derive(Clone)]
pub struct Services {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub sealer: Arc<dyn Sealer>,
    pub clock: Clock,
}

impl Services {
    /// Reads the configuration and builds the AWS clients. The SDK finds its endpoint, region and
    /// credentials the standard way (`AWS_ENDPOINT_URL`, `AWS_REGION`, the execution role).
    pub async fn from_env() -> Result<Self, crate::Error> {
        let config = Config::from_env()?;
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Ok(Self::new(config, &aws))
    }

    pub fn new(config: Config, aws: &aws_config::SdkConfig) -> Self {
        let aws = aws
            .to_builder()
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(config.aws_timeouts.operation)
                    .operation_attempt_timeout(config.aws_timeouts.attempt)
                    .build(),
            )
            .build();
        let aws = &aws;
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), config.tables.clone());
        let queue = SqsQueue::new(aws_sdk_sqs::Client::new(aws), config.queues.clone());
        let sealer = KmsSealer::new(aws_sdk_kms::Client::new(aws), config.token_key_id.clone());
        Self {
            config: Arc::new(config),
            store: Arc::new(store),
            queue: Arc::new(queue),
            sealer: Arc::new(sealer),
            clock: Clock::system(),
        }
    }
}

impl Services {
    /// The pacer every provider call of this function goes through.
    pub fn pacer(&self) -> Arc<dyn Pacer> {
        Arc::new(StorePacer::new(
            self.store.clone(),
            self.clock.clone(),
            PACING_MAX_WAIT,
        ))
    }

    /// The QBO API, paced by the configured limits.
    pub fn qbo_client(&self, pacer: Arc<dyn Pacer>) -> Result<QboClient, QboError> {
        let limits: Limits = self.config.limits;
        QboClient::new(
            &self.config.qbo.api_base_url,
            pacer,
            QboLimits {
                requests: crate::http::pacing::RateLimit {
                    limit: limits.qbo_requests_per_minute,
                    ..QBO_REQUESTS
                },
                batches: crate::http::pacing::RateLimit {
                    limit: limits.qbo_batches_per_minute,
                    ..QBO_BATCHES
                },
            },
        )
    }

    /// The HubSpot API, paced by the configured limits.
    pub fn hubspot_client(&self, pacer: Arc<dyn Pacer>) -> Result<HubSpotClient, HubSpotError> {
        let limits: Limits = self.config.limits;
        HubSpotClient::new(
            &self.config.hubspot.api_base_url,
            pacer,
            HubSpotLimits {
                requests: crate::http::pacing::RateLimit {
                    limit: limits.hubspot_requests_per_10s,
                    ..HUBSPOT_REQUESTS
                },
                searches: crate::http::pacing::RateLimit {
                    limit: limits.hubspot_searches_per_second,
                    ..HUBSPOT_SEARCHES
                },
            },
        )
    }
}

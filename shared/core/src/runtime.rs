//! Service wiring: the AWS clients and the clock a handler may use, built once per cold start.
//! Features assemble themselves from [`Services`]; this module knows none of them.

use std::sync::Arc;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;

use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::{KmsSealer, Sealer};
use crate::queue::{sqs::SqsQueue, Queue};
use crate::store::{dynamodb::DynamoStore, Store};

/// The longest one AWS SDK operation (all its retries) may take, and one attempt of it. Bounded
/// so that work under a lease (a token refresh) cannot outlive the lease.
pub const SDK_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);
pub const SDK_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

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
                    .operation_timeout(SDK_OPERATION_TIMEOUT)
                    .operation_attempt_timeout(SDK_ATTEMPT_TIMEOUT)
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

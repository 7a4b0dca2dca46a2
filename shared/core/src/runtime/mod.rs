//! Lambda plumbing shared by the functions: service wiring, the SQS batch wrapper, the clock.

pub mod sqs_batch;

use std::sync::Arc;

use crate::config::Config;
use crate::connection::sealer::KmsSealer;
use crate::connection::tokens::Sealer;
use crate::queue::{sqs::SqsQueue, Queue};
use crate::store::{dynamodb::DynamoStore, Store};

/// What a handler may use, built once per cold start.
#[derive(Clone)]
pub struct Services {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub sealer: Arc<dyn Sealer>,
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
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), config.tables.clone());
        let queue = SqsQueue::new(aws_sdk_sqs::Client::new(aws), config.queues.clone());
        let sealer = KmsSealer::new(aws_sdk_kms::Client::new(aws), config.token_key_id.clone());
        Self {
            config: Arc::new(config),
            store: Arc::new(store),
            queue: Arc::new(queue),
            sealer: Arc::new(sealer),
        }
    }
}

/// Epoch milliseconds now; the one place the functions read the wall clock.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Epoch seconds now.
pub fn now_seconds() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

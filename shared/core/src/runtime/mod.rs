//! Lambda plumbing shared by the functions: service wiring, the SQS batch wrapper, the clock.

pub mod sqs_batch;

use std::sync::Arc;

use crate::config::Config;
use crate::connection::install::InstallFlow;
use crate::connection::oauth_state::{self, OAuthStates};
use crate::connection::sealer::KmsSealer;
use crate::connection::tokens::{Policy, Sealer, TokenKeeper};
use crate::oauth::HttpProviders;
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

impl Services {
    /// Both providers over HTTP.
    pub fn providers(&self) -> Result<Arc<HttpProviders>, crate::Error> {
        Ok(Arc::new(HttpProviders::new(&self.config)?))
    }

    /// The token keeper, refreshing through `providers`, on the wall clock.
    pub fn token_keeper(&self, providers: Arc<HttpProviders>) -> Arc<TokenKeeper> {
        Arc::new(TokenKeeper::new(
            self.store.clone(),
            self.sealer.clone(),
            providers,
            Arc::new(now_ms),
            Policy::default(),
        ))
    }

    /// The install, reconnect and disconnect flows.
    pub fn install_flow(&self) -> Result<InstallFlow, crate::Error> {
        let providers = self.providers()?;
        let states = OAuthStates::new(
            self.store.clone(),
            oauth_state::installation_key(&self.config),
            oauth_state::DEFAULT_TTL,
        );
        Ok(InstallFlow::new(
            self.config.clone(),
            self.store.clone(),
            self.queue.clone(),
            self.sealer.clone(),
            states,
            self.token_keeper(providers.clone()),
            providers,
            Arc::new(now_ms),
        ))
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

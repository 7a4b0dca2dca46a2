//! Shared set-up of the integration tests: a fresh local AWS endpoint per test, with the
//! infrastructure template deployed into it.

pub use local_stack::harness;

use hubspot_qbo_core::config::Config;
use local_stack::aws::LocalAws;
use local_stack::manifest::{self, Manifest};

pub struct Deployed {
    pub aws: LocalAws,
    pub manifest: Manifest,
    pub sdk: aws_config::SdkConfig,
}

pub use local_stack::harness::test_parameters;

impl Deployed {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(&[]).await
    }

    /// Deployed with these template parameters besides the test ones.
    pub async fn start_with(parameters: &[(&str, &str)]) -> anyhow::Result<Self> {
        let aws = LocalAws::start().await?;
        let mut all = test_parameters();
        for (key, value) in parameters {
            all.insert((*key).to_owned(), (*value).to_owned());
        }
        let manifest = match manifest::deploy(&aws.endpoint, "test", &all).await {
            Ok(manifest) => manifest,
            Err(e) => {
                let _ = aws.stop().await;
                return Err(e);
            }
        };
        let sdk = aws.sdk_config().await;
        Ok(Self { aws, manifest, sdk })
    }

    /// The configuration a function of the template reads from its environment.
    pub fn config_of(&self, function: &str) -> anyhow::Result<Config> {
        let environment = &self.manifest.function(function)?.environment;
        Ok(Config::from_lookup(|name| environment.get(name).cloned())?)
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk)
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.aws.stop().await
    }
}

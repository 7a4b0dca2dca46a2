//! The local AWS-compatible endpoint: a `moto` server process on 127.0.0.1.

use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

use crate::paths::{repo_root, venv_bin};
use crate::process::{die_with_parent, free_port, wait_until_answering};

pub const REGION: &str = "us-east-1";

pub struct LocalAws {
    pub endpoint: String,
    child: Child,
}

impl LocalAws {
    /// Starts a fresh endpoint on a free port and waits until it answers: moto's server, with
    /// transactions that roll back by item rather than by copying whole tables (see the script).
    pub async fn start() -> anyhow::Result<Self> {
        let program = venv_bin("python");
        let script = repo_root().join("tests/local-stack/scripts/moto_server.py");
        let port = free_port()?;
        let mut command = Command::new(&program);
        command
            .arg(&script)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        die_with_parent(&mut command);
        let child = command
            .spawn()
            .with_context(|| format!("starting {} (run `make venv` first)", program.display()))?;
        let endpoint = format!("http://127.0.0.1:{port}");
        wait_until_answering(&format!("{endpoint}/moto-api/"), Duration::from_secs(20)).await?;
        Ok(Self { endpoint, child })
    }

    /// The AWS SDK configuration that reaches this endpoint with dummy credentials.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new(REGION))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "testing", "testing", None, None, "local",
            ))
            .load()
            .await
    }

    /// Environment variables that point any AWS SDK or CLI at this endpoint.
    pub fn client_environment(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Stops the endpoint and waits for it to exit.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}

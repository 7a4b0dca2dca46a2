//! The sandboxes (local QuickBooks Online and HubSpot APIs) as one child process, started with
//! the same app credentials the functions get, so OAuth works end to end on this machine.

use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::manifest::Parameters;
use crate::paths::workspace_binary;
use crate::process::die_with_parent;

pub struct Sandboxes {
    /// Base URL of the QuickBooks Online sandbox (API and OAuth).
    pub qbo: String,
    child: Child,
}

impl Sandboxes {
    /// Starts the `sandbox` binary with the app credentials in `parameters` and waits for it to
    /// print its base URLs.
    pub async fn start(parameters: &Parameters) -> anyhow::Result<Self> {
        let binary = workspace_binary("sandbox");
        let credential = |name: &str| parameters.get(name).cloned().unwrap_or_default();
        let mut command = Command::new(&binary);
        command
            .args(["--qbo-addr", "127.0.0.1:0"])
            .args(["--qbo-client-id", &credential("QboClientId")])
            .args(["--qbo-client-secret", &credential("QboClientSecret")])
            .args([
                "--qbo-verifier-token",
                &credential("QboWebhookVerifierToken"),
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        die_with_parent(&mut command);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {} (run `make build-local`)", binary.display()))?;
        let stdout = child.stdout.take().context("sandbox stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let qbo = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = line.strip_prefix("qbo ") {
                    return Ok(url.trim().trim_end_matches('/').to_owned());
                }
            }
            anyhow::bail!("the sandbox exited before printing its URLs")
        })
        .await
        .context("the sandbox did not start within 20 s")??;
        // Keep draining its output so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { qbo, child })
    }

    /// Template parameters that point the functions at the sandboxes.
    pub fn endpoint_parameters(&self) -> Parameters {
        [
            ("QboApiBaseUrl", self.qbo.clone()),
            ("QboAuthorizeUrl", format!("{}/connect/oauth2", self.qbo)),
            (
                "QboTokenUrl",
                format!("{}/oauth2/v1/tokens/bearer", self.qbo),
            ),
            (
                "QboRevokeUrl",
                format!("{}/v2/oauth2/tokens/revoke", self.qbo),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

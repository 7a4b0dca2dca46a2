//! The sandboxes (local QuickBooks Online and HubSpot APIs) as one child process, started with
//! the same app credentials the functions get, so OAuth works end to end on this machine.

use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::manifest::Parameters;
use crate::paths::workspace_binary;
use crate::process::die_with_parent;

/// The developer API key the local HubSpot sandbox takes on its developer endpoints.
pub const HUBSPOT_DEVELOPER_API_KEY: &str = "local-hubspot-developer-key";

/// An access token the sandbox issues directly (`/_sandbox/tokens`), for calls made as a person
/// would make them; `body` names the company or portal.
pub async fn issued_token(
    http: &reqwest::Client,
    sandbox: &str,
    body: serde_json::Value,
) -> anyhow::Result<String> {
    let pair: serde_json::Value = http
        .post(format!("{sandbox}/_sandbox/tokens"))
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(pair["access_token"]
        .as_str()
        .context("the sandbox issued no token")?
        .to_owned())
}

pub struct Sandboxes {
    /// Base URL of the QuickBooks Online sandbox (API and OAuth).
    pub qbo: String,
    /// Base URL of the HubSpot sandbox (API and OAuth).
    pub hubspot: String,
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
            .args(["--hubspot-client-id", &credential("HubSpotClientId")])
            .args([
                "--hubspot-client-secret",
                &credential("HubSpotClientSecret"),
            ])
            .args(["--hubspot-app-id", &credential("HubSpotAppId")])
            .args(["--hubspot-developer-api-key", HUBSPOT_DEVELOPER_API_KEY])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        die_with_parent(&mut command);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {} (run `make build-local`)", binary.display()))?;
        let stdout = child.stdout.take().context("sandbox stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let (qbo, hubspot) = tokio::time::timeout(Duration::from_secs(20), async {
            let (mut qbo, mut hubspot) = (None, None);
            while let Some(line) = lines.next_line().await? {
                let url = |prefix: &str| {
                    line.strip_prefix(prefix)
                        .map(|u| u.trim().trim_end_matches('/').to_owned())
                };
                qbo = qbo.or_else(|| url("qbo "));
                hubspot = hubspot.or_else(|| url("hubspot "));
                if let (Some(qbo), Some(hubspot)) = (&qbo, &hubspot) {
                    return Ok((qbo.clone(), hubspot.clone()));
                }
            }
            anyhow::bail!("the sandbox exited before printing its URLs")
        })
        .await
        .context("the sandbox did not start within 20 s")??;
        // Keep draining its output so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            qbo,
            hubspot,
            child,
        })
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
            // The simulated companies stand in for Intuit sandbox companies (C2).
            ("QboAllowSandboxCompanies", "true".to_owned()),
            ("HubSpotApiBaseUrl", self.hubspot.clone()),
            (
                "HubSpotAuthorizeUrl",
                format!("{}/oauth/authorize", self.hubspot),
            ),
            (
                "HubSpotTokenUrl",
                format!("{}/oauth/v1/token", self.hubspot),
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

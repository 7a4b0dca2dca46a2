//! Creates the template's resources at the local endpoint and reads back how it wires functions.

use std::collections::BTreeMap;

use anyhow::Context;
use serde::Deserialize;
use tokio::process::Command;

use crate::paths::{repo_root, venv_bin};

/// What the deployed template holds, as reported by `scripts/deploy_template.py`.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub stack: String,
    pub endpoint: String,
    pub region: String,
    /// Logical id -> physical id (table name, queue URL, function name …).
    pub resources: BTreeMap<String, Option<String>>,
    pub queues: BTreeMap<String, QueueInfo>,
    pub tables: BTreeMap<String, TableInfo>,
    pub functions: BTreeMap<String, FunctionInfo>,
    /// Logical ids kept when the stack is deleted or they are replaced.
    #[serde(default)]
    pub retained: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct QueueInfo {
    pub url: String,
    pub arn: String,
    pub fifo: bool,
    pub visibility_timeout: i32,
    pub redrive: Option<Redrive>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Redrive {
    pub dead_letter_arn: String,
    pub max_receive_count: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TableInfo {
    pub name: String,
    /// The TTL attribute the template declares (the local endpoint does not keep it).
    pub ttl_attribute: Option<String>,
    #[serde(default)]
    pub deletion_protection: bool,
    #[serde(default)]
    pub point_in_time_recovery: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FunctionInfo {
    pub name: String,
    /// The workspace binary that `rust-cargolambda` builds for this function.
    pub binary: String,
    pub timeout: u64,
    pub memory: u32,
    pub environment: BTreeMap<String, String>,
    pub url: Option<UrlConfig>,
    pub schedules: Vec<String>,
    pub queues: Vec<QueueTrigger>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UrlConfig {
    pub auth_type: String,
    /// `BUFFERED` or `RESPONSE_STREAM`.
    #[serde(default)]
    pub invoke_mode: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct QueueTrigger {
    /// Logical id of the queue.
    pub queue: String,
    pub batch_size: i32,
    pub maximum_batching_window_seconds: i32,
    pub report_batch_item_failures: bool,
}

impl Manifest {
    pub fn function(&self, logical_id: &str) -> anyhow::Result<&FunctionInfo> {
        self.functions
            .get(logical_id)
            .with_context(|| format!("the template has no function {logical_id}"))
    }

    pub fn queue(&self, logical_id: &str) -> anyhow::Result<&QueueInfo> {
        self.queues
            .get(logical_id)
            .with_context(|| format!("the template has no queue {logical_id}"))
    }

    /// The queue a redrive policy points at.
    pub fn queue_by_arn(&self, arn: &str) -> Option<(&String, &QueueInfo)> {
        self.queues.iter().find(|(_, q)| q.arn == arn)
    }
}

/// Template parameters: app credentials and the provider URLs the functions should call.
pub type Parameters = BTreeMap<String, String>;

/// Creates stack `stack` from `infra/template.yaml` at `endpoint`.
pub async fn deploy(
    endpoint: &str,
    stack: &str,
    parameters: &Parameters,
) -> anyhow::Result<Manifest> {
    let root = repo_root();
    let mut command = Command::new(venv_bin("python"));
    command
        .current_dir(&root)
        .arg(root.join("tests/local-stack/scripts/deploy_template.py"))
        .args(["--endpoint", endpoint, "--stack", stack, "--template"])
        .arg(root.join("infra/template.yaml"));
    for (key, value) in parameters {
        command.arg("--parameter").arg(format!("{key}={value}"));
    }
    let output = command
        .output()
        .await
        .context("running the template deploy script")?;
    if !output.status.success() {
        // The script's own message; parameters (which hold secrets) are never echoed by it.
        anyhow::bail!(
            "deploying the template failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    serde_json::from_slice(&output.stdout).context("reading the deploy manifest")
}

//! The whole local stack: the local AWS endpoint with the template's resources, every function
//! of the template running from its real binary, and the triggers wired as the template says.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::aws::LocalAws;
use crate::lambda::{FunctionHost, FunctionSpec};
use crate::manifest::{self, Manifest, Parameters};
use crate::paths::workspace_binary;
use crate::sandboxes::Sandboxes;
use crate::triggers::{function_url_router, run_schedule, schedule_period, SqsPoller};

#[derive(Debug, Clone)]
pub struct Options {
    pub stack_name: String,
    /// Template parameters: app credentials and provider URLs.
    pub parameters: Parameters,
    /// Run schedules this often instead of their declared rate (demo and tests).
    pub schedule_period: Option<Duration>,
    /// Let failed SQS messages come back after this long instead of the visibility timeout.
    pub retry_after: Option<Duration>,
    /// Deliver this share of processed messages again (SQS delivers at least once).
    pub duplicate_deliveries: f64,
    /// Instances per function (Lambda's concurrency, locally).
    pub instances: usize,
    pub run_schedules: bool,
    pub run_queues: bool,
    /// Where function logs go: one file per function in this folder, or the terminal.
    pub log_dir: Option<PathBuf>,
    pub rust_log: String,
    /// Start the sandboxes and point the functions at them (unless an endpoint is given).
    pub sandboxes: bool,
    /// Point both sandboxes' change notifications at the webhooks function.
    pub webhooks: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            stack_name: "hubspot-qbo".into(),
            parameters: Parameters::new(),
            schedule_period: None,
            retry_after: None,
            duplicate_deliveries: 0.0,
            instances: 1,
            run_schedules: true,
            run_queues: true,
            log_dir: None,
            rust_log: "info".into(),
            sandboxes: true,
            webhooks: true,
        }
    }
}

pub struct LocalStack {
    pub aws: LocalAws,
    pub sandboxes: Option<Sandboxes>,
    pub manifest: Manifest,
    pub functions: BTreeMap<String, Arc<FunctionHost>>,
    /// Function logical id -> its local function URL.
    pub urls: BTreeMap<String, String>,
    /// Both sandboxes send their change notifications to the webhooks function.
    pub webhooks_pointed: bool,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl LocalStack {
    pub async fn start(mut options: Options) -> anyhow::Result<Self> {
        let sandboxes = match options.sandboxes {
            true => Some(Sandboxes::start(&options.parameters).await?),
            false => None,
        };
        for (key, value) in sandboxes.iter().flat_map(Sandboxes::endpoint_parameters) {
            options.parameters.entry(key).or_insert(value);
        }
        // Notifications on: the schedule relaxes to its setting for that, as deployed.
        if options.webhooks && sandboxes.is_some() {
            options
                .parameters
                .entry("WebhooksEnabled".to_owned())
                .or_insert_with(|| "true".to_owned());
        }
        // The local AWS endpoint answers one call at a time and, under a sync of thousands of
        // records, slower than DynamoDB: its calls get the most time the template allows.
        for (key, value) in [
            ("AwsOperationTimeoutSeconds", "9"),
            ("AwsAttemptTimeoutSeconds", "6"),
        ] {
            options
                .parameters
                .entry(key.to_owned())
                .or_insert_with(|| value.to_owned());
        }
        let deployed = match LocalAws::start().await {
            Ok(aws) => {
                match manifest::deploy(&aws.endpoint, &options.stack_name, &options.parameters)
                    .await
                {
                    Ok(manifest) => Ok((aws, manifest)),
                    Err(e) => {
                        let _ = aws.stop().await;
                        Err(e)
                    }
                }
            }
            Err(e) => Err(e),
        };
        let (aws, manifest) = match deployed {
            Ok(deployed) => deployed,
            Err(e) => {
                if let Some(sandboxes) = sandboxes {
                    sandboxes.stop().await;
                }
                return Err(e);
            }
        };
        let mut stack = Self {
            aws,
            sandboxes,
            manifest,
            functions: BTreeMap::new(),
            urls: BTreeMap::new(),
            webhooks_pointed: false,
            stop: watch::channel(false).0,
            tasks: Vec::new(),
        };
        if let Err(e) = stack.wire(&options).await {
            stack.shutdown().await?;
            return Err(e);
        }
        if options.webhooks && stack.sandboxes.is_some() {
            if let Err(e) = crate::webhooks::point_sandboxes(&stack).await {
                stack.shutdown().await?;
                return Err(e.context("pointing the sandboxes' webhooks at the webhooks function"));
            }
            stack.webhooks_pointed = true;
        }
        Ok(stack)
    }

    async fn wire(&mut self, options: &Options) -> anyhow::Result<()> {
        let sdk = self.aws.sdk_config().await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        for (logical_id, function) in self.manifest.functions.clone() {
            let mut environment: Vec<(String, String)> =
                function.environment.clone().into_iter().collect();
            environment.extend(self.aws.client_environment());
            environment.push(("RUST_LOG".into(), options.rust_log.clone()));
            let binary = workspace_binary(&function.binary);
            let log = match &options.log_dir {
                Some(dir) => Some(dir.join(format!("{}.log", function.binary))),
                None => None,
            };
            let host = Arc::new(
                FunctionHost::start(FunctionSpec {
                    logical_id: &logical_id,
                    name: &function.name,
                    binary: &binary,
                    timeout: Duration::from_secs(function.timeout),
                    memory_mb: function.memory,
                    environment,
                    instances: options.instances,
                    log_file: log,
                })
                .await?,
            );
            if function.url.is_some() {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                self.urls.insert(
                    logical_id.clone(),
                    format!("http://{}/", listener.local_addr()?),
                );
                let router = function_url_router(host.clone());
                let mut stop = self.stop.subscribe();
                self.tasks.push(tokio::spawn(async move {
                    let _ = axum::serve(listener, router)
                        .with_graceful_shutdown(async move {
                            let _ = stop.changed().await;
                        })
                        .await;
                }));
            }
            if options.run_schedules {
                for expression in &function.schedules {
                    let period = match options.schedule_period {
                        Some(period) => period,
                        None => schedule_period(expression)?,
                    };
                    let rule = format!("arn:aws:events:us-east-1:123456789012:rule/{logical_id}");
                    self.tasks.push(tokio::spawn(run_schedule(
                        host.clone(),
                        rule,
                        period,
                        self.stop.subscribe(),
                    )));
                }
            }
            if options.run_queues {
                for trigger in &function.queues {
                    let queue = self.manifest.queue(&trigger.queue)?.clone();
                    let poller = SqsPoller {
                        host: host.clone(),
                        sqs: sqs.clone(),
                        queue,
                        trigger: trigger.clone(),
                        retry_after: options.retry_after,
                        duplicate_deliveries: options.duplicate_deliveries,
                    };
                    self.tasks
                        .push(tokio::spawn(poller.run(self.stop.subscribe())));
                }
            }
            self.functions.insert(logical_id, host);
        }
        Ok(())
    }

    pub fn function(&self, logical_id: &str) -> anyhow::Result<&Arc<FunctionHost>> {
        self.functions
            .get(logical_id)
            .with_context(|| format!("no function {logical_id} in the stack"))
    }

    pub fn url(&self, logical_id: &str) -> anyhow::Result<&str> {
        self.urls
            .get(logical_id)
            .map(String::as_str)
            .with_context(|| format!("{logical_id} has no function URL"))
    }

    /// Stops triggers, functions and the local endpoint, and waits for them to end.
    /// Messages waiting, in flight or delayed on the sync and poll queues together.
    pub async fn messages_waiting(&self, sqs: &aws_sdk_sqs::Client) -> anyhow::Result<u64> {
        let mut waiting = 0;
        for name in ["SyncQueue", "PollQueue", "ActionQueue"] {
            let attributes = sqs
                .get_queue_attributes()
                .queue_url(&self.manifest.queue(name)?.url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
                .send()
                .await?;
            waiting += attributes
                .attributes()
                .into_iter()
                .flatten()
                .filter(|(k, _)| k.as_str().starts_with("ApproximateNumberOfMessages"))
                .filter_map(|(_, v)| v.parse::<u64>().ok())
                .sum::<u64>();
        }
        Ok(waiting)
    }

    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
        for host in self.functions.into_values() {
            match Arc::try_unwrap(host) {
                Ok(host) => host.stop().await,
                Err(host) => {
                    tracing::warn!(function = %host.logical_id, "function still in use at shutdown")
                }
            }
        }
        if let Some(sandboxes) = self.sandboxes {
            sandboxes.stop().await;
        }
        self.aws.stop().await
    }
}

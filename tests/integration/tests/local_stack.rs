//! The local stack end to end: the real function binaries behind the Lambda Runtime API, their
//! function URLs, schedules and SQS triggers wired from the template, and a clean shutdown.
//! Needs the workspace binaries built (`make test` builds them first).

use std::time::{Duration, Instant};

use hubspot_qbo_core::queue::{sqs::SqsQueue, OutgoingMessage, Queue, QueueName};
use integration_tests::test_parameters;
use local_stack::lambda::Invocation;
use local_stack::stack::{LocalStack, Options};
use serde_json::{json, Value};

fn options() -> Options {
    Options {
        stack_name: "e2e".into(),
        parameters: test_parameters(),
        retry_after: Some(Duration::ZERO),
        log_dir: Some(std::env::temp_dir()),
        ..Options::default()
    }
}

fn alive(pid: u32) -> bool {
    // A killed child that was reaped has no /proc entry; a zombie would show state Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

async fn messages_in(sqs: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<u64> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(
            aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        )
        .send()
        .await?;
    Ok(attributes
        .attributes
        .unwrap_or_default()
        .values()
        .filter_map(|v| v.parse::<u64>().ok())
        .sum())
}

async fn wait_for(
    what: &str,
    within: Duration,
    mut check: impl AsyncFnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while !check().await? {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test]
async fn function_urls_reach_the_real_binaries() -> anyhow::Result<()> {
    let stack = LocalStack::start(Options {
        run_schedules: false,
        run_queues: false,
        ..options()
    })
    .await?;
    let client = reqwest::Client::new();
    for (logical_id, label) in [
        ("ActionCreateInvoiceFunction", "Create QuickBooks invoice"),
        (
            "ActionCreateRefundReceiptFunction",
            "Create QuickBooks refund receipt",
        ),
    ] {
        // The action's own answer to a call HubSpot did not sign.
        let response = client
            .post(format!("{}some/path?x=1", stack.url(logical_id)?))
            .body("{}")
            .send()
            .await?;
        assert_eq!(response.status(), 401, "{logical_id} ({label})");
        let body: Value = response.json().await?;
        assert_eq!(body["category"], "missing_signature", "{logical_id}");
    }
    let unknown = client
        .get(format!("{}some/path", stack.url("OAuthInstallFunction")?))
        .header("accept", "application/json")
        .send()
        .await?;
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.json::<Value>().await?["category"], "not_found");
    // The functions are pointed at the sandboxes the stack started.
    let sandboxes = stack.sandboxes.as_ref().expect("sandboxes started");
    let environment = &stack.manifest.function("ObjectSyncFunction")?.environment;
    assert_eq!(environment["QBO_API_BASE_URL"], sandboxes.qbo);
    assert_eq!(environment["HUBSPOT_API_BASE_URL"], sandboxes.hubspot);
    assert_eq!(
        environment["HUBSPOT_TOKEN_URL"],
        format!("{}/oauth/v1/token", sandboxes.hubspot)
    );
    stack.shutdown().await
}

#[tokio::test]
async fn schedule_events_reach_the_poller_and_its_errors_carry_their_class() -> anyhow::Result<()> {
    let stack = LocalStack::start(Options {
        run_schedules: false,
        run_queues: false,
        ..options()
    })
    .await?;
    let poller = stack.function("ScheduledPollFunction")?;
    let answer = poller
        .invoke(&local_stack::triggers::scheduled_event(
            "arn:aws:events:us-east-1:1:rule/x",
        ))
        .await?;
    assert_eq!(
        answer,
        Invocation::Response(
            json!({"connections": 0, "reconnect_required": [], "failed": 0,
            "initial_syncs_queued": [], "poll_tasks": 0})
        ),
        "no connection yet: nothing to keep alive"
    );
    let nonsense = poller.invoke(&json!({"hello": "world"})).await?;
    assert!(
        matches!(nonsense, Invocation::Error { ref error_type, .. } if error_type == "Terminal"),
        "{nonsense:?}"
    );
    stack.shutdown().await
}

#[tokio::test]
async fn malformed_work_is_parked_with_its_body_and_nothing_waits_behind_it() -> anyhow::Result<()>
{
    let stack = LocalStack::start(Options {
        run_schedules: false,
        ..options()
    })
    .await?;
    let sdk = stack.aws.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let environment = &stack.manifest.function("ObjectSyncFunction")?.environment;
    let config = hubspot_qbo_core::config::Config::from_lookup(|k| environment.get(k).cloned())?;
    let services = hubspot_qbo_core::runtime::Services::new(config.clone(), &sdk);
    let queue = SqsQueue::new(sqs.clone(), config.queues);
    let malformed = r#"{"connection_id":"c1","object":"contact"}"#;
    // Changes of a connection that does not exist are acknowledged (there is nothing to apply
    // them to); a body that is no sync request at all is parked with its body.
    let unknown = r#"{"kind":"changes","connection_id":"c1","object":"contact","from":"hub_spot","records":[]}"#;
    let not_a_task = r#"{"object":"contact"}"#;
    queue
        .send_all(
            QueueName::Sync,
            vec![
                OutgoingMessage::fifo(malformed, "c1:contact", "b1"),
                OutgoingMessage::fifo(unknown, "c1:contact", "b2"),
            ],
        )
        .await?;
    queue
        .send_all(QueueName::Poll, vec![OutgoingMessage::standard(not_a_task)])
        .await?;
    let parked = |queue: &'static str| {
        let store = services.store.clone();
        async move {
            let items = store
                .query_all(
                    hubspot_qbo_core::store::Table::Ledger,
                    hubspot_qbo_core::store::Query::partition(
                        hubspot_qbo_core::store::keys::ledger::parked_partition(queue),
                    ),
                    hubspot_qbo_core::clock::Clock::system().now_seconds(),
                )
                .await?;
            items
                .iter()
                .map(|i| i.to_value::<hubspot_qbo_core::queue::batch::ParkedMessage>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(anyhow::Error::from)
        }
    };
    let source_queues = ["SyncQueue", "PollQueue"];
    wait_for(
        "both queues to be done",
        Duration::from_secs(60),
        async || {
            let mut waiting = 0;
            for name in source_queues {
                waiting += messages_in(&sqs, &stack.manifest.queue(name)?.url).await?;
            }
            Ok(
                waiting == 0
                    && parked("sync").await?.len() == 1
                    && parked("poll").await?.len() == 1,
            )
        },
    )
    .await?;
    let sync = parked("sync").await?;
    assert_eq!(
        (sync[0].category.as_str(), sync[0].body.as_str()),
        ("malformed", malformed)
    );
    let poll = parked("poll").await?;
    assert_eq!(
        (poll[0].category.as_str(), poll[0].body.as_str()),
        ("malformed", not_a_task)
    );
    for name in ["SyncDeadLetterQueue", "PollDeadLetterQueue"] {
        assert_eq!(
            messages_in(&sqs, &stack.manifest.queue(name)?.url).await?,
            0,
            "{name}"
        );
    }
    stack.shutdown().await
}

#[tokio::test]
async fn a_killed_instance_is_replaced_and_answers_again() -> anyhow::Result<()> {
    let stack = LocalStack::start(Options {
        run_schedules: false,
        ..options()
    })
    .await?;
    let poller = stack.function("ScheduledPollFunction")?;
    let before = poller.pids();
    assert_eq!(before.len(), 1);
    poller.kill_instances();
    let started = std::time::Instant::now();
    while poller.pids().is_empty() || poller.pids() == before {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(10),
            "no new instance"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!alive(before[0]), "the old instance is gone");
    let answer = poller
        .invoke(&local_stack::triggers::scheduled_event(
            "arn:aws:events:us-east-1:1:rule/x",
        ))
        .await?;
    assert!(matches!(answer, Invocation::Response(_)), "{answer:?}");
    stack.shutdown().await
}

#[tokio::test]
async fn shutdown_leaves_no_process_behind() -> anyhow::Result<()> {
    let stack = LocalStack::start(options()).await?;
    let pids: Vec<u32> = stack.functions.values().flat_map(|f| f.pids()).collect();
    assert_eq!(
        pids.len(),
        stack.manifest.functions.len(),
        "one instance each"
    );
    assert!(pids.iter().all(|pid| alive(*pid)));
    let endpoint = stack.aws.endpoint.clone();
    let url = stack.url("ActionCreateInvoiceFunction")?.to_owned();
    stack.shutdown().await?;
    for pid in pids {
        assert!(!alive(pid), "function process {pid} survived shutdown");
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    assert!(
        client
            .get(format!("{endpoint}/moto-api/"))
            .send()
            .await
            .is_err(),
        "the AWS endpoint is down"
    );
    assert!(
        client.get(url).send().await.is_err(),
        "function URLs are closed"
    );
    Ok(())
}

/// Children of `parent`, read from /proc.
fn children_of(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // Fields after the command name: state, ppid, …
                stat.rsplit_once(") ")
                    .and_then(|(_, rest)| rest.split(' ').nth(1)?.parse::<u32>().ok())
                    == Some(parent)
            })
        })
        .collect()
}

#[tokio::test]
async fn the_runner_prints_its_urls_and_stops_cleanly_on_ctrl_c() -> anyhow::Result<()> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let binary = local_stack::paths::workspace_binary("local-stack");
    let mut runner = tokio::process::Command::new(&binary)
        .args(["--stack", "ctrl-c", "--log-dir"])
        .arg(std::env::temp_dir())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let pid = runner.id().expect("running");
    let mut lines = BufReader::new(runner.stdout.take().expect("stdout")).lines();
    let mut printed = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            if line.starts_with("Ready.") {
                return Ok(());
            }
            printed.push(line);
        }
        anyhow::bail!("the runner ended before it was ready: {printed:?}")
    })
    .await??;
    let function_urls = printed
        .iter()
        .filter(|l| l.starts_with("function URL") && l.contains("http://127.0.0.1:"))
        .count();
    assert_eq!(function_urls, 9, "{printed:#?}");
    assert!(
        printed
            .iter()
            .any(|l| l.starts_with("admin API           curl -H 'Authorization: Bearer local-operator-key' http://127.0.0.1:")),
        "{printed:#?}"
    );
    assert!(printed
        .iter()
        .any(|l| l.starts_with("local AWS endpoint  http://127.0.0.1:")));
    assert!(printed
        .iter()
        .any(|l| l.starts_with("QuickBooks sandbox  http://127.0.0.1:")));
    assert!(
        printed.iter().any(|l| l
            == "demo connection 62515-9130350000000001 (HubSpot portal 62515, QuickBooks company 9130350000000001)"),
        "{printed:#?}"
    );
    // The demo company syncs while the stack runs: its customers arrive as HubSpot contacts.
    let hubspot = printed
        .iter()
        .find_map(|l| l.strip_prefix("HubSpot sandbox     "))
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or_else(|| anyhow::anyhow!("no HubSpot sandbox line"))?
        .to_owned();
    let http = reqwest::Client::new();
    tokio::time::timeout(Duration::from_secs(90), async {
        loop {
            let dump: Value = http
                .get(format!("{hubspot}/_sandbox/portals/62515/objects/contacts"))
                .send()
                .await?
                .json()
                .await?;
            let synced = dump["results"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["properties"]["qbo_customer_id"].is_string())
                .count();
            if synced > 0 {
                return Ok::<_, anyhow::Error>(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await??;

    let children = children_of(pid);
    assert!(
        children.len() >= 11,
        "9 functions, the AWS endpoint and the sandbox: {children:?}"
    );
    // SAFETY: kill(2) on our own child process.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGINT) }, 0, "Ctrl-C");
    let status = tokio::time::timeout(Duration::from_secs(30), runner.wait()).await??;
    assert!(status.success(), "exit status {status}");
    for child in children {
        assert!(!alive(child), "process {child} outlived the runner");
    }
    Ok(())
}

#[tokio::test]
async fn the_demo_ends_with_its_counts_as_one_json_line() -> anyhow::Result<()> {
    let binary = local_stack::paths::workspace_binary("local-stack");
    let output = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new(&binary)
            .args(["demo", "--stack", "demo-test"])
            .kill_on_drop(true)
            .output(),
    )
    .await??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    let counts: Value = serde_json::from_str(last)?;
    for object in ["contacts", "products", "invoices"] {
        for status in ["synced", "failing", "excluded"] {
            assert!(
                counts[object][status].is_u64(),
                "{object}.{status} in {last}"
            );
        }
    }
    assert!(counts["contacts"]["synced"].as_u64() > Some(20), "{last}");
    assert!(
        counts["products"]["excluded"].as_u64() > Some(0),
        "items without a SKU: {last}"
    );
    assert_eq!(
        counts["invoices"]["synced"].as_u64(),
        Some(8),
        "six QuickBooks invoices and two HubSpot ones: {last}"
    );
    assert_eq!(counts["invoices"]["failing"].as_u64(), Some(0), "{stdout}");
    assert!(
        stdout.contains("demo connection 62515-9130350000000001"),
        "{stdout}"
    );
    assert!(stdout.contains("after one incremental round"), "{stdout}");
    Ok(())
}

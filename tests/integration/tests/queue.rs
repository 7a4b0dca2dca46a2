//! The SQS adapter against the template's queues: FIFO order and deduplication, per-entry
//! failures in batch sends, redrive to the dead-letter queues, typed errors.

use std::collections::BTreeMap;
use std::time::Duration;

use hubspot_qbo_core::queue::{
    sqs::SqsQueue, OutgoingMessage, Queue, QueueError, QueueName, MAX_BODY_BYTES,
};
use integration_tests::Deployed;

async fn receive_all(sqs: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<Vec<String>> {
    let mut bodies = Vec::new();
    let mut empty_rounds = 0;
    while empty_rounds < 2 {
        let received = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            empty_rounds += 1;
            continue;
        }
        for message in messages {
            bodies.push(message.body.clone().unwrap_or_default());
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(message.receipt_handle.unwrap_or_default())
                .send()
                .await?;
        }
    }
    Ok(bodies)
}

fn queue_of(deployed: &Deployed) -> anyhow::Result<SqsQueue> {
    let config = deployed.config_of("ScheduledPollFunction")?;
    Ok(SqsQueue::new(deployed.sqs(), config.queues))
}

#[tokio::test]
async fn fifo_keeps_order_within_each_group_and_drops_repeats() -> anyhow::Result<()> {
    let deployed = Deployed::start().await?;
    let queue = queue_of(&deployed)?;
    // 30 changes for three connections, interleaved, sent in batches of ten.
    let messages: Vec<OutgoingMessage> = (0..30)
        .map(|i| {
            OutgoingMessage::fifo(
                format!("conn-{}:{i:02}", i % 3),
                format!("conn-{}", i % 3),
                format!("change-{i}"),
            )
        })
        .collect();
    let report = queue.send(QueueName::Sync, messages.clone()).await?;
    assert_eq!((report.sent, report.failed.len()), (30, 0));
    // A retried enqueue (same deduplication ids) is not delivered twice.
    queue
        .send_all(QueueName::Sync, messages[..5].to_vec())
        .await?;

    let bodies = receive_all(&deployed.sqs(), &deployed.manifest.queue("SyncQueue")?.url).await?;
    assert_eq!(
        bodies.len(),
        30,
        "repeats within the deduplication window are dropped"
    );
    let mut per_group: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for body in &bodies {
        let (group, sequence) = body.split_once(':').unwrap();
        per_group.entry(group).or_default().push(sequence);
    }
    for (group, sequences) in per_group {
        let mut sorted = sequences.clone();
        sorted.sort();
        assert_eq!(sequences, sorted, "{group} arrived out of order");
        assert_eq!(sequences.len(), 10);
    }
    deployed.stop().await
}

#[tokio::test]
async fn a_batch_reports_each_unsendable_entry_and_sends_the_rest() -> anyhow::Result<()> {
    let deployed = Deployed::start().await?;
    let queue = queue_of(&deployed)?;
    let mut messages: Vec<OutgoingMessage> = (0..12)
        .map(|i| OutgoingMessage::standard(format!("nudge {i}")))
        .collect();
    messages[3] = OutgoingMessage::standard("x".repeat(MAX_BODY_BYTES + 1));
    messages[7] = OutgoingMessage::fifo("grouped", "g", "d");
    messages[11] = OutgoingMessage::standard("");
    let report = queue.send(QueueName::Poll, messages).await?;
    assert_eq!(report.sent, 9);
    let failed: Vec<usize> = report.failed.iter().map(|f| f.index).collect();
    assert_eq!(failed, [3, 7, 11]);
    assert!(report.failed.iter().all(|f| f.sender_fault));
    assert!(
        report.failed[0].message.contains("262144"),
        "{:?}",
        report.failed[0]
    );
    let bodies = receive_all(&deployed.sqs(), &deployed.manifest.queue("PollQueue")?.url).await?;
    assert_eq!(bodies.len(), 9);
    let error = queue
        .send_all(QueueName::Poll, vec![OutgoingMessage::standard("")])
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        QueueError::PartlyUnsent {
            failed: 1,
            total: 1,
            ..
        }
    ));
    assert_eq!(
        error.class(),
        hubspot_qbo_core::ErrorClass::Terminal,
        "an empty body fails however often it is sent"
    );
    deployed.stop().await
}

/// Receives the message `count` times without deleting it, as a failing consumer would.
async fn fail_to_process(sqs: &aws_sdk_sqs::Client, url: &str, count: u32) -> anyhow::Result<u32> {
    let mut receipts = 0;
    for _ in 0..count * 3 {
        let received = sqs
            .receive_message()
            .queue_url(url)
            .visibility_timeout(0)
            .wait_time_seconds(0)
            .send()
            .await?;
        receipts += received.messages.unwrap_or_default().len() as u32;
        if receipts == count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(receipts)
}

#[tokio::test]
async fn messages_failing_max_receive_count_times_move_to_the_dead_letter_queue(
) -> anyhow::Result<()> {
    let deployed = Deployed::start().await?;
    let queue = queue_of(&deployed)?;
    let sqs = deployed.sqs();
    let manifest = &deployed.manifest;
    for (logical_id, message) in [
        (
            "PollQueue",
            OutgoingMessage::standard(r#"{"connection_id":"c1"}"#),
        ),
        (
            "SyncQueue",
            OutgoingMessage::fifo(r#"{"connection_id":"c1"}"#, "c1:contact", "batch-1"),
        ),
    ] {
        let info = manifest.queue(logical_id)?;
        let redrive = info.redrive.as_ref().expect("redrive policy");
        let (_, dlq) = manifest
            .queue_by_arn(&redrive.dead_letter_arn)
            .expect("dead-letter queue");
        let name = if logical_id == "SyncQueue" {
            QueueName::Sync
        } else {
            QueueName::Poll
        };
        queue.send_all(name, vec![message]).await?;

        assert_eq!(
            fail_to_process(&sqs, &info.url, redrive.max_receive_count).await?,
            redrive.max_receive_count
        );
        // The next receive finds the message over its limit and moves it.
        let after = sqs
            .receive_message()
            .queue_url(&info.url)
            .wait_time_seconds(0)
            .send()
            .await?;
        assert!(
            after.messages.unwrap_or_default().is_empty(),
            "{logical_id}: nothing left in the source queue"
        );
        let parked = receive_all(&sqs, &dlq.url).await?;
        assert_eq!(
            parked,
            [r#"{"connection_id":"c1"}"#],
            "{logical_id}: the message rests in the DLQ, intact"
        );
    }
    deployed.stop().await
}

#[tokio::test]
async fn a_missing_queue_is_a_typed_terminal_error() -> anyhow::Result<()> {
    let deployed = Deployed::start().await?;
    let mut config = deployed.config_of("ScheduledPollFunction")?;
    config.queues.poll = format!("{}/123456789012/no-such-queue", deployed.aws.endpoint);
    let queue = SqsQueue::new(deployed.sqs(), config.queues);
    let error = queue
        .send(QueueName::Poll, vec![OutgoingMessage::standard("hi")])
        .await
        .unwrap_err();
    assert!(matches!(error, QueueError::QueueNotFound(_)), "{error:?}");
    assert!(!hubspot_qbo_core::Error::from(error).is_retryable());
    deployed.stop().await
}

#[tokio::test]
async fn batches_are_split_by_bytes_and_fifo_messages_need_a_dedup_id() -> anyhow::Result<()> {
    let deployed = Deployed::start().await?;
    let queue = queue_of(&deployed)?;
    // Four 100 KiB messages: ten fit SQS's count limit, but not its 256 KiB per batch.
    let big = "x".repeat(100 * 1024);
    let mut messages: Vec<OutgoingMessage> = (0..4)
        .map(|i| OutgoingMessage::fifo(format!("{i}{big}"), "c1:contact", format!("big-{i}")))
        .collect();
    messages.push(OutgoingMessage {
        body: "no dedup id".into(),
        group_id: Some("c1:contact".into()),
        dedup_id: None,
        delay: None,
    });
    let report = queue.send(QueueName::Sync, messages).await?;
    assert_eq!(report.sent, 4, "{report:?}");
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].index, 4);
    assert!(report.failed[0].sender_fault);
    assert!(
        report.failed[0].message.contains("deduplication id"),
        "{:?}",
        report.failed[0]
    );
    let bodies = receive_all(&deployed.sqs(), &deployed.manifest.queue("SyncQueue")?.url).await?;
    assert_eq!(bodies.len(), 4);
    assert!(bodies.iter().all(|b| b.len() == big.len() + 1));
    deployed.stop().await
}

/// Fails every SQS request after the first `pass`, as a network or SQS outage mid-send would.
#[derive(Debug)]
struct FailAfter {
    pass: usize,
    seen: std::sync::atomic::AtomicUsize,
}

impl aws_sdk_sqs::config::Intercept for FailAfter {
    fn name(&self) -> &'static str {
        "FailAfter"
    }

    fn read_before_transmit(
        &self,
        _: &aws_sdk_sqs::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_sqs::config::RuntimeComponents,
        _: &mut aws_sdk_sqs::config::ConfigBag,
    ) -> Result<(), aws_sdk_sqs::error::BoxError> {
        let seen = self.seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if seen >= self.pass {
            Err("connection reset (injected)".into())
        } else {
            Ok(())
        }
    }
}

#[tokio::test]
async fn a_failing_later_batch_keeps_the_report_of_those_sent() -> anyhow::Result<()> {
    let deployed = Deployed::start().await?;
    let config = deployed.config_of("ScheduledPollFunction")?;
    let sqs_config = aws_sdk_sqs::config::Builder::from(&deployed.sdk)
        .interceptor(FailAfter {
            pass: 1,
            seen: Default::default(),
        })
        .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
        .build();
    let queue = SqsQueue::new(aws_sdk_sqs::Client::from_conf(sqs_config), config.queues);
    let messages: Vec<OutgoingMessage> = (0..25)
        .map(|i| OutgoingMessage::standard(format!("nudge {i}")))
        .collect();
    let report = queue.send(QueueName::Poll, messages.clone()).await?;
    assert_eq!(report.sent, 10, "the first batch went out: {report:?}");
    let failed: Vec<usize> = report.failed.iter().map(|f| f.index).collect();
    assert_eq!(
        failed,
        (10..25).collect::<Vec<_>>(),
        "the rest is listed as unsent"
    );
    assert!(report.failed.iter().all(|f| !f.sender_fault));
    let error = queue.send_all(QueueName::Poll, messages).await.unwrap_err();
    assert!(
        matches!(&error, QueueError::Unavailable(_)),
        "nothing sent at all is the transport's own error: {error:?}"
    );
    let bodies = receive_all(&deployed.sqs(), &deployed.manifest.queue("PollQueue")?.url).await?;
    assert_eq!(bodies.len(), 10, "exactly the reported ones were sent");
    deployed.stop().await
}

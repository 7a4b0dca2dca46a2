//! The SQS batch consumer on the template's real FIFO sync queue and ledger table: a poison
//! message at the head of a group is parked after its own attempts and the messages behind it
//! run once each, in order, none of them in the dead-letter queue; a throttled message comes back
//! after the provider's delay instead of the whole visibility timeout.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use hubspot_qbo_core::error::Error;
use hubspot_qbo_core::queue::batch::{
    Ordering, ParkedMessage, StoredFailures, DEFAULT_MAX_ATTEMPTS,
};
use hubspot_qbo_core::queue::{OutgoingMessage, QueueName};
use hubspot_qbo_core::runtime::Services;
use hubspot_qbo_core::store::keys::ledger;
use hubspot_qbo_core::store::{Item, Query, Table};
use integration_tests::Deployed;

#[derive(serde::Deserialize)]
struct Work {
    action: String,
}

/// Receives a batch as Lambda's event source would hand it over.
async fn receive(sqs: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<Vec<SqsMessage>> {
    let received = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(0)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await?;
    Ok(received
        .messages
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            let mut message = SqsMessage::default();
            message.message_id = m.message_id.clone();
            message.receipt_handle = m.receipt_handle.clone();
            message.body = m.body.clone();
            message.attributes = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            message
        })
        .collect())
}

fn event(messages: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages;
    event
}

/// Deletes what the consumer handled, and makes what it returned visible again at once (the
/// test need not wait out the visibility timeout).
async fn settle(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    batch: Vec<SqsMessage>,
    returned: &[&str],
) -> anyhow::Result<()> {
    for message in batch {
        let handle = message.receipt_handle.clone().unwrap_or_default();
        if returned.contains(&message.message_id.as_deref().unwrap_or_default()) {
            sqs.change_message_visibility()
                .queue_url(url)
                .receipt_handle(handle)
                .visibility_timeout(0)
                .send()
                .await?;
        } else {
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(handle)
                .send()
                .await?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_poison_message_is_parked_and_the_messages_behind_it_run_once() -> anyhow::Result<()> {
    let deployed = Deployed::start().await?;
    let services = Services::new(deployed.config_of("ObjectSyncFunction")?, &deployed.sdk);
    let sqs = deployed.sqs();
    let url = deployed.manifest.queue("SyncQueue")?.url.clone();
    let dlq = deployed.manifest.queue("SyncDeadLetterQueue")?.url.clone();

    let work = |action: &str| format!(r#"{{"action":"{action}"}}"#);
    let mut messages = vec![OutgoingMessage::fifo(work("poison"), "c1:contact", "p1")];
    for i in 1..=12 {
        messages.push(OutgoingMessage::fifo(
            work(&format!("good-{i}")),
            "c1:contact",
            format!("g{i}"),
        ));
    }
    messages.push(OutgoingMessage::fifo("not json", "c2:contact", "m1"));
    messages.push(OutgoingMessage::fifo(work("good-c2"), "c2:contact", "h1"));
    services.queue.send_all(QueueName::Sync, messages).await?;

    let failures = StoredFailures::new(services.store.clone(), services.clock.clone(), "sync");
    let consumer = failures.consumer(Ordering::Fifo, &*services.queue, QueueName::Sync);
    let ran: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut most_receives: HashMap<String, u32> = HashMap::new();
    let mut empty = 0;
    for _ in 0..100 {
        let batch = receive(&sqs, &url).await?;
        if batch.is_empty() {
            empty += 1;
            if empty == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        empty = 0;
        for message in &batch {
            let count = message.attributes["ApproximateReceiveCount"].parse()?;
            let action = message.body.clone().unwrap_or_default();
            let seen = most_receives.entry(action).or_default();
            *seen = (*seen).max(count);
        }
        let response = consumer
            .process(event(batch.clone()), |work: Work, _| {
                ran.lock().unwrap().push(work.action.clone());
                async move {
                    if work.action == "poison" {
                        Err(Error::NotImplemented {
                            capability: "a handler that always fails",
                        })
                    } else {
                        Ok(())
                    }
                }
            })
            .await?;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        settle(&sqs, &url, batch, &failed).await?;
    }

    let ran = ran.into_inner().unwrap();
    let poison_runs = ran.iter().filter(|a| *a == "poison").count();
    assert_eq!(poison_runs, DEFAULT_MAX_ATTEMPTS as usize, "{ran:?}");
    let good: Vec<&String> = ran.iter().filter(|a| a.starts_with("good-")).collect();
    assert_eq!(
        good.len(),
        13,
        "each good message ran exactly once: {ran:?}"
    );
    assert!(
        good.iter().any(|a| *a == "good-c2"),
        "the malformed head held nothing back"
    );
    let c1: Vec<&&String> = good.iter().filter(|a| **a != "good-c2").collect();
    let c1_expected: Vec<String> = (1..=12).map(|i| format!("good-{i}")).collect();
    assert_eq!(
        c1.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        c1_expected,
        "in order"
    );
    let redrive = deployed
        .manifest
        .queue("SyncQueue")?
        .redrive
        .clone()
        .expect("redrive");
    let worst = most_receives.values().max().copied().unwrap_or_default();
    assert!(
        worst < redrive.max_receive_count,
        "a message was received {worst} times (limit {})",
        redrive.max_receive_count
    );
    assert!(receive(&sqs, &dlq).await?.is_empty(), "nothing in the DLQ");

    // Both parked messages are kept, with their bodies and why.
    let parked: Vec<ParkedMessage> = services
        .store
        .query_all(
            Table::Ledger,
            Query::partition(ledger::parked_partition("sync")),
            services.clock.now_seconds(),
        )
        .await?
        .iter()
        .map(Item::to_value)
        .collect::<Result<_, _>>()?;
    let mut kinds: Vec<(&str, &str)> = parked
        .iter()
        .map(|p| (p.category.as_str(), p.body.as_str()))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("exhausted", r#"{"action":"poison"}"#),
            ("malformed", "not json")
        ]
    );
    assert!(parked
        .iter()
        .any(|p| p.reason.contains("gave up after 5 failed attempts")));
    deployed.stop().await
}

#[tokio::test]
async fn a_throttled_message_comes_back_after_the_providers_delay() -> anyhow::Result<()> {
    let deployed = Deployed::start().await?;
    let services = Services::new(deployed.config_of("ObjectSyncFunction")?, &deployed.sdk);
    let sqs = deployed.sqs();
    let url = deployed.manifest.queue("SyncQueue")?.url.clone();
    let visibility = deployed.manifest.queue("SyncQueue")?.visibility_timeout;
    services
        .queue
        .send_all(
            QueueName::Sync,
            vec![OutgoingMessage::fifo(
                r#"{"action":"x"}"#,
                "c1:product",
                "t1",
            )],
        )
        .await?;
    let failures = StoredFailures::new(services.store.clone(), services.clock.clone(), "sync");
    let consumer = failures.consumer(Ordering::Fifo, &*services.queue, QueueName::Sync);
    let batch = receive(&sqs, &url).await?;
    assert_eq!(batch.len(), 1);
    let throttled_at = Instant::now();
    let response = consumer
        .process(event(batch), |_: Work, _| async {
            Err(Error::Throttled {
                retry_after: Some(Duration::from_secs(2)),
            })
        })
        .await?;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert!(
        receive(&sqs, &url).await?.is_empty(),
        "not before the delay"
    );
    let mut back = Vec::new();
    while back.is_empty() && throttled_at.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        back = receive(&sqs, &url).await?;
    }
    assert_eq!(back.len(), 1, "the message came back");
    let waited = throttled_at.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(visibility as u64),
        "came back after {waited:?}, not after the {visibility} s visibility timeout"
    );
    deployed.stop().await
}

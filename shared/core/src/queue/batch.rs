//! A generic SQS batch handler for Lambda's `ReportBatchItemFailures` contract.
//!
//! It runs a per-message handler over a batch and answers a typed [`SqsBatchResponse`] listing
//! exactly the messages that must come back:
//! - a retryable error, a malformed body or a panic fails only its own message;
//! - a terminal error is recorded (through [`TerminalFailures`]) and the message acknowledged,
//!   so it does not bounce into the dead-letter queue;
//! - on FIFO queues, once a message fails, every later message of the same message group fails
//!   too without being run, so a group's order is never broken; other groups go on.

use std::collections::HashSet;
use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::{FutureExt, StreamExt};
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::error_class::ErrorClass;

/// What the wrapper needs to know of a handler's error.
pub trait MessageError: Display + Send + Sync {
    fn class(&self) -> ErrorClass;

    fn is_retryable(&self) -> bool {
        self.class() == ErrorClass::Retryable
    }

    /// How long the provider asked us to wait (a 429's `Retry-After`).
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// How a queue's messages are processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ordering {
    /// One message after another, in delivery order, stopping a group at its first failure.
    Fifo,
    /// Up to `concurrency` messages at once.
    Standard { concurrency: usize },
}

/// What the handler is told about the message besides its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageContext {
    pub message_id: String,
    pub group_id: Option<String>,
    /// How many times SQS has delivered this message (1 on the first delivery).
    pub receive_count: u32,
}

/// Where terminal failures are kept so that a person can see and fix them.
#[async_trait]
pub trait TerminalFailures<E>: Send + Sync {
    async fn record(&self, context: &MessageContext, body: &str, error: &E) -> Result<(), E>;
}

/// Records terminal failures as error log lines (functions whose failures have no ledger).
pub struct LogTerminalFailures;

#[async_trait]
impl<E: MessageError + 'static> TerminalFailures<E> for LogTerminalFailures {
    async fn record(&self, context: &MessageContext, _body: &str, error: &E) -> Result<(), E> {
        tracing::error!(message_id = %context.message_id, error = %error, "terminal failure: message acknowledged");
        Ok(())
    }
}

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageOutcome {
    Done,
    /// Terminal failure, recorded; the message is deleted.
    Acknowledged,
    /// The message goes back to the queue (and, after maxReceiveCount, to the DLQ).
    Failed(String),
    /// Not run: an earlier message of its FIFO group failed.
    Skipped,
}

impl MessageOutcome {
    fn returns_to_queue(&self) -> bool {
        matches!(self, MessageOutcome::Failed(_) | MessageOutcome::Skipped)
    }
}

/// A batch that cannot be answered message by message.
#[derive(Debug, thiserror::Error)]
#[error("a message in the batch has no message id; the whole batch is returned to the queue")]
pub struct BatchWithoutMessageIds;

/// Runs `handler` over the batch and lists the messages that must be retried.
pub async fn process_batch<T, E, F, Fut>(
    event: SqsEvent,
    ordering: Ordering,
    terminal: &dyn TerminalFailures<E>,
    handler: F,
) -> Result<SqsBatchResponse, BatchWithoutMessageIds>
where
    T: DeserializeOwned,
    E: MessageError,
    F: Fn(T, MessageContext) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let outcomes = outcomes(event, ordering, terminal, handler).await?;
    let mut response = SqsBatchResponse::default();
    for (message_id, outcome) in outcomes {
        if outcome.returns_to_queue() {
            response.add_failure(message_id);
        }
    }
    Ok(response)
}

/// Like [`process_batch`], but returns every message's outcome (for tests and logs).
pub async fn outcomes<T, E, F, Fut>(
    event: SqsEvent,
    ordering: Ordering,
    terminal: &dyn TerminalFailures<E>,
    handler: F,
) -> Result<Vec<(String, MessageOutcome)>, BatchWithoutMessageIds>
where
    T: DeserializeOwned,
    E: MessageError,
    F: Fn(T, MessageContext) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    // Without an id a failure could not be reported: failing the whole batch is the safe answer.
    if event
        .records
        .iter()
        .any(|m| m.message_id.as_deref().is_none_or(str::is_empty))
    {
        return Err(BatchWithoutMessageIds);
    }
    let handler = &handler;
    match ordering {
        Ordering::Fifo => {
            let mut failed_groups = HashSet::new();
            let mut results = Vec::with_capacity(event.records.len());
            for message in event.records {
                let context = context_of(&message);
                let group = context.group_id.clone().unwrap_or_default();
                let outcome = if failed_groups.contains(&group) {
                    MessageOutcome::Skipped
                } else {
                    process_one(message, context.clone(), terminal, handler).await
                };
                if outcome.returns_to_queue() {
                    failed_groups.insert(group);
                }
                results.push((context.message_id, outcome));
            }
            Ok(results)
        }
        Ordering::Standard { concurrency } => Ok(futures::stream::iter(event.records)
            .map(|message| async move {
                let context = context_of(&message);
                let id = context.message_id.clone();
                (id, process_one(message, context, terminal, handler).await)
            })
            .buffered(concurrency.max(1))
            .collect()
            .await),
    }
}

fn context_of(message: &SqsMessage) -> MessageContext {
    MessageContext {
        message_id: message.message_id.clone().unwrap_or_default(),
        group_id: message.attributes.get("MessageGroupId").cloned(),
        receive_count: message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1),
    }
}

async fn process_one<T, E, F, Fut>(
    message: SqsMessage,
    context: MessageContext,
    terminal: &dyn TerminalFailures<E>,
    handler: &F,
) -> MessageOutcome
where
    T: DeserializeOwned,
    E: MessageError,
    F: Fn(T, MessageContext) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let span = tracing::info_span!(
        "sqs_message",
        message_id = %context.message_id,
        group_id = context.group_id.as_deref().unwrap_or(""),
        receive_count = context.receive_count,
    );
    async move {
        let body = message.body.unwrap_or_default();
        let parsed: T = match serde_json::from_str(&body) {
            Ok(parsed) => parsed,
            Err(e) => {
                // Kept, not dropped: after maxReceiveCount it rests in the DLQ for inspection.
                tracing::error!(error = %e, "malformed message body");
                return MessageOutcome::Failed(format!("malformed message body: {e}"));
            }
        };
        let run = AssertUnwindSafe(handler(parsed, context.clone())).catch_unwind().await;
        match run {
            Ok(Ok(())) => MessageOutcome::Done,
            Ok(Err(error)) if error.is_retryable() => {
                tracing::warn!(error = %error, "retryable failure: message returns to the queue");
                MessageOutcome::Failed(error.to_string())
            }
            Ok(Err(error)) => match terminal.record(&context, &body, &error).await {
                Ok(()) => MessageOutcome::Acknowledged,
                Err(record_error) => {
                    tracing::error!(error = %error, record_error = %record_error, "could not record a terminal failure");
                    MessageOutcome::Failed(format!("{error}; recording it failed: {record_error}"))
                }
            },
            Err(panic) => {
                let reason = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                tracing::error!(panic = %reason, "message handler panicked");
                MessageOutcome::Failed(format!("handler panicked: {reason}"))
            }
        }
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use std::sync::Mutex;

    #[derive(serde::Deserialize)]
    struct Work {
        action: String,
    }

    fn message(id: &str, group: Option<&str>, body: &str) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.to_owned());
        m.body = Some(body.to_owned());
        if let Some(group) = group {
            m.attributes.insert("MessageGroupId".into(), group.into());
        }
        m.attributes
            .insert("ApproximateReceiveCount".into(), "2".into());
        m
    }

    fn event(messages: Vec<SqsMessage>) -> SqsEvent {
        let mut e = SqsEvent::default();
        e.records = messages;
        e
    }

    fn work(action: &str) -> String {
        format!(r#"{{"action":"{action}"}}"#)
    }

    #[derive(Default)]
    struct Recorded(Mutex<Vec<(String, String)>>);

    #[async_trait]
    impl TerminalFailures<Error> for Recorded {
        async fn record(
            &self,
            context: &MessageContext,
            _body: &str,
            error: &Error,
        ) -> Result<(), Error> {
            self.0
                .lock()
                .unwrap()
                .push((context.message_id.clone(), error.to_string()));
            Ok(())
        }
    }

    /// A handler whose behaviour each message chooses; it logs what it ran.
    async fn run(
        ordering: Ordering,
        messages: Vec<SqsMessage>,
        terminal: &dyn TerminalFailures<Error>,
    ) -> (Vec<(String, MessageOutcome)>, Vec<String>) {
        let ran = Mutex::new(Vec::new());
        let outcomes = outcomes(
            event(messages),
            ordering,
            terminal,
            |work: Work, context| {
                ran.lock().unwrap().push(context.message_id.clone());
                async move {
                    assert_eq!(context.receive_count, 2);
                    match work.action.as_str() {
                        "ok" => Ok(()),
                        "retry" => Err(Error::Throttled { retry_after: None }),
                        "terminal" => Err(Error::InvalidInput("no SKU".into())),
                        "panic" => panic!("boom in {}", context.message_id),
                        other => panic!("unexpected action {other}"),
                    }
                }
            },
        )
        .await
        .expect("all messages have ids");
        (outcomes, ran.into_inner().unwrap())
    }

    fn failed_ids(response: &SqsBatchResponse) -> Vec<&str> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    #[tokio::test]
    async fn standard_batches_fail_only_the_failing_messages() {
        let messages = vec![
            message("m1", None, &work("ok")),
            message("m2", None, &work("retry")),
            message("m3", None, "{not json"),
            message("m4", None, &work("panic")),
            message("m5", None, &work("terminal")),
            message("m6", None, &work("ok")),
        ];
        let recorded = Recorded::default();
        let (outcomes, ran) = run(
            Ordering::Standard { concurrency: 3 },
            messages.clone(),
            &recorded,
        )
        .await;
        let kinds: Vec<(&str, bool)> = outcomes
            .iter()
            .map(|(id, o)| (id.as_str(), o.returns_to_queue()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("m1", false),
                ("m2", true),
                ("m3", true),
                ("m4", true),
                ("m5", false),
                ("m6", false)
            ]
        );
        assert!(matches!(&outcomes[2].1, MessageOutcome::Failed(r) if r.contains("malformed")));
        assert!(matches!(&outcomes[3].1, MessageOutcome::Failed(r) if r.contains("boom in m4")));
        assert_eq!(outcomes[4].1, MessageOutcome::Acknowledged);
        assert_eq!(
            *recorded.0.lock().unwrap(),
            [("m5".to_owned(), "invalid input: no SKU".to_owned())]
        );
        assert_eq!(ran.len(), 5, "the malformed body never reaches the handler");

        let response = process_batch(
            event(messages),
            Ordering::Standard { concurrency: 2 },
            &Recorded::default(),
            |w: Work, _| async move {
                if w.action == "ok" {
                    Ok(())
                } else {
                    Err(Error::Throttled { retry_after: None })
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(failed_ids(&response), ["m2", "m3", "m4", "m5"]);
    }

    #[tokio::test]
    async fn fifo_stops_a_group_at_its_first_failure() {
        let messages = vec![
            message("a1", Some("conn-a"), &work("ok")),
            message("b1", Some("conn-b"), &work("ok")),
            message("a2", Some("conn-a"), &work("retry")),
            message("b2", Some("conn-b"), &work("ok")),
            message("a3", Some("conn-a"), &work("ok")),
            message("b3", Some("conn-b"), &work("terminal")),
            message("b4", Some("conn-b"), &work("ok")),
        ];
        let (outcomes, ran) = run(Ordering::Fifo, messages, &Recorded::default()).await;
        assert_eq!(
            ran,
            ["a1", "b1", "a2", "b2", "b3", "b4"],
            "a3 never runs after a2 failed"
        );
        let returned: Vec<&str> = outcomes
            .iter()
            .filter(|(_, o)| o.returns_to_queue())
            .map(|(id, _)| id.as_str())
            .collect();
        assert_eq!(returned, ["a2", "a3"]);
        assert_eq!(outcomes[4].1, MessageOutcome::Skipped);
        assert_eq!(
            outcomes[5].1,
            MessageOutcome::Acknowledged,
            "terminal failures do not block the group"
        );
    }

    #[tokio::test]
    async fn fifo_malformed_and_panicking_messages_block_their_group_only() {
        let messages = vec![
            message("a1", Some("a"), "[]"),
            message("b1", Some("b"), &work("panic")),
            message("c1", Some("c"), &work("ok")),
            message("a2", Some("a"), &work("ok")),
            message("b2", Some("b"), &work("ok")),
        ];
        let response = process_batch(
            event(messages),
            Ordering::Fifo,
            &Recorded::default(),
            |w: Work, _| async move {
                match w.action.as_str() {
                    "panic" => panic!("handler bug"),
                    _ => Ok(()),
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(failed_ids(&response), ["a1", "b1", "a2", "b2"]);
    }

    #[tokio::test]
    async fn a_failure_to_record_a_terminal_error_returns_the_message() {
        struct Broken;
        #[async_trait]
        impl TerminalFailures<Error> for Broken {
            async fn record(&self, _: &MessageContext, _: &str, _: &Error) -> Result<(), Error> {
                Err(Error::Throttled { retry_after: None })
            }
        }
        let response = process_batch(
            event(vec![message("m1", None, &work("x"))]),
            Ordering::Fifo,
            &Broken,
            |_: Work, _| async { Err(Error::InvalidInput("bad".into())) },
        )
        .await
        .unwrap();
        assert_eq!(failed_ids(&response), ["m1"]);
    }

    #[tokio::test]
    async fn a_message_without_an_id_fails_the_whole_batch() {
        let mut anonymous = message("", None, &work("ok"));
        anonymous.message_id = None;
        let result = process_batch(
            event(vec![message("m1", None, &work("ok")), anonymous]),
            Ordering::Fifo,
            &LogTerminalFailures,
            |_: Work, _| async { Ok::<(), Error>(()) },
        )
        .await;
        assert!(result.is_err());
    }

    #[test]
    fn the_response_has_the_field_names_lambda_reads() {
        let mut response = SqsBatchResponse::default();
        response.add_failure("m1");
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": "m1"}]})
        );
    }
}

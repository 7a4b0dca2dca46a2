//! A generic SQS batch consumer for Lambda's `ReportBatchItemFailures` contract.
//!
//! It runs a per-message handler over a batch and answers a typed [`SqsBatchResponse`] listing
//! exactly the messages that must come back:
//! - a retryable error or a panic fails only its own message;
//! - a terminal error, or a body that is not a message of this queue, is *parked*: recorded
//!   with the whole body and the reason (through [`TerminalFailures`]) and acknowledged, so it
//!   neither bounces into the dead-letter queue nor blocks anything behind it;
//! - on FIFO queues, once a message fails, every later message of the same message group fails
//!   too without being run, so a group's order is never broken; other groups go on;
//! - a throttled message (the provider named a delay) comes back after that delay, with the
//!   rest of its FIFO group, instead of after the whole visibility timeout.
//!
//! **Poison messages.** A message that fails again and again at the head of a FIFO group holds
//! its group back, and every redelivery also raises the receive count of the messages queued
//! behind it, which SQS would eventually move to the dead-letter queue without their ever
//! having run. So the consumer counts each message's *own* failed attempts (a counter per
//! message id, kept by a [`FailureCounter`]; skipped messages are not counted) and parks a
//! message after [`DEFAULT_MAX_ATTEMPTS`] of them. A follower is skipped at most that many times
//! per message ahead of it in its batch, so a redrive limit above `MAX_BATCH × max attempts`
//! (the template sets it) means only messages that really failed can ever reach the DLQ — which
//! stays as the backstop for whole-invocation failures (a crash, a timeout). Throttled attempts
//! are not counted: waiting out a provider's limit is not the message's fault.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::{FutureExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument;

use super::{Queue, QueueName, MAX_BATCH};
use crate::clock::Clock;
use crate::error_class::ErrorClass;
use crate::store::keys::ledger as keys;
use crate::store::{Item, Store, Table};

/// A message's own failed attempts after which it is parked.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// A redrive limit under which no message reaches the DLQ by being skipped behind others.
pub const SAFE_MAX_RECEIVE_COUNT: u32 = MAX_BATCH as u32 * DEFAULT_MAX_ATTEMPTS;
/// How long failure counters are kept: SQS's longest retention.
const COUNTER_TTL_SECONDS: i64 = 14 * 24 * 3600;
/// The longest body kept with a parked message (DynamoDB items are at most 400 KB).
const PARKED_BODY_LIMIT: usize = 256 * 1024;

/// What the consumer needs to know of a handler's error.
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

/// Why a message was taken off its queue without succeeding.
#[derive(Debug)]
pub enum ParkReason<'a, E> {
    /// The handler's terminal error: retrying would fail the same way.
    Terminal(&'a E),
    /// The body is not a message of this queue.
    Malformed(String),
    /// It failed this many times (retryably, or by panicking); the last reason.
    Exhausted { attempts: u32, last: String },
}

impl<E: Display> ParkReason<'_, E> {
    pub fn category(&self) -> &'static str {
        match self {
            ParkReason::Terminal(_) => "terminal",
            ParkReason::Malformed(_) => "malformed",
            ParkReason::Exhausted { .. } => "exhausted",
        }
    }

    pub fn explanation(&self) -> String {
        match self {
            ParkReason::Terminal(error) => error.to_string(),
            ParkReason::Malformed(reason) => format!("malformed message body: {reason}"),
            ParkReason::Exhausted { attempts, last } => {
                format!("gave up after {attempts} failed attempts; the last: {last}")
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RecordError(pub String);

/// Where parked messages are kept so that a person can see, fix and replay them.
#[async_trait]
pub trait TerminalFailures<E>: Send + Sync {
    async fn record(
        &self,
        context: &MessageContext,
        body: &str,
        reason: ParkReason<'_, E>,
    ) -> Result<(), RecordError>;
}

/// Counts a message's own failed attempts, across deliveries and Lambda instances.
#[async_trait]
pub trait FailureCounter: Send + Sync {
    /// Records one more failure of the message; returns how many it has had.
    async fn count_failure(&self, message_id: &str) -> Result<u32, RecordError>;
}

/// Parked messages and failure counters in the ledger table.
pub struct StoredFailures {
    store: Arc<dyn Store>,
    clock: Clock,
    /// Which queue's messages these are (it names the parked messages' partition).
    queue: &'static str,
}

impl StoredFailures {
    pub fn new(store: Arc<dyn Store>, clock: Clock, queue: &'static str) -> Self {
        Self {
            store,
            clock,
            queue,
        }
    }
}

impl StoredFailures {
    /// A consumer that parks into and counts in this ledger, delaying throttled messages on
    /// `queue`.
    pub fn consumer<'a, E: MessageError + 'static>(
        &'a self,
        ordering: Ordering,
        queue: &'a dyn Queue,
        name: QueueName,
    ) -> Consumer<'a, E> {
        Consumer {
            ordering,
            parked: self,
            failures: self,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            redelivery: Some((queue, name)),
        }
    }
}

/// A parked message as kept in the ledger table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ParkedMessage {
    pub message_id: String,
    pub group_id: Option<String>,
    pub receive_count: u32,
    pub category: String,
    pub reason: String,
    pub body: String,
    pub parked_at: i64,
}

#[async_trait]
impl<E: Display + Send + Sync + 'static> TerminalFailures<E> for StoredFailures {
    async fn record(
        &self,
        context: &MessageContext,
        body: &str,
        reason: ParkReason<'_, E>,
    ) -> Result<(), RecordError> {
        let now_ms = self.clock.now_ms();
        let mut kept = body.to_owned();
        if kept.len() > PARKED_BODY_LIMIT {
            let mut end = PARKED_BODY_LIMIT;
            while !kept.is_char_boundary(end) {
                end -= 1;
            }
            kept.truncate(end);
        }
        let parked = ParkedMessage {
            message_id: context.message_id.clone(),
            group_id: context.group_id.clone(),
            receive_count: context.receive_count,
            category: reason.category().to_owned(),
            reason: reason.explanation(),
            body: kept,
            parked_at: now_ms.div_euclid(1000),
        };
        tracing::error!(message_id = %context.message_id, category = %parked.category,
            reason = %parked.reason, "message parked: recorded and acknowledged");
        let item = Item::from_value(
            keys::parked_message(self.queue, now_ms, &context.message_id),
            &parked,
        )
        .map_err(|e| RecordError(e.to_string()))?;
        self.store
            .put(Table::Ledger, item)
            .await
            .map_err(|e| RecordError(e.to_string()))
    }
}

#[async_trait]
impl FailureCounter for StoredFailures {
    async fn count_failure(&self, message_id: &str) -> Result<u32, RecordError> {
        let expires_at = self.clock.now_seconds() + COUNTER_TTL_SECONDS;
        let count = self
            .store
            .increment(
                Table::Ledger,
                &keys::message_failures(message_id),
                "failures",
                1,
                Some(expires_at),
            )
            .await
            .map_err(|e| RecordError(e.to_string()))?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }
}

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageOutcome {
    Done,
    /// Recorded and acknowledged: terminal, malformed, or out of attempts.
    Parked,
    /// The message goes back to the queue, after `retry_after` when the provider named a delay.
    Failed {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Not run: an earlier message of its FIFO group failed.
    Skipped,
}

impl MessageOutcome {
    fn returns_to_queue(&self) -> bool {
        matches!(
            self,
            MessageOutcome::Failed { .. } | MessageOutcome::Skipped
        )
    }

    fn failed(reason: impl Into<String>) -> Self {
        MessageOutcome::Failed {
            reason: reason.into(),
            retry_after: None,
        }
    }
}

/// A batch that cannot be answered message by message.
#[derive(Debug, thiserror::Error)]
#[error("a message in the batch has no message id; the whole batch is returned to the queue")]
pub struct BatchWithoutMessageIds;

/// How one queue's messages are consumed.
pub struct Consumer<'a, E> {
    pub ordering: Ordering,
    pub parked: &'a dyn TerminalFailures<E>,
    pub failures: &'a dyn FailureCounter,
    pub max_attempts: u32,
    /// Where throttled messages' redelivery is delayed; `None`: they wait out the visibility
    /// timeout.
    pub redelivery: Option<(&'a dyn Queue, QueueName)>,
}

impl<E: MessageError> Consumer<'_, E> {
    /// Runs `handler` over the batch and lists the messages that must be retried.
    pub async fn process<T, F, Fut>(
        &self,
        event: SqsEvent,
        handler: F,
    ) -> Result<SqsBatchResponse, BatchWithoutMessageIds>
    where
        T: DeserializeOwned,
        F: Fn(T, MessageContext) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let outcomes = self.outcomes(event, handler).await?;
        let mut response = SqsBatchResponse::default();
        for (message_id, outcome) in outcomes {
            if outcome.returns_to_queue() {
                response.add_failure(message_id);
            }
        }
        Ok(response)
    }

    /// Like [`Consumer::process`], but returns every message's outcome (for tests and logs).
    pub async fn outcomes<T, F, Fut>(
        &self,
        event: SqsEvent,
        handler: F,
    ) -> Result<Vec<(String, MessageOutcome)>, BatchWithoutMessageIds>
    where
        T: DeserializeOwned,
        F: Fn(T, MessageContext) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        // Without an id a failure could not be reported: failing the whole batch is the safe
        // answer.
        if event
            .records
            .iter()
            .any(|m| m.message_id.as_deref().is_none_or(str::is_empty))
        {
            return Err(BatchWithoutMessageIds);
        }
        let receipts: HashMap<String, Option<String>> = event
            .records
            .iter()
            .map(|m| {
                (
                    m.message_id.clone().unwrap_or_default(),
                    m.receipt_handle.clone(),
                )
            })
            .collect();
        let handler = &handler;
        let mut delays: Vec<(String, Duration)> = Vec::new();
        let results = match self.ordering {
            Ordering::Fifo => {
                // A group's first failure decides when the whole returned group comes back.
                let mut failed_groups: HashMap<String, Option<Duration>> = HashMap::new();
                let mut results = Vec::with_capacity(event.records.len());
                for message in event.records {
                    let context = context_of(&message);
                    let group = context.group_id.clone().unwrap_or_default();
                    let outcome = match failed_groups.get(&group) {
                        Some(delay) => {
                            if let Some(delay) = delay {
                                delays.push((context.message_id.clone(), *delay));
                            }
                            MessageOutcome::Skipped
                        }
                        None => self.process_one(message, context.clone(), handler).await,
                    };
                    if let MessageOutcome::Failed { retry_after, .. } = &outcome {
                        failed_groups.insert(group, *retry_after);
                        if let Some(delay) = retry_after {
                            delays.push((context.message_id.clone(), *delay));
                        }
                    }
                    results.push((context.message_id, outcome));
                }
                results
            }
            Ordering::Standard { concurrency } => {
                let results: Vec<(String, MessageOutcome)> = futures::stream::iter(event.records)
                    .map(|message| async move {
                        let context = context_of(&message);
                        let id = context.message_id.clone();
                        (id, self.process_one(message, context, handler).await)
                    })
                    .buffered(concurrency.max(1))
                    .collect()
                    .await;
                for (id, outcome) in &results {
                    if let MessageOutcome::Failed {
                        retry_after: Some(delay),
                        ..
                    } = outcome
                    {
                        delays.push((id.clone(), *delay));
                    }
                }
                results
            }
        };
        self.delay(delays, &receipts).await;
        Ok(results)
    }

    /// Makes throttled messages come back after the provider's delay.
    async fn delay(
        &self,
        delays: Vec<(String, Duration)>,
        receipts: &HashMap<String, Option<String>>,
    ) {
        let Some((queue, name)) = self.redelivery else {
            return;
        };
        let mut by_delay: HashMap<Duration, Vec<String>> = HashMap::new();
        for (id, delay) in delays {
            if let Some(Some(handle)) = receipts.get(&id) {
                by_delay.entry(delay).or_default().push(handle.clone());
            }
        }
        for (delay, handles) in by_delay {
            if let Err(error) = queue.delay_redelivery(name, handles, delay).await {
                // They come back after the visibility timeout instead: later, never lost.
                tracing::warn!(%error, "could not delay the redelivery of throttled messages");
            }
        }
    }

    async fn process_one<T, F, Fut>(
        &self,
        message: SqsMessage,
        context: MessageContext,
        handler: &F,
    ) -> MessageOutcome
    where
        T: DeserializeOwned,
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
                // It will never parse: kept with its body, and out of the way.
                Err(e) => {
                    return self
                        .park(&context, &body, ParkReason::Malformed(e.to_string()))
                        .await
                }
            };
            let run = AssertUnwindSafe(handler(parsed, context.clone()))
                .catch_unwind()
                .await;
            match run {
                Ok(Ok(())) => MessageOutcome::Done,
                Ok(Err(error)) if !error.is_retryable() => {
                    self.park(&context, &body, ParkReason::Terminal(&error))
                        .await
                }
                Ok(Err(error)) => match error.retry_after() {
                    Some(delay) => {
                        tracing::warn!(error = %error, delay_ms = delay.as_millis() as u64,
                            "throttled: the message comes back after the provider's delay");
                        MessageOutcome::Failed {
                            reason: error.to_string(),
                            retry_after: Some(delay),
                        }
                    }
                    None => {
                        self.failed_attempt(&context, &body, error.to_string())
                            .await
                    }
                },
                Err(panic) => {
                    let reason = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    tracing::error!(panic = %reason, "message handler panicked");
                    self.failed_attempt(&context, &body, format!("handler panicked: {reason}"))
                        .await
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Counts a retryable failure; the message is parked once it has used up its attempts.
    async fn failed_attempt(
        &self,
        context: &MessageContext,
        body: &str,
        reason: String,
    ) -> MessageOutcome {
        match self.failures.count_failure(&context.message_id).await {
            Ok(attempts) if attempts >= self.max_attempts => {
                self.park(
                    context,
                    body,
                    ParkReason::Exhausted {
                        attempts,
                        last: reason,
                    },
                )
                .await
            }
            Ok(attempts) => {
                tracing::warn!(error = %reason, attempts, "retryable failure: the message returns to the queue");
                MessageOutcome::failed(reason)
            }
            Err(count_error) => {
                tracing::warn!(error = %reason, count_error = %count_error,
                    "retryable failure, not counted: the message returns to the queue");
                MessageOutcome::failed(reason)
            }
        }
    }

    async fn park(
        &self,
        context: &MessageContext,
        body: &str,
        reason: ParkReason<'_, E>,
    ) -> MessageOutcome {
        let explanation = reason.explanation();
        match self.parked.record(context, body, reason).await {
            Ok(()) => MessageOutcome::Parked,
            Err(record_error) => {
                tracing::error!(reason = %explanation, record_error = %record_error,
                    "could not record a parked message: it returns to the queue");
                MessageOutcome::failed(format!(
                    "{explanation}; recording it failed: {record_error}"
                ))
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::queue::{OutgoingMessage, QueueError, SendReport};
    use std::sync::Mutex;

    #[derive(serde::Deserialize)]
    struct Work {
        action: String,
    }

    fn message(id: &str, group: Option<&str>, body: &str) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.to_owned());
        m.receipt_handle = Some(format!("receipt-{id}"));
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

    /// Parked messages and failure counts, in memory.
    #[derive(Default)]
    struct Book {
        parked: Mutex<Vec<(String, String, String)>>,
        failures: Mutex<HashMap<String, u32>>,
        broken: bool,
    }

    #[async_trait]
    impl TerminalFailures<Error> for Book {
        async fn record(
            &self,
            context: &MessageContext,
            _body: &str,
            reason: ParkReason<'_, Error>,
        ) -> Result<(), RecordError> {
            if self.broken {
                return Err(RecordError("the ledger is down".into()));
            }
            self.parked.lock().unwrap().push((
                context.message_id.clone(),
                reason.category().to_owned(),
                reason.explanation(),
            ));
            Ok(())
        }
    }

    #[async_trait]
    impl FailureCounter for Book {
        async fn count_failure(&self, message_id: &str) -> Result<u32, RecordError> {
            let mut failures = self.failures.lock().unwrap();
            let count = failures.entry(message_id.to_owned()).or_default();
            *count += 1;
            Ok(*count)
        }
    }

    /// Records the redelivery delays asked for.
    #[derive(Default)]
    struct Delays(Mutex<Vec<(Vec<String>, Duration)>>);

    #[async_trait]
    impl Queue for Delays {
        async fn send(
            &self,
            _: QueueName,
            _: Vec<OutgoingMessage>,
        ) -> Result<SendReport, QueueError> {
            Ok(SendReport::default())
        }
        async fn delay_redelivery(
            &self,
            _: QueueName,
            mut handles: Vec<String>,
            delay: Duration,
        ) -> Result<(), QueueError> {
            handles.sort();
            self.0.lock().unwrap().push((handles, delay));
            Ok(())
        }
    }

    fn consumer<'a>(
        ordering: Ordering,
        book: &'a Book,
        delays: Option<&'a Delays>,
    ) -> Consumer<'a, Error> {
        Consumer {
            ordering,
            parked: book,
            failures: book,
            max_attempts: 3,
            redelivery: delays.map(|d| (d as &dyn Queue, QueueName::Sync)),
        }
    }

    /// A handler whose behaviour each message chooses; it logs what it ran.
    async fn run(
        consumer: &Consumer<'_, Error>,
        messages: Vec<SqsMessage>,
    ) -> (Vec<(String, MessageOutcome)>, Vec<String>) {
        let ran = Mutex::new(Vec::new());
        let outcomes = consumer
            .outcomes(event(messages), |work: Work, context| {
                ran.lock().unwrap().push(context.message_id.clone());
                async move {
                    assert_eq!(context.receive_count, 2);
                    match work.action.as_str() {
                        "ok" => Ok(()),
                        "retry" => Err(Error::NotImplemented { capability: "x" }),
                        "throttled" => Err(Error::Throttled {
                            retry_after: Some(Duration::from_secs(7)),
                        }),
                        "terminal" => Err(Error::InvalidInput("no SKU".into())),
                        "panic" => panic!("boom in {}", context.message_id),
                        other => panic!("unexpected action {other}"),
                    }
                }
            })
            .await
            .expect("all messages have ids");
        (outcomes, ran.into_inner().unwrap())
    }

    fn returned(outcomes: &[(String, MessageOutcome)]) -> Vec<&str> {
        outcomes
            .iter()
            .filter(|(_, o)| o.returns_to_queue())
            .map(|(id, _)| id.as_str())
            .collect()
    }

    #[tokio::test]
    async fn standard_batches_fail_only_the_failing_messages() {
        let book = Book::default();
        let messages = vec![
            message("m1", None, &work("ok")),
            message("m2", None, &work("retry")),
            message("m3", None, "{not json"),
            message("m4", None, &work("panic")),
            message("m5", None, &work("terminal")),
            message("m6", None, &work("ok")),
        ];
        let (outcomes, ran) = run(
            &consumer(Ordering::Standard { concurrency: 3 }, &book, None),
            messages,
        )
        .await;
        assert_eq!(returned(&outcomes), ["m2", "m4"]);
        assert!(
            matches!(&outcomes[3].1, MessageOutcome::Failed { reason, .. } if reason.contains("boom in m4"))
        );
        let parked = book.parked.lock().unwrap().clone();
        let parked: Vec<(&str, &str)> = parked
            .iter()
            .map(|(id, category, _)| (id.as_str(), category.as_str()))
            .collect();
        assert_eq!(parked, [("m3", "malformed"), ("m5", "terminal")]);
        assert_eq!(ran.len(), 5, "the malformed body never reaches the handler");
    }

    #[tokio::test]
    async fn fifo_stops_a_group_at_its_first_failure() {
        let book = Book::default();
        let messages = vec![
            message("a1", Some("conn-a"), &work("ok")),
            message("b1", Some("conn-b"), &work("ok")),
            message("a2", Some("conn-a"), &work("retry")),
            message("b2", Some("conn-b"), &work("ok")),
            message("a3", Some("conn-a"), &work("ok")),
            message("b3", Some("conn-b"), &work("terminal")),
            message("b4", Some("conn-b"), &work("ok")),
        ];
        let (outcomes, ran) = run(&consumer(Ordering::Fifo, &book, None), messages).await;
        assert_eq!(
            ran,
            ["a1", "b1", "a2", "b2", "b3", "b4"],
            "a3 never runs after a2 failed"
        );
        assert_eq!(returned(&outcomes), ["a2", "a3"]);
        assert_eq!(outcomes[4].1, MessageOutcome::Skipped);
        assert_eq!(
            outcomes[5].1,
            MessageOutcome::Parked,
            "terminal failures do not block the group"
        );
        assert_eq!(
            *book.failures.lock().unwrap(),
            HashMap::from([("a2".to_owned(), 1)]),
            "only a message's own attempts are counted, not the skipped ones"
        );
    }

    #[tokio::test]
    async fn a_malformed_head_does_not_hold_its_group_back() {
        let book = Book::default();
        let messages = vec![
            message("a1", Some("a"), "[]"),
            message("a2", Some("a"), &work("ok")),
            message("b1", Some("b"), &work("panic")),
            message("b2", Some("b"), &work("ok")),
        ];
        let (outcomes, ran) = run(&consumer(Ordering::Fifo, &book, None), messages).await;
        assert_eq!(ran, ["a2", "b1"]);
        assert_eq!(returned(&outcomes), ["b1", "b2"]);
        assert_eq!(outcomes[0].1, MessageOutcome::Parked);
    }

    #[tokio::test]
    async fn a_poison_head_is_parked_after_its_attempts_and_the_group_goes_on() {
        let book = Book::default();
        let consumer = consumer(Ordering::Fifo, &book, None);
        // The same batch, redelivered until nothing comes back, as SQS would.
        let mut queue = vec![("p1", "retry"), ("g1", "ok"), ("g2", "ok"), ("g3", "ok")];
        let mut ran_good = Vec::new();
        let mut rounds = 0;
        while !queue.is_empty() {
            rounds += 1;
            let messages = queue
                .iter()
                .map(|(id, action)| message(id, Some("conn"), &work(action)))
                .collect();
            let (outcomes, ran) = run(&consumer, messages).await;
            ran_good.extend(ran.into_iter().filter(|id| id.starts_with('g')));
            let back = returned(&outcomes);
            queue.retain(|(id, _)| back.contains(id));
        }
        assert_eq!(rounds, 3, "three attempts, then parked");
        assert_eq!(
            ran_good,
            ["g1", "g2", "g3"],
            "each good message ran once, in order"
        );
        let parked = book.parked.lock().unwrap().clone();
        assert_eq!(parked.len(), 1);
        assert_eq!(
            (parked[0].0.as_str(), parked[0].1.as_str()),
            ("p1", "exhausted")
        );
        assert!(parked[0].2.contains("gave up after 3"), "{}", parked[0].2);
    }

    #[tokio::test]
    async fn throttled_messages_come_back_after_the_providers_delay_with_their_group() {
        let book = Book::default();
        let delays = Delays::default();
        let messages = vec![
            message("a1", Some("a"), &work("throttled")),
            message("a2", Some("a"), &work("ok")),
            message("b1", Some("b"), &work("retry")),
            message("b2", Some("b"), &work("ok")),
            message("c1", Some("c"), &work("ok")),
        ];
        let (outcomes, _) = run(&consumer(Ordering::Fifo, &book, Some(&delays)), messages).await;
        assert_eq!(returned(&outcomes), ["a1", "a2", "b1", "b2"]);
        assert_eq!(
            *delays.0.lock().unwrap(),
            [(
                vec!["receipt-a1".to_owned(), "receipt-a2".to_owned()],
                Duration::from_secs(7)
            )],
            "only the throttled group is delayed, all of it"
        );
        assert!(
            !book.failures.lock().unwrap().contains_key("a1"),
            "waiting out a limit is not a failed attempt"
        );
    }

    #[tokio::test]
    async fn a_failure_to_record_a_parked_message_returns_it() {
        let book = Book {
            broken: true,
            ..Book::default()
        };
        let (outcomes, _) = run(
            &consumer(Ordering::Fifo, &book, None),
            vec![message("m1", None, &work("terminal"))],
        )
        .await;
        assert_eq!(returned(&outcomes), ["m1"]);
    }

    #[tokio::test]
    async fn a_message_without_an_id_fails_the_whole_batch() {
        let book = Book::default();
        let mut anonymous = message("", None, &work("ok"));
        anonymous.message_id = None;
        let result = consumer(Ordering::Fifo, &book, None)
            .process(
                event(vec![message("m1", None, &work("ok")), anonymous]),
                |_: Work, _| async { Ok(()) },
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

//! The queue port: hands work from one function to the next through SQS.

pub mod batch;
pub mod messages;
pub mod sqs;

use async_trait::async_trait;

use crate::config::Queues;
use crate::error_class::ErrorClass;

use std::time::Duration;

/// SQS refuses message bodies over 256 KiB.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// SQS sends at most ten messages per batch request…
pub const MAX_BATCH: usize = 10;
/// …and at most 256 KiB in all of a batch's bodies.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// The longest SQS lets a message stay invisible.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);
/// The longest SQS delays a message's first delivery.
pub const MAX_DELAY: Duration = Duration::from_secs(900);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueName {
    /// FIFO: change batches per connection and object, in order.
    Sync,
    /// Standard: poll tasks, one connection and object each.
    Poll,
    /// Standard: workflow-action executions finished after a BLOCK answer.
    Actions,
}

impl QueueName {
    pub fn url(self, queues: &Queues) -> &str {
        match self {
            QueueName::Sync => &queues.sync,
            QueueName::Poll => &queues.poll,
            QueueName::Actions => &queues.actions,
        }
    }
}

/// A message to send. FIFO queues need `group_id` (ordering scope) and `dedup_id` (SQS drops a
/// repeat of the same id within five minutes, so a retried enqueue is not delivered twice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub body: String,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
    /// Standard queues only: delivered no sooner than this after sending (whole seconds).
    pub delay: Option<Duration>,
}

impl OutgoingMessage {
    pub fn standard(body: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            group_id: None,
            dedup_id: None,
            delay: None,
        }
    }

    pub fn fifo(
        body: impl Into<String>,
        group_id: impl Into<String>,
        dedup_id: impl Into<String>,
    ) -> Self {
        Self {
            body: body.into(),
            group_id: Some(group_id.into()),
            dedup_id: Some(dedup_id.into()),
            delay: None,
        }
    }

    pub fn json<T: serde::Serialize>(value: &T) -> Result<Self, QueueError> {
        serde_json::to_string(value)
            .map(Self::standard)
            .map_err(|e| QueueError::Rejected(e.to_string()))
    }

    pub fn in_group(mut self, group_id: impl Into<String>, dedup_id: impl Into<String>) -> Self {
        self.group_id = Some(group_id.into());
        self.dedup_id = Some(dedup_id.into());
        self
    }

    /// Delivered `delay` after sending at the earliest (at most [`MAX_DELAY`]).
    pub fn delayed_by(mut self, delay: Duration) -> Self {
        self.delay = Some(delay.min(MAX_DELAY));
        self
    }
}

/// A message of a batch that was not sent, by its position in the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedSend {
    pub index: usize,
    pub code: String,
    pub message: String,
    /// SQS's word on whose fault it is: a sender fault fails again if retried as is.
    pub sender_fault: bool,
}

/// What became of each message of a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendReport {
    pub sent: usize,
    pub failed: Vec<FailedSend>,
}

impl SendReport {
    pub fn all_sent(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Splits messages (by their positions) into SQS batches: at most [`MAX_BATCH`] messages and
/// [`MAX_BATCH_BYTES`] of bodies each, in order.
pub fn batches(sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, size) in sizes.iter().enumerate() {
        let full = index - start == MAX_BATCH || bytes + size > MAX_BATCH_BYTES;
        if full && index > start {
            batches.push(start..index);
            (start, bytes) = (index, 0);
        }
        bytes += size;
    }
    if start < sizes.len() {
        batches.push(start..sizes.len());
    }
    batches
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue throttled: {0}")]
    Throttled(String),
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    #[error("queue does not exist: {0}")]
    QueueNotFound(String),
    #[error("queue rejected the message: {0}")]
    Rejected(String),
    #[error("{failed} of {total} messages were not sent")]
    PartlyUnsent {
        failed: usize,
        total: usize,
        /// What was and was not sent, by the messages' positions.
        report: SendReport,
    },
}

impl QueueError {
    pub fn class(&self) -> ErrorClass {
        match self {
            QueueError::Throttled(_) | QueueError::Unavailable(_) => ErrorClass::Retryable,
            // Resending helps unless every failure was the message's own fault.
            QueueError::PartlyUnsent { report, .. }
                if report.failed.iter().all(|f| f.sender_fault) =>
            {
                ErrorClass::Terminal
            }
            QueueError::PartlyUnsent { .. } => ErrorClass::Retryable,
            QueueError::QueueNotFound(_) | QueueError::Rejected(_) => ErrorClass::Terminal,
        }
    }
}

#[async_trait]
pub trait Queue: Send + Sync {
    /// Sends any number of messages (in batches of at most ten and 256 KiB), retrying entries
    /// that failed through no fault of the sender. Entries still failing are listed in the
    /// report; nothing is dropped silently. When a batch request itself fails after earlier
    /// batches went out, the report says which were sent and lists the rest as failed; only a
    /// failure before anything was sent is an error.
    async fn send(
        &self,
        queue: QueueName,
        messages: Vec<OutgoingMessage>,
    ) -> Result<SendReport, QueueError>;

    /// Sends and turns any unsent entry into an error.
    async fn send_all(
        &self,
        queue: QueueName,
        messages: Vec<OutgoingMessage>,
    ) -> Result<(), QueueError> {
        let total = messages.len();
        let report = self.send(queue, messages).await?;
        if report.all_sent() {
            Ok(())
        } else {
            Err(QueueError::PartlyUnsent {
                failed: report.failed.len(),
                total,
                report,
            })
        }
    }

    /// Makes received messages (by receipt handle) visible again only after `delay` (clamped to
    /// what SQS allows): a provider asked us to wait that long.
    async fn delay_redelivery(
        &self,
        queue: QueueName,
        receipt_handles: Vec<String>,
        delay: Duration,
    ) -> Result<(), QueueError>;
}

/// Checks a message before it is sent: SQS would refuse it anyway, but this says why.
pub(crate) fn check_message(message: &OutgoingMessage, fifo: bool) -> Result<(), String> {
    if message.body.is_empty() {
        return Err("empty message body".into());
    }
    if message.body.len() > MAX_BODY_BYTES {
        return Err(format!(
            "message body is {} bytes; the limit is {MAX_BODY_BYTES}",
            message.body.len()
        ));
    }
    if fifo && message.group_id.is_none() {
        return Err("a FIFO queue needs a message group id".into());
    }
    // Content-based deduplication is off: without an id a retried send would be delivered twice.
    if fifo && message.dedup_id.as_deref().is_none_or(str::is_empty) {
        return Err("a FIFO message needs a deduplication id".into());
    }
    if !fifo && message.group_id.is_some() {
        return Err("a standard queue takes no message group id".into());
    }
    // FIFO queues take a delay only for the whole queue.
    if fifo && message.delay.is_some() {
        return Err("a FIFO message cannot be delayed on its own".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::single_range_in_vec_init)]
    fn batches_respect_both_the_count_and_the_byte_limit() {
        let kib = 1024;
        let cases: Vec<(Vec<usize>, Vec<std::ops::Range<usize>>)> = vec![
            (vec![], vec![]),
            (vec![10; 3], vec![0..3]),
            (vec![10; 25], vec![0..10, 10..20, 20..25]),
            // Three 100 KiB bodies: two fit in 256 KiB, the third starts a new batch.
            (vec![100 * kib; 3], vec![0..2, 2..3]),
            (vec![256 * kib, 1], vec![0..1, 1..2]),
            (vec![1, 256 * kib], vec![0..1, 1..2]),
            (vec![128 * kib, 128 * kib, 1], vec![0..2, 2..3]),
        ];
        for (sizes, expected) in cases {
            assert_eq!(batches(&sizes), expected, "{sizes:?}");
        }
    }

    #[test]
    fn fifo_messages_need_a_group_and_a_dedup_id() {
        let cases = [
            (OutgoingMessage::fifo("b", "g", "d"), true, Ok(())),
            (OutgoingMessage::fifo("b", "g", ""), true, Err(())),
            (
                OutgoingMessage {
                    body: "b".into(),
                    group_id: Some("g".into()),
                    dedup_id: None,
                    delay: None,
                },
                true,
                Err(()),
            ),
            (
                OutgoingMessage::standard("b").delayed_by(Duration::from_secs(3)),
                false,
                Ok(()),
            ),
            (
                OutgoingMessage::fifo("b", "g", "d").delayed_by(Duration::from_secs(3)),
                true,
                Err(()),
            ),
            (OutgoingMessage::standard("b"), true, Err(())),
            (OutgoingMessage::standard("b"), false, Ok(())),
            (OutgoingMessage::fifo("b", "g", "d"), false, Err(())),
        ];
        for (message, fifo, expected) in cases {
            assert_eq!(
                check_message(&message, fifo).map_err(drop),
                expected,
                "{message:?}"
            );
        }
    }

    #[test]
    fn a_partly_unsent_batch_is_retryable_unless_every_failure_is_the_senders() {
        let failed = |sender_fault| FailedSend {
            index: 0,
            code: "X".into(),
            message: String::new(),
            sender_fault,
        };
        let error = |failures: Vec<FailedSend>| QueueError::PartlyUnsent {
            failed: failures.len(),
            total: 3,
            report: SendReport {
                sent: 1,
                failed: failures,
            },
        };
        assert_eq!(error(vec![failed(true)]).class(), ErrorClass::Terminal);
        assert_eq!(
            error(vec![failed(true), failed(false)]).class(),
            ErrorClass::Retryable
        );
    }
}

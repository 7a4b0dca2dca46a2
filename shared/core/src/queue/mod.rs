//! The queue port: hands work from one function to the next through SQS.

pub mod batch;
pub mod messages;
pub mod sqs;

use async_trait::async_trait;

use crate::config::Queues;
use crate::error_class::ErrorClass;

/// SQS refuses message bodies over 256 KiB.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// SQS sends at most ten messages per batch request.
pub const MAX_BATCH: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueName {
    /// FIFO: change batches per connection and object, in order.
    Sync,
    /// Standard: nudges to poll one connection now.
    PollNudge,
}

impl QueueName {
    pub fn url(self, queues: &Queues) -> &str {
        match self {
            QueueName::Sync => &queues.sync,
            QueueName::PollNudge => &queues.poll_nudge,
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
}

impl OutgoingMessage {
    pub fn standard(body: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            group_id: None,
            dedup_id: None,
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
    PartlyUnsent { failed: usize, total: usize },
}

impl QueueError {
    pub fn class(&self) -> ErrorClass {
        match self {
            QueueError::Throttled(_)
            | QueueError::Unavailable(_)
            | QueueError::PartlyUnsent { .. } => ErrorClass::Retryable,
            QueueError::QueueNotFound(_) | QueueError::Rejected(_) => ErrorClass::Terminal,
        }
    }
}

#[async_trait]
pub trait Queue: Send + Sync {
    /// Sends any number of messages (in batches of ten), retrying entries that failed through no
    /// fault of the sender. Entries still failing are listed in the report; nothing is dropped
    /// silently.
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
            })
        }
    }
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
    if !fifo && message.group_id.is_some() {
        return Err("a standard queue takes no message group id".into());
    }
    Ok(())
}

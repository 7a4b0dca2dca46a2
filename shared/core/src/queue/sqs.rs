//! The SQS adapter of the queue port.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, SendMessageBatchRequestEntry};
use aws_sdk_sqs::Client;

use super::*;

const SEND_ATTEMPTS: u32 = 5;

pub struct SqsQueue {
    client: Client,
    queues: Queues,
}

impl SqsQueue {
    pub fn new(client: Client, queues: Queues) -> Self {
        Self { client, queues }
    }
}

fn classify<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    error: SdkError<E>,
) -> QueueError {
    let code = error.code().unwrap_or_default().to_owned();
    let message = format!("{code}: {}", error.message().unwrap_or(""));
    match &error {
        SdkError::ServiceError(_) => match code.as_str() {
            "AWS.SimpleQueueService.NonExistentQueue" | "QueueDoesNotExist" => {
                QueueError::QueueNotFound(message)
            }
            "ThrottlingException"
            | "RequestThrottled"
            | "AWS.SimpleQueueService.RequestThrottled" => QueueError::Throttled(message),
            "InternalError" | "InternalFailure" | "ServiceUnavailable" => {
                QueueError::Unavailable(message)
            }
            _ => QueueError::Rejected(message),
        },
        _ => QueueError::Unavailable(error.to_string()),
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(
        &self,
        queue: QueueName,
        messages: Vec<OutgoingMessage>,
    ) -> Result<SendReport, QueueError> {
        let url = queue.url(&self.queues);
        let fifo = url.ends_with(".fifo");
        let mut report = SendReport::default();
        // Entries are identified by their position in the caller's list.
        let mut ready: Vec<(usize, OutgoingMessage)> = Vec::new();
        for (index, message) in messages.into_iter().enumerate() {
            match check_message(&message, fifo) {
                Ok(()) => ready.push((index, message)),
                Err(reason) => report.failed.push(FailedSend {
                    index,
                    code: "InvalidMessage".into(),
                    message: reason,
                    sender_fault: true,
                }),
            }
        }
        let sizes: Vec<usize> = ready.iter().map(|(_, m)| m.body.len()).collect();
        let chunks = batches(&sizes);
        for (position, range) in chunks.iter().enumerate() {
            if let Err(error) = self
                .send_batch(url, &ready[range.clone()], &mut report)
                .await
            {
                if report.sent == 0 && position == 0 {
                    // Nothing went out: the error says it all.
                    return Err(error);
                }
                // Keep what was sent; what was not is listed, with the reason.
                let sender_fault = error.class() == ErrorClass::Terminal;
                for (index, _) in chunks[position..]
                    .iter()
                    .flat_map(|r| ready[r.clone()].iter())
                {
                    report.failed.push(FailedSend {
                        index: *index,
                        code: "BatchNotSent".into(),
                        message: error.to_string(),
                        sender_fault,
                    });
                }
                break;
            }
        }
        report.failed.sort_by_key(|f| f.index);
        Ok(report)
    }

    async fn delay_redelivery(
        &self,
        queue: QueueName,
        receipt_handles: Vec<String>,
        delay: Duration,
    ) -> Result<(), QueueError> {
        let seconds = delay.min(MAX_VISIBILITY).as_secs().max(1) as i32;
        let url = queue.url(&self.queues);
        for chunk in receipt_handles.chunks(MAX_BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, handle)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle)
                        .visibility_timeout(seconds)
                        .build()
                        .map_err(|e| QueueError::Rejected(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .change_message_visibility_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(classify)?;
            if let Some(failure) = output.failed.first() {
                // A message whose handle expired was received by someone else already.
                tracing::warn!(code = %failure.code, "a redelivery delay was not applied");
            }
        }
        Ok(())
    }
}

impl SqsQueue {
    /// Sends one batch, retrying entries that failed through no fault of ours; entries that
    /// still fail go into `report`.
    async fn send_batch(
        &self,
        url: &str,
        chunk: &[(usize, OutgoingMessage)],
        report: &mut SendReport,
    ) -> Result<(), QueueError> {
        let mut pending: Vec<&(usize, OutgoingMessage)> = chunk.iter().collect();
        let mut attempt = 0;
        while !pending.is_empty() {
            attempt += 1;
            let entries = pending
                .iter()
                .map(|(index, m)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(index.to_string())
                        .message_body(&m.body)
                        .set_message_group_id(m.group_id.clone())
                        .set_message_deduplication_id(m.dedup_id.clone())
                        .set_delay_seconds(m.delay.map(|d| d.min(MAX_DELAY).as_secs() as i32))
                        .build()
                        .map_err(|e| QueueError::Rejected(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(classify)?;
            report.sent += output.successful.len();
            let mut retry = Vec::new();
            for failure in output.failed {
                let Some(position) = pending
                    .iter()
                    .position(|(i, _)| i.to_string() == failure.id)
                else {
                    continue;
                };
                let entry = pending[position];
                if !failure.sender_fault && attempt < SEND_ATTEMPTS {
                    retry.push(entry);
                } else {
                    report.failed.push(FailedSend {
                        index: entry.0,
                        code: failure.code,
                        message: failure.message.unwrap_or_default(),
                        sender_fault: failure.sender_fault,
                    });
                }
            }
            if !retry.is_empty() {
                tokio::time::sleep(Duration::from_millis(50u64 << attempt.min(5))).await;
            }
            pending = retry;
        }
        Ok(())
    }
}

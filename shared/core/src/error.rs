//! The crate-wide error model. Every error says whether retrying can help, because that decides
//! whether a message goes back to its queue or is recorded as failing and acknowledged.

use std::time::Duration;

/// Whether an error is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Throttling, 5xx, network trouble, lost races: the same work may succeed later.
    Retryable,
    /// Bad input or a business rule: retrying the same work fails the same way.
    Terminal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    OAuthConfig(#[from] crate::oauth::OAuthConfigError),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("queue: {0}")]
    Queue(#[from] crate::queue::QueueError),
    #[error(transparent)]
    BatchWithoutMessageIds(#[from] crate::runtime::sqs_batch::BatchWithoutMessageIds),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("{capability} is not implemented yet")]
    NotImplemented { capability: &'static str },
    #[error("throttled; retry after {retry_after:?}")]
    Throttled { retry_after: Option<Duration> },
}

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Store(e) => e.class(),
            Error::Queue(e) => e.class(),
            // The whole batch goes back; SQS redelivers it and the DLQ catches a persistent case.
            Error::Throttled { .. } | Error::BatchWithoutMessageIds(_) => ErrorClass::Retryable,
            // Work that arrives before its capability exists must not be dropped: keep it queued
            // (it ends in the dead-letter queue, from where it can be replayed).
            Error::NotImplemented { .. } => ErrorClass::Retryable,
            Error::Config(_) | Error::OAuthConfig(_) | Error::InvalidInput(_) => {
                ErrorClass::Terminal
            }
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.class() == ErrorClass::Retryable
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for lambda_runtime::Diagnostic {
    /// Lambda's error type tells operators (and retry policies) which failures are worth retrying.
    fn from(error: Error) -> Self {
        let error_type = match error.class() {
            ErrorClass::Retryable => "Retryable",
            ErrorClass::Terminal => "Terminal",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}

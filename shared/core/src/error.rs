//! The crate-wide error of the functions' handlers. Every error says whether retrying can help
//! (its [`ErrorClass`]), because that decides whether a message goes back to its queue or is
//! recorded as failing and acknowledged.

use std::time::Duration;

pub use crate::error_class::ErrorClass;
use crate::queue::batch::{BatchWithoutMessageIds, MessageError};

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
    BatchWithoutMessageIds(#[from] BatchWithoutMessageIds),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A client could not be built (at cold start).
    #[error("setting up: {0}")]
    Setup(String),
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
            Error::Config(_) | Error::OAuthConfig(_) | Error::InvalidInput(_) | Error::Setup(_) => {
                ErrorClass::Terminal
            }
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.class() == ErrorClass::Retryable
    }
}

impl MessageError for Error {
    fn class(&self) -> ErrorClass {
        Error::class(self)
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Throttled { retry_after } => *retry_after,
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for lambda_runtime::Diagnostic {
    /// Lambda's error type tells operators (and retry policies) which failures are worth retrying.
    fn from(error: Error) -> Self {
        lambda_runtime::Diagnostic {
            error_type: error.class().as_str().to_owned(),
            error_message: error.to_string(),
        }
    }
}

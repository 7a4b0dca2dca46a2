//! Whether an error is worth retrying: the one word every error of the crate carries, because it
//! decides whether work goes back to its queue or is recorded as failing and acknowledged.

/// Whether an error is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Throttling, 5xx, network trouble, lost races: the same work may succeed later.
    Retryable,
    /// Bad input or a business rule: retrying the same work fails the same way.
    Terminal,
}

impl ErrorClass {
    /// The word operators see (Lambda's `errorType`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Retryable => "Retryable",
            ErrorClass::Terminal => "Terminal",
        }
    }
}

//! Structured JSON logs to stdout (CloudWatch in AWS, the terminal locally).

use tracing_subscriber::{fmt, EnvFilter};

/// Installs the JSON subscriber once; the filter comes from `RUST_LOG` (default `info`).
/// A second call (several handlers in one test binary) is a no-op.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .try_init();
}
